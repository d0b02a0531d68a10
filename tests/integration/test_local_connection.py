"""LocalConnection: the same contract as SSH on the controller itself."""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.connection import OUTPUT_CAP, Become, ConnectionParams, open_connection
from runner.connection.local import LocalConnection
from runner.errors import CommandTimeout
from tests.support.processes import tagged
from tests.support.waiting import wait_until

MIB = 1024 * 1024
ME = pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture
def local() -> Iterator[LocalConnection]:
    conn = LocalConnection(ConnectionParams(name="localhost", address="localhost", kind="local"))
    yield conn
    conn.close()


def gone(marker: str) -> Callable[[], bool]:
    return lambda: subprocess.run(["pgrep", "-f", "--", marker], capture_output=True).returncode == 1


def test_open_connection_picks_local_without_importing_paramiko() -> None:
    code = (
        "import sys; from runner.connection import ConnectionParams, open_connection; "
        "c = open_connection(ConnectionParams(name='l', address='l', kind='local')); "
        "print(c.run('echo hi').stdout.strip(), 'paramiko' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["hi", "False"]


def test_unknown_connection_kinds_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown connection kind 'telnet'"):
        open_connection(ConnectionParams(name="x", address="x", kind="telnet"))


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_exit_codes_are_returned_not_raised(local: LocalConnection, code: int) -> None:
    result = local.run(f"echo out; echo err >&2; exit {code}")
    assert (result.rc, result.stdout, result.stderr) == (code, "out\n", "err\n")


def test_a_command_killed_by_a_signal_exits_128_plus_the_signal(local: LocalConnection) -> None:
    assert local.run("kill -KILL $$").rc == 128 + 9


def test_stdin_data_reaches_the_command(local: LocalConnection) -> None:
    data = bytes(range(256)) * 4096
    assert local.run("sha256sum").stdout.startswith(hashlib.sha256(b"").hexdigest())
    result = local.run("sha256sum", stdin=data)
    assert result.stdout.startswith(hashlib.sha256(data).hexdigest())


def test_env_values_arrive_literally(local: LocalConnection) -> None:
    value = "$(id) `id` ${HOME} 'single' \"double\" \\ ; | & * \n end"
    result = local.run('printf %s "$REMEDY_VALUE"', env={"REMEDY_VALUE": value})
    assert result.stdout == value


def test_non_utf8_output_is_backslash_escaped(local: LocalConnection) -> None:
    result = local.run("printf 'ok \\377\\376\\000 caf\\303\\251'")
    assert result.stdout == "ok \\xff\\xfe\x00 café"


def test_ten_mib_on_both_streams_at_once_is_drained_and_capped(local: LocalConnection) -> None:
    command = "head -c 10485760 /dev/zero | tr '\\0' o & head -c 10485760 /dev/zero | tr '\\0' e >&2; wait"
    result = local.run(command, timeout=120)
    assert result.rc == 0 and result.truncated
    for text, char in ((result.stdout, "o"), (result.stderr, "e")):
        assert len(text.encode()) <= OUTPUT_CAP
        assert text.startswith(char * 1000) and text.endswith(char * 1000)
        assert f"bytes of output omitted; {10 * MIB} bytes in all" in text


def test_the_cap_keeps_head_and_tail_with_a_note_between() -> None:
    conn = LocalConnection(ConnectionParams(name="l", address="l", kind="local"), cap=300)
    result = conn.run("seq 1 1000")
    parts = re.fullmatch(r"(.*)\n\[(remedy: [^\]]*)\]\n(.*)", result.stdout, re.DOTALL)
    assert parts is not None and result.truncated
    head, note, tail = parts.groups()
    assert head.startswith("1\n2\n3\n") and tail.endswith("999\n1000\n")
    assert note.startswith("remedy: ") and "3893 bytes in all" in note
    assert not conn.run("seq 1 10").truncated


def test_a_timeout_kills_the_whole_process_group(local: LocalConnection, tmp_path: Path) -> None:
    marker = f"remedy-local-{tmp_path.name}"
    start = time.monotonic()
    with pytest.raises(CommandTimeout) as caught:
        local.run(f"echo started; {tagged('sleep 300 & sleep 301; wait', marker)}", timeout=1)
    assert time.monotonic() - start < 15
    assert caught.value.result.stdout == "started\n" and caught.value.result.timed_out
    wait_until(gone(marker), what="the timed-out processes to end")


def test_output_held_open_by_a_background_process_does_not_block(local: LocalConnection) -> None:
    start = time.monotonic()
    result = local.run("(sleep 30 &) ; echo done", timeout=20)
    assert result.stdout == "done\n" and result.rc == 0
    assert time.monotonic() - start < 10
    local.run("pkill -f '^sleep 30$'")


def test_become_another_user_with_sudo_n_as_root(local: LocalConnection) -> None:
    if ME != "root":
        pytest.skip("sudo -n without a password needs root")
    assert local.run("id -un", become=Become(user="nobody")).stdout == "nobody\n"


def test_become_the_current_user_skips_sudo(local: LocalConnection) -> None:
    result = local.run("ps -o args= -p $PPID; id -un", become=Become(user=ME))
    assert "sudo" not in result.stdout and result.stdout.endswith(f"{ME}\n")


def test_put_and_get_files(local: LocalConnection, tmp_path: Path) -> None:
    path = str(tmp_path / "f.bin")
    local.put(b"\x00data", path)
    assert local.get(path) == b"\x00data"
    with pytest.raises(OSError, match="larger than"):
        local.get(path, limit=2)
    with pytest.raises(FileNotFoundError):
        local.get(str(tmp_path / "missing"))


def test_a_held_command_ends_when_closed(local: LocalConnection, tmp_path: Path) -> None:
    marker = f"remedy-held-{tmp_path.name}"
    held = local.hold(f"echo LOCKED; cat; echo {marker} >/dev/null")
    assert held.readline(10) == "LOCKED"
    assert held.readline(0.2) is None and held.running
    held.close()
    assert not held.running
    wait_until(gone(marker), what="the held command to end")


def test_closing_the_connection_ends_its_held_commands(tmp_path: Path) -> None:
    conn = LocalConnection(ConnectionParams(name="l", address="l", kind="local"))
    marker = f"remedy-held-{tmp_path.name}"
    held = conn.hold(f"echo LOCKED; cat; echo {marker} >/dev/null")
    assert held.readline(10) == "LOCKED"
    conn.close()
    conn.close()
    wait_until(gone(marker), what="the held command to end")


def test_nul_and_control_bytes_on_stderr_survive(local: LocalConnection) -> None:
    result = local.run("printf 'a\\000b\\033[31m' >&2; exit 2")
    assert result.stderr == "a\x00b\x1b[31m" and result.rc == 2
