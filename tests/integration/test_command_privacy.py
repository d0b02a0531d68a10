"""A command's text never shows in remedy's own processes' argument lists on the host.

Any user of a host can read every process's argument list (``ps``,
``/proc/*/cmdline``). While a command containing a canary runs (it says so
by creating a file, then waits on a FIFO), every argument list on the
machine is read: the canary shows only where the command itself put it, in
the argument list of a program it started, never in remedy's wrapper
(``sh -c``, ``setsid``, ``sudo``), on every path a command can take.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.connection import Become, Connection, ConnectionParams
from runner.connection.local import LocalConnection
from runner.results import CommandResult
from runner.testing import Sshd
from tests.support.accounts import Account
from tests.support.processes import command_lines_with
from tests.support.waiting import wait_until

Connect = Callable[[ConnectionParams], Connection]
NOBODY = Become(user="nobody")
#: The program the command starts: it waits for a line on the FIFO named by its second argument.
OWN = 'read -r line < "$1"; echo "$line"'


@pytest.fixture
def meeting() -> Iterator[Path]:
    """A directory every user can write, with a FIFO in it: where a command meets the test."""
    directory = Path(tempfile.mkdtemp(prefix="remedy-privacy-"))
    directory.chmod(0o777)
    os.mkfifo(directory / "go", 0o666)
    (directory / "go").chmod(0o666)
    try:
        yield directory
    finally:
        for entry in directory.iterdir():
            entry.unlink()
        directory.rmdir()


def argument_lists_while_running(conn: Connection, meeting: Path, canary: str,
                                 **run: object) -> list[list[str]]:
    """Run a command holding ``canary`` on ``conn``; the argument lists holding it while it runs.

    The command starts one program of its own whose argument list holds
    ``<canary>-own`` (what a plain ``command:`` task does by nature).
    """
    script = f": {canary}; : > {meeting}/started; sh -c '{OWN}' {canary}-own {meeting}/go"
    outcome: list[CommandResult] = []
    env = {"REMEDY_TEST_VALUE": f"{canary}-env"}
    worker = threading.Thread(target=lambda: outcome.append(conn.run(script, env=env, timeout=60, **run)))  # type: ignore[arg-type]
    worker.start()
    try:
        wait_until(lambda: (meeting / "started").exists(), what="the command to start")
        own = ["sh", "-c", OWN, f"{canary}-own"]
        wait_until(lambda: own in [argv[:4] for argv in command_lines_with(canary)],
                   what="the command's own program")
        seen = command_lines_with(canary)
    finally:
        with open(meeting / "go", "w") as fifo:
            fifo.write("released\n")
        worker.join(60)
    assert outcome and (outcome[0].rc, outcome[0].stdout) == (0, "released\n"), outcome
    return seen


def only_the_commands_own(seen: list[list[str]], canary: str) -> bool:
    """Whether the canary shows in one argument list only: the program the command started."""
    return len(seen) == 1 and seen[0][:4] == ["sh", "-c", OWN, f"{canary}-own"]


def paths() -> list[tuple[str, dict[str, object]]]:
    return [
        ("persistent shell", {}),
        ("persistent shell with stdin", {"stdin": b"input\n"}),
        ("persistent shell, sudo -n", {"become": NOBODY}),
    ]


@pytest.mark.parametrize(("path", "run"), paths(), ids=[p for p, _ in paths()])
def test_the_text_of_a_command_in_the_persistent_shell_is_in_no_argument_list(
    ssh: Connection, meeting: Path, path: str, run: dict[str, object]
) -> None:
    canary = f"CANARY{os.getpid()}x{len(path)}"
    seen = argument_lists_while_running(ssh, meeting, canary, **run)
    assert only_the_commands_own(seen, canary), seen


@pytest.mark.parametrize("become", [None, NOBODY], ids=["plain", "sudo -n"])
def test_the_text_of_a_command_on_a_channel_of_its_own_is_in_no_argument_list(
    shared_sshd: Sshd, connect: Connect, meeting: Path, become: Become | None
) -> None:
    conn = connect(dataclasses.replace(shared_sshd.params("web1"), persistent_shell=False))
    canary = f"CANARY{os.getpid()}channel"
    seen = argument_lists_while_running(conn, meeting, canary, become=become, stdin=b"input\n")
    assert only_the_commands_own(seen, canary), seen


def test_the_text_of_a_command_under_sudo_with_a_password_is_in_no_argument_list(
    shared_sshd: Sshd, account: Account, connect: Connect, meeting: Path
) -> None:
    conn = connect(shared_sshd.params("web1", user=account.name))
    canary = f"CANARY{os.getpid()}password"
    become = Become(user="root", password=account.password)
    seen = argument_lists_while_running(conn, meeting, canary, become=become)
    assert only_the_commands_own(seen, canary), seen


@pytest.mark.parametrize("become", [None, NOBODY], ids=["plain", "sudo -n"])
def test_the_text_of_a_local_command_is_in_no_argument_list(meeting: Path, become: Become | None) -> None:
    conn = LocalConnection(ConnectionParams(name="localhost", address="localhost", kind="local"))
    canary = f"CANARY{os.getpid()}local"
    try:
        seen = argument_lists_while_running(conn, meeting, canary, become=become)
    finally:
        conn.close()
    assert only_the_commands_own(seen, canary), seen
