"""SSHConnection.run against a real sshd: exit codes, streams, caps, timeouts, sudo, files."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paramiko
import pytest

from runner.connection import OUTPUT_CAP, Become, Connection, ConnectionParams, HeldCommand
from runner.connection.channels import CHUNK
from runner.errors import CommandTimeout, ConnectionLost
from runner.testing import Sshd
from tests.support.processes import tagged
from tests.support.waiting import wait_until

Connect = Callable[[ConnectionParams], Connection]
MIB = 1024 * 1024


def gone(conn: Connection, marker: str) -> Callable[[], bool]:
    """Whether no process on the host has ``marker`` in its command line."""
    pattern = f"[{marker[0]}]{marker[1:]}"  # keeps pgrep from matching its own shell
    return lambda: conn.run(f"pgrep -f -- '{pattern}'").rc == 1


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_exit_codes_are_returned_not_raised(ssh: Connection, code: int) -> None:
    result = ssh.run(f"echo out; echo err >&2; exit {code}")
    assert (result.rc, result.stdout, result.stderr) == (code, "out\n", "err\n")
    assert result.ok is (code == 0)


def test_a_command_killed_by_a_signal_exits_128_plus_the_signal(ssh: Connection) -> None:
    assert ssh.run("kill -KILL $$").rc == 128 + 9


def test_stdin_data_reaches_the_command_and_is_closed_after(ssh: Connection) -> None:
    data = bytes(range(256)) * 4096
    result = ssh.run("sha256sum")
    assert result.stdout.startswith(hashlib.sha256(b"").hexdigest())
    result = ssh.run("sha256sum", stdin=data)
    assert result.stdout.startswith(hashlib.sha256(data).hexdigest())


def test_64_mib_of_stdin_arrives_intact_sent_a_chunk_at_a_time(
    ssh: Connection, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # paramiko's sendall copies what is left after every packet: 64 MiB given whole took a minute
    sizes: list[int] = []
    sendall = paramiko.Channel.sendall

    def counted(channel: paramiko.Channel, data: bytes) -> None:
        sizes.append(len(data))
        sendall(channel, data)

    monkeypatch.setattr(paramiko.Channel, "sendall", counted)
    data = bytes(range(256)) * (64 * MIB // 256)
    result = ssh.run("sha256sum", stdin=data, timeout=300)
    assert result.stdout.startswith(hashlib.sha256(data).hexdigest())
    assert sum(sizes) >= len(data) and max(sizes) <= CHUNK


def test_env_values_arrive_literally(ssh: Connection) -> None:
    value = "$(id) `id` ${HOME} 'single' \"double\" \\ ; | & * \n end"
    result = ssh.run('printf %s "$REMEDY_VALUE"', env={"REMEDY_VALUE": value})
    assert result.stdout == value


def test_invalid_env_names_are_rejected_before_sending(ssh: Connection) -> None:
    with pytest.raises(ValueError, match="invalid environment variable name"):
        ssh.run("true", env={"A;reboot": "x"})


def test_non_utf8_output_is_backslash_escaped(ssh: Connection) -> None:
    result = ssh.run("printf 'ok \\377\\376\\000 caf\\303\\251'")
    assert result.stdout == "ok \\xff\\xfe\x00 café"


def test_ten_mib_on_both_streams_at_once_is_drained_and_capped(ssh: Connection) -> None:
    command = "head -c 10485760 /dev/zero | tr '\\0' o & head -c 10485760 /dev/zero | tr '\\0' e >&2; wait"
    result = ssh.run(command, timeout=120)
    assert result.rc == 0 and result.truncated
    for text, char in ((result.stdout, "o"), (result.stderr, "e")):
        assert len(text.encode()) <= OUTPUT_CAP
        assert text.startswith(char * 1000) and text.endswith(char * 1000)
        assert f"bytes of output omitted; {10 * MIB} bytes in all" in text


def test_a_timeout_kills_the_whole_remote_process_group(ssh: Connection, marker: str) -> None:
    start = time.monotonic()
    with pytest.raises(CommandTimeout) as caught:
        ssh.run(f"echo started; {tagged('sleep 300 & sleep 301; wait', marker)}", timeout=1)
    assert time.monotonic() - start < 15
    assert caught.value.result.timed_out and caught.value.result.rc is None
    assert caught.value.result.stdout == "started\n"
    wait_until(gone(ssh, marker), what="the timed-out processes to end")
    assert ssh.run("echo still usable").stdout == "still usable\n"


def test_a_timeout_kills_a_group_that_ignores_term(ssh: Connection, marker: str) -> None:
    with pytest.raises(CommandTimeout):
        ssh.run(tagged("trap '' TERM; sleep 300", marker), timeout=1)
    wait_until(gone(ssh, marker), what="KILL to end a TERM-ignoring command")


def test_a_killed_session_mid_command_is_connection_lost(sshd: Sshd, connect: Connect, marker: str) -> None:
    conn = connect(sshd.params("web1"))
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            conn.run(f"echo started; {tagged('sleep 300', marker)}", timeout=60)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        with_marker = "[" + marker[0] + "]" + marker[1:]
        checker = connect(sshd.params("checker"))
        wait_until(lambda: checker.run(f"pgrep -f -- '{with_marker}'").ok, what="the command")
        checker.close()
        sshd.kill_sessions()
        worker.join(30)
    finally:
        worker.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], ConnectionLost), outcome
    assert outcome[0].result.rc is None
    assert outcome[0].result.stdout == "started\n"
    after = connect(sshd.params("after"))
    after.run(f"pkill -f -- '{with_marker}'")


def test_become_with_sudo_n_as_root(ssh: Connection, shared_sshd: Sshd) -> None:
    if shared_sshd.user != "root":
        pytest.skip("sudo -n without a password needs the login user to be root")
    result = ssh.run("id -un; echo $HOME", become=Become(user="nobody"))
    assert result.stdout.split()[0] == "nobody"


def test_become_the_login_user_skips_sudo(ssh: Connection, shared_sshd: Sshd) -> None:
    result = ssh.run("ps -o args= -p $PPID; id -un", become=Become(user=shared_sshd.user))
    assert "sudo" not in result.stdout
    assert result.stdout.splitlines()[-1] == shared_sshd.user


def test_put_and_get_over_sftp(ssh: Connection, shared_sshd: Sshd) -> None:
    path = f"{shared_sshd.directory}/transfer.bin"
    data = bytes(range(256)) * 8192
    ssh.put(data, path)
    assert ssh.get(path) == data
    with pytest.raises(OSError, match="larger than"):
        ssh.get(path, limit=1000)
    with pytest.raises(FileNotFoundError):
        ssh.get(f"{shared_sshd.directory}/missing")


def test_a_held_command_ends_on_the_host_when_closed(ssh: Connection, marker: str) -> None:
    held = ssh.hold(f"echo LOCKED; cat; echo {marker} >/dev/null")
    assert held.readline(10) == "LOCKED"
    assert held.readline(0.2) is None
    assert held.running
    pattern = f"[{marker[0]}]{marker[1:]}"
    assert ssh.run(f"pgrep -f -- '{pattern}'").ok
    held.close()
    held.close()
    wait_until(gone(ssh, marker), what="the held command to end")


def test_what_a_held_command_does_as_its_stdin_ends_is_done_when_close_returns(
        ssh: Connection, shared_sshd: Sshd, marker: str) -> None:
    """The host lock empties its lock file as it is released: a run that has returned has no
    command left writing on the host (a directory removed right after would come back)."""
    done = f"{shared_sshd.directory}/{marker}.released"
    held = ssh.hold(f"echo LOCKED; cat; sleep 0.5; : > {done}")
    assert held.readline(10) == "LOCKED"
    held.close()
    assert ssh.run(f"test -e {done}").ok
    ssh.run(f"rm -f {done}")


def test_a_held_command_ends_when_the_session_dies(sshd: Sshd, connect: Connect, marker: str) -> None:
    conn = connect(sshd.params("web1"))
    held = conn.hold(f"echo LOCKED; cat; echo {marker} >/dev/null")
    assert held.readline(10) == "LOCKED"
    conn.close()  # drops the transport without closing the channel first
    checker = connect(sshd.params("checker"))
    wait_until(gone(checker, marker), what="the held command to end with its session")


def test_the_host_lock_pattern_reports_busy_to_a_second_holder(ssh: Connection, tmp_path: Path) -> None:
    lock = f"/tmp/remedy-test-{tmp_path.name}.lock"
    command = f"flock -n {lock} -c 'echo LOCKED; cat' || echo BUSY"
    first = ssh.hold(command)
    assert first.readline(10) == "LOCKED"
    second = ssh.hold(command)
    assert second.readline(10) == "BUSY"
    second.close()
    first.close()

    def take() -> HeldCommand | None:
        held = ssh.hold(command)
        if held.readline(10) == "LOCKED":
            return held
        held.close()
        return None

    wait_until(take, what="the released lock to be free").close()
    ssh.run(f"rm -f {lock}")


def test_a_lost_session_is_not_silently_replaced(sshd: Sshd, connect: Connect) -> None:
    conn = connect(sshd.params("web1"))
    held = conn.hold("echo LOCKED; cat")
    assert held.readline(10) == "LOCKED"
    sshd.kill_sessions()
    wait_until(lambda: not held.running, what="the held command to see its session end")
    with pytest.raises(ConnectionLost, match="close\\(\\) to reconnect"):
        conn.run("true")
    conn.close()
    assert conn.run("true").ok
