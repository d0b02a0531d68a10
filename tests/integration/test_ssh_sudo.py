"""become over SSH with a real sudo: password on stdin after the prompt, failing fast."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.connection import Become, Connection, ConnectionParams
from runner.connection.conversation import INCORRECT_PASSWORD
from runner.results import CommandResult
from runner.testing import Sshd
from tests.support.accounts import Account
from tests.support.waiting import wait_until

Connect = Callable[[ConnectionParams], Connection]


@pytest.fixture
def user_ssh(shared_sshd: Sshd, account: Account, connect: Connect) -> Connection:
    """An SSH connection logged in as the unprivileged test account (key auth)."""
    return connect(shared_sshd.params("web1", user=account.name))


def test_sudo_with_the_right_password_runs_as_root(user_ssh: Connection, account: Account) -> None:
    result = user_ssh.run("id -un", become=Become(user="root", password=account.password))
    assert (result.rc, result.stdout, result.stderr) == (0, "root\n", "")


def test_stdin_after_the_password_reaches_the_command(user_ssh: Connection, account: Account) -> None:
    become = Become(user="root", password=account.password)
    result = user_ssh.run("cat; id -un", stdin=b"payload\n", become=become)
    assert result.stdout == "payload\nroot\n"


def test_the_become_password_may_come_from_the_connection_params(
    shared_sshd: Sshd, account: Account, connect: Connect
) -> None:
    params = shared_sshd.params("web1", user=account.name, become_password=account.password)
    result = connect(params).run("id -un", become=Become(user="root"))
    assert result.stdout == "root\n"


def test_a_wrong_sudo_password_fails_fast_with_a_clean_result(user_ssh: Connection, account: Account) -> None:
    start = time.monotonic()
    result = user_ssh.run("id -un", become=Become(user="root", password="wrong-" + account.password))
    assert time.monotonic() - start < 15
    assert result.rc == 1 and not result.ok
    assert result.stderr == INCORRECT_PASSWORD
    assert result.stdout == ""


def test_sudo_without_a_password_fails_fast_instead_of_prompting(user_ssh: Connection) -> None:
    start = time.monotonic()
    result = user_ssh.run("id -un", become=Become(user="root"), timeout=30)
    assert time.monotonic() - start < 10
    assert result.rc == 1
    assert "password is required" in result.stderr


def test_the_password_is_never_in_any_command_line_or_environment(
    user_ssh: Connection, account: Account, tmp_path: Path
) -> None:
    release, started = tmp_path / "release", tmp_path / "started"
    outcome: list[CommandResult] = []
    become = Become(user="root", password=account.password)
    script = f": > {started}; while [ ! -e {release} ]; do sleep 0.05; done; id -un"
    worker = threading.Thread(target=lambda: outcome.append(user_ssh.run(script, become=become)))
    worker.start()
    try:
        wait_until(lambda: started.exists() and started.stat().st_uid == 0,
                   what="the command to run under sudo")
        secret = account.password.encode()
        for proc in Path("/proc").iterdir():
            for name in ("cmdline", "environ"):
                try:
                    assert secret not in (proc / name).read_bytes(), f"password in {proc}/{name}"
                except OSError:
                    continue
    finally:
        release.touch()
        worker.join(30)
    assert outcome and outcome[0].stdout == "root\n"

