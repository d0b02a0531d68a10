"""The persistent shell of an SSH session against a real sshd: one shell, exact output, no leaks."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pwd
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.connection import Become, Connection, ConnectionParams, Login
from runner.connection.persistent import STDIN_LIMIT
from runner.connection.shell import READ_STDIN
from runner.errors import CommandTimeout
from runner.testing import Sshd
from tests.support.accounts import Account
from tests.support.processes import tagged
from tests.support.waiting import wait_until

Connect = Callable[[ConnectionParams], Connection]


def parent(conn: Connection) -> str:
    """The pid and name of the process that started the command's shell on the host."""
    return conn.run('echo "$PPID $(cat /proc/$PPID/comm)"').stdout.strip()


def test_commands_of_a_session_share_one_long_lived_shell(ssh: Connection) -> None:
    first = parent(ssh)
    assert first.endswith(" sh") and all(parent(ssh) == first for _ in range(3))


def test_without_the_persistent_shell_each_command_has_its_own_channel(
    shared_sshd: Sshd, connect: Connect
) -> None:
    conn = connect(dataclasses.replace(shared_sshd.params("web1"), persistent_shell=False))
    assert parent(conn).endswith(" sshd")
    assert conn.run("printf 'x\\n'; exit 4").rc == 4


def test_the_shell_says_who_it_runs_as_as_it_starts(
    shared_sshd: Sshd, account: Account, connect: Connect
) -> None:
    uid = pwd.getpwnam(account.name).pw_uid
    for user, expected in ((shared_sshd.user, Login(os.geteuid(), shared_sshd.user)),
                           (account.name, Login(uid, account.name))):
        conn = connect(dataclasses.replace(shared_sshd.params("web1"), user=user))
        assert conn.whoami() == expected
        assert parent(conn).endswith(" sh")  # the shell it started for that is the one commands use
        assert conn.run("id -u").stdout == f"{expected.uid}\n"
    alone = connect(dataclasses.replace(shared_sshd.params("web1"), persistent_shell=False))
    assert alone.whoami() is None  # only asking would tell: the caller asks


def test_output_is_split_exactly_at_each_command(ssh: Connection) -> None:
    assert ssh.run("printf 'no newline'").stdout == "no newline"
    assert ssh.run("printf '\\n\\n'").stdout == "\n\n"
    lookalike = "\nREMEDY-END-0123456789abcdef 0\n"  # not this command's delimiter
    result = ssh.run(f"printf '{lookalike}'; printf '{lookalike}' >&2; exit 3")
    assert (result.rc, result.stdout, result.stderr) == (3, lookalike, lookalike)
    assert ssh.run("true").stdout == ""


@pytest.mark.parametrize("size", [1, 4096, STDIN_LIMIT, STDIN_LIMIT + 1])
def test_stdin_arrives_byte_for_byte_in_and_beyond_the_shell(ssh: Connection, size: int) -> None:
    data = (bytes(range(256)) * (size // 256 + 1))[:size]
    shell = parent(ssh)
    result = ssh.run('sha256sum; echo "$PPID $(cat /proc/$PPID/comm)"', stdin=data)
    digest, pid = result.stdout.split()[0], " ".join(result.stdout.split()[-2:])
    assert digest == hashlib.sha256(data).hexdigest()
    assert (pid == shell) is (size <= STDIN_LIMIT)  # larger stdin takes a channel of its own


@pytest.mark.parametrize("size", [1, 4096, STDIN_LIMIT, STDIN_LIMIT + 1])
def test_a_contained_commands_stdin_comes_from_a_function_in_the_shell(ssh: Connection, size: int) -> None:
    data = (bytes(range(256)) * (size // 256 + 1))[:size]
    shell = parent(ssh).split()[0]
    script = (f"{READ_STDIN} | sha256sum; command -v remedy_stdin; wc -c; "
              'read -r _ _ _ _ g _ </proc/self/stat; echo "$g"')
    lines = ssh.run(script, stdin=data, contained=True).stdout.split("\n")
    assert lines[0].split()[0] == hashlib.sha256(data).hexdigest()
    if size <= STDIN_LIMIT:  # in the shell: the bytes from the function, stdin itself empty
        assert lines[1:4] == ["remedy_stdin", "0", shell]
    else:  # a channel of its own: no function, the bytes on stdin (already read)
        assert lines[1] == "0" and lines[2] != shell


def test_a_process_left_behind_never_writes_into_a_later_command(ssh: Connection, marker: str) -> None:
    before = parent(ssh)
    writer = f"while :; do echo stray; echo stray >&2; sleep 0.01; done # {marker}"
    ssh.run(f"sh -c '{writer}' & echo started")
    try:
        for _ in range(20):
            result = ssh.run("echo clean; echo quiet >&2")
            assert (result.stdout, result.stderr) == ("clean\n", "quiet\n")
        assert parent(ssh) != before  # the shell it could write into was retired
    finally:
        pattern = f"[{marker[0]}]{marker[1:]}"
        ssh.run(f"pkill -f -- '{pattern}'")


def test_a_timed_out_command_is_killed_and_the_shell_goes_on(ssh: Connection, marker: str) -> None:
    with pytest.raises(CommandTimeout) as caught:
        ssh.run(f"echo started; {tagged('sleep 300', marker)}", timeout=1)
    assert caught.value.result.stdout == "started\n"
    pattern = f"[{marker[0]}]{marker[1:]}"
    wait_until(lambda: ssh.run(f"pgrep -f -- '{pattern}'").rc == 1, what="the timed-out group to end")
    assert ssh.run("echo next").stdout == "next\n"


def test_a_shell_killed_between_commands_is_replaced_without_losing_the_next(
    ssh: Connection, shared_sshd: Sshd, connect: Connect
) -> None:
    pid = parent(ssh).split()[0]
    other = connect(shared_sshd.params("web1"))
    other.run(f"kill -KILL {pid}")
    wait_until(lambda: other.run(f"kill -0 {pid}").rc != 0, what="the shell to die")
    assert ssh.run("echo ok").stdout == "ok\n"
    assert parent(ssh).split()[0] != pid


GROUP = 'read -r p _ _ _ g _ </proc/self/stat; echo "$p $g"'  # this process and its group


def test_a_contained_command_runs_in_the_shells_own_group(ssh: Connection) -> None:
    shell = parent(ssh).split()[0]
    assert ssh.run(GROUP, contained=True).stdout.split()[1] == shell
    pid, group = ssh.run(GROUP).stdout.split()
    assert pid == group != shell  # any other command leads a session of its own
    result = ssh.run("printf 'x'; printf 'y' >&2; exit 3", contained=True)
    assert (result.rc, result.stdout, result.stderr) == (3, "x", "y")
    assert parent(ssh).split()[0] == shell  # and the shell goes on


def test_a_contained_command_that_times_out_takes_its_shell_along(ssh: Connection, marker: str) -> None:
    before = parent(ssh)
    with pytest.raises(CommandTimeout):
        ssh.run(f"echo started; {tagged('sleep 300', marker)}", timeout=1, contained=True)
    pattern = f"[{marker[0]}]{marker[1:]}"
    wait_until(lambda: ssh.run(f"pgrep -f -- '{pattern}'").rc == 1, what="the timed-out group to end")
    assert ssh.run("echo next").stdout == "next\n"
    assert parent(ssh) != before


def test_a_shell_that_does_not_lead_its_group_runs_contained_commands_in_sessions_of_their_own(
    connect: Connect,
) -> None:
    # a forced command that runs each session's command in a subshell, as some wrappers do
    with Sshd(config="""ForceCommand sh -c '(eval "$SSH_ORIGINAL_COMMAND")'""") as server:
        conn = connect(server.params("web1"))
        shell = parent(conn).split()[0]
        pid, group = conn.run(GROUP, contained=True).stdout.split()
        assert pid == group != shell  # a timeout can still kill it without killing the shell
        assert parent(conn).split()[0] == shell


@pytest.fixture
def nopasswd_ssh(shared_sshd: Sshd, account: Account, connect: Connect) -> Iterator[Connection]:
    """The unprivileged test account over SSH, allowed ``sudo -n`` to root while the test runs."""
    drop_in = Path("/etc/sudoers.d") / f"{account.name.replace('.', '_')}-nopasswd"
    drop_in.write_text(f"{account.name} ALL=(ALL) NOPASSWD: ALL\n")
    drop_in.chmod(0o440)
    try:
        yield connect(shared_sshd.params("web1", user=account.name))
    finally:
        drop_in.unlink()


def test_a_root_process_left_behind_by_become_retires_the_shell(
    nopasswd_ssh: Connection, marker: str
) -> None:
    root = Become(user="root")
    before = parent(nopasswd_ssh)
    writer = f"while :; do echo stray; echo stray >&2; sleep 0.01; done # {marker}"
    assert nopasswd_ssh.run(f"id -un; sh -c '{writer}' &", become=root).stdout.startswith("root\n")
    try:
        for _ in range(20):
            result = nopasswd_ssh.run("echo clean; echo quiet >&2")
            assert (result.stdout, result.stderr) == ("clean\n", "quiet\n")
        assert parent(nopasswd_ssh) != before
    finally:
        pattern = f"[{marker[0]}]{marker[1:]}"
        nopasswd_ssh.run(f"pkill -f -- '{pattern}'", become=root)
