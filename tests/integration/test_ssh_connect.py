"""SSHConnection against real sshd servers: authentication, host keys, unreachable hosts."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from runner.connection import Connection, ConnectionParams, open_connection
from runner.connection.gate import ATTEMPTS, HANDSHAKES
from runner.errors import UnreachableError
from runner.testing import Sshd
from tests.support.accounts import Account
from tests.support.loopback import CountingListener, closed_port, silent_listener
from tests.support.prerequisites import require_sshd
from tests.support.waiting import wait_until

Connect = Callable[[ConnectionParams], Connection]


def unreachable(params: ConnectionParams) -> UnreachableError:
    conn = open_connection(params)
    try:
        with pytest.raises(UnreachableError) as caught:
            conn.connect()
    finally:
        conn.close()
    return caught.value


def session_closed(server: Sshd, before: int) -> Callable[[], bool]:
    """Whether the server logged the end of a connection after log offset ``before``."""
    ends = ("Connection closed by", "Connection reset by", "Disconnected from", "do_cleanup")
    return lambda: any(end in server.log_text()[before:] for end in ends)


def test_key_auth_runs_commands_as_the_key_owner(sshd: Sshd, connect: Connect) -> None:
    conn = connect(sshd.params("web1"))
    assert conn.run("id -un").stdout.strip() == sshd.user
    assert sshd.auth_attempts() >= 1


def test_one_session_serves_every_command_and_transfer(sshd: Sshd, connect: Connect) -> None:
    conn = connect(sshd.params("web1"))
    for _ in range(5):
        assert conn.run("true").ok
    conn.put(b"x", f"{sshd.directory}/probe")
    assert conn.get(f"{sshd.directory}/probe") == b"x"
    assert sshd.log_text().count("Accepted publickey") == 1


def test_unknown_host_key_is_refused_before_authentication(sshd: Sshd, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    before = len(sshd.log_text())
    error = unreachable(sshd.params("web1", known_hosts=str(empty)))
    assert error.reason == "host_key"
    assert error.host == "web1"
    assert sshd.host_key_fingerprint in error.detail
    assert "expected none" in error.detail
    wait_until(session_closed(sshd, before), what="sshd to log the closed connection")
    assert sshd.auth_attempts() == 0
    assert empty.read_text() == ""


def test_changed_host_key_is_refused_with_both_fingerprints(sshd: Sshd) -> None:
    old = sshd.host_key_fingerprint
    sshd.restart_with_new_host_key()
    new = sshd.host_key_fingerprint
    assert old != new
    before = len(sshd.log_text())
    error = unreachable(sshd.params("web1", accept_new_host_keys=True, password="never-sent"))
    assert error.reason == "host_key"
    assert f"expected ssh-ed25519 {old}" in error.detail
    assert f"actual ssh-ed25519 {new}" in error.detail
    wait_until(session_closed(sshd, before), what="sshd to log the closed connection")
    assert sshd.auth_attempts() == 0


def test_accept_new_records_an_unknown_key_and_then_trusts_only_it(
    sshd: Sshd, tmp_path: Path, connect: Connect
) -> None:
    known = tmp_path / "ssh" / "known_hosts"
    params = sshd.params("web1", known_hosts=str(known), accept_new_host_keys=True)
    assert connect(params).run("true").ok
    line = known.read_text()
    assert line.startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
    assert known.stat().st_mode & 0o777 == 0o600
    sshd.restart_with_new_host_key()
    assert unreachable(params).reason == "host_key"
    assert known.read_text() == line


def test_a_hashed_entry_among_many_others_is_found_and_checked(
    sshd: Sshd, tmp_path: Path, connect: Connect
) -> None:
    known = tmp_path / "known_hosts"
    kind, blob = Path(f"{sshd.host_key}.pub").read_text().split()[:2]
    others = [f"[10.9.{i // 250}.{i % 250}]:2222 {kind} {blob}" for i in range(3000)]
    known.write_text("\n".join(["# comment", "[127.0.0.2]:22 ssh-ed25519 not-base64!", *others,
                                f"[127.0.0.1]:{sshd.port} {kind} {blob}", ""]))
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True)
    assert f"[127.0.0.1]:{sshd.port}" not in known.read_text()  # every name is hashed now
    params = sshd.params("web1", known_hosts=str(known))
    assert connect(params).run("true").ok
    sshd.restart_with_new_host_key()
    assert unreachable(params).reason == "host_key"


def test_a_host_on_port_22_is_looked_up_without_brackets(sshd: Sshd, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    kind, blob = Path(f"{sshd.host_key}.pub").read_text().split()[:2]
    known.write_text(f"127.0.0.1 {kind} {blob}\n")  # the wrong entry for a non-22 port
    assert unreachable(sshd.params("web1", known_hosts=str(known))).reason == "host_key"


def test_a_wrong_key_fails_auth(sshd: Sshd, tmp_path: Path) -> None:
    other = Sshd()  # only for its freshly generated client key
    try:
        error = unreachable(sshd.params("web1", key_file=str(other.client_key)))
    finally:
        other.stop(remove=True)
    assert error.reason == "auth"
    assert "rejected" in error.detail


def test_a_missing_key_file_fails_auth_naming_it(sshd: Sshd, tmp_path: Path) -> None:
    error = unreachable(sshd.params("web1", key_file=str(tmp_path / "nope")))
    assert error.reason == "auth"
    assert "nope not found" in error.detail


def test_password_auth_and_the_password_stays_out_of_errors(
    shared_sshd: Sshd, account: Account, connect: Connect
) -> None:
    params = shared_sshd.params("web1", user=account.name, key_file=None, password=account.password)
    conn = connect(params)
    assert conn.run("id -un").stdout.strip() == account.name
    assert account.password not in repr(params) + repr(conn)
    wrong = dataclasses.replace(params, password=account.password + "x")
    error = unreachable(wrong)
    assert error.reason == "auth"
    assert "password rejected" in error.detail
    assert account.password not in str(error)


def test_connection_refused_on_a_closed_port_is_unreachable_connect(sshd: Sshd) -> None:
    error = unreachable(sshd.params("web1", port=closed_port()))
    assert error.reason == "connect"
    assert "refused" in error.detail.lower()


def test_a_listener_that_never_answers_times_out_within_the_connect_timeout(
    sshd: Sshd,
) -> None:
    with silent_listener() as port:
        start = time.monotonic()
        error = unreachable(sshd.params("web1", port=port, connect_timeout=1.0))
        elapsed = time.monotonic() - start
    assert error.reason == "connect"
    assert elapsed < 5


def test_at_most_eight_handshakes_go_to_one_server_at_once(sshd: Sshd) -> None:
    # sshd drops unauthenticated connections past MaxStartups (by default from 10 on)
    with CountingListener(hang_up=False) as server, ThreadPoolExecutor(20) as pool:
        hosts = [sshd.params(f"web{i:02d}", port=server.port, connect_timeout=1.0) for i in range(20)]
        errors = list(pool.map(unreachable, hosts))
    assert all(e.reason == "connect" for e in errors)
    assert server.accepted == 20 and server.most_open == HANDSHAKES


def test_a_connection_closed_before_the_banner_is_dialled_again(sshd: Sshd) -> None:
    with CountingListener(hang_up=True) as server:
        error = unreachable(sshd.params("web1", port=server.port))
    assert error.reason == "connect"
    assert f"closed before the banner, {ATTEMPTS} attempts" in error.detail
    assert server.accepted == ATTEMPTS


def test_idle_connections_wake_their_threads_about_once_a_second(
    shared_sshd: Sshd, connect: Connect
) -> None:
    conns = [connect(shared_sshd.params(f"web{i:02d}")) for i in range(10)]
    assert all(conn.run("true").rc == 0 for conn in conns)
    before = wakeups()
    threading.Event().wait(3.0)  # the window measured: ten connections with nothing to do
    woken = wakeups() - before
    assert woken < 120, f"{woken} wakeups in 3 s"  # every 0.1 s would be 300


def wakeups() -> int:
    """Voluntary context switches of every thread of this process so far."""
    total = 0
    for status in Path("/proc/self/task").glob("*/status"):
        for line in status.read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def test_ssh_agent_keys_are_offered_when_no_key_file_is_given(
    sshd: Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, connect: Connect
) -> None:
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(socket_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(socket_path.exists, what="ssh-agent's socket")
        env = {**os.environ, "SSH_AUTH_SOCK": str(socket_path)}
        subprocess.run(["ssh-add", "-q", str(sshd.client_key)], env=env, check=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
        monkeypatch.setenv("HOME", str(tmp_path))  # no default ~/.ssh/id_* keys
        conn = connect(sshd.params("web1", key_file=None))
        assert conn.run("true").ok
    finally:
        agent.terminate()
        agent.wait(10)


def _cipher(conn: Connection) -> str:
    transport = conn._transport()  # type: ignore[attr-defined]
    return f"{transport.local_cipher}/{transport.remote_cipher}"


def test_sessions_use_aes_gcm_where_the_server_offers_it(sshd: Sshd, connect: Connect) -> None:
    conn = connect(sshd.params("web1"))
    assert conn.run("true").ok
    assert _cipher(conn) == "aes128-gcm@openssh.com/aes128-gcm@openssh.com"


def test_a_server_without_aes_gcm_gets_another_cipher(connect: Connect) -> None:
    require_sshd()
    with Sshd(config="Ciphers aes256-ctr") as server:
        conn = connect(server.params("web1"))
        assert conn.run("echo ok").stdout == "ok\n"
        assert _cipher(conn) == "aes256-ctr/aes256-ctr"
