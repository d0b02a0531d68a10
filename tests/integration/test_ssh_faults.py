"""SSH faults a real sshd does not produce on demand, against an in-process server."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.connection import Connection, ConnectionParams, open_connection
from runner.errors import ConnectionLost, UnreachableError
from tests.support.scripted_server import (
    Behaviour,
    ScriptedServer,
    closes_without_status,
    drops_session,
    exits_with,
    scripted_server,
)

PASSWORD = "s3cret-canary-41"


def params(server: ScriptedServer, tmp_path: Path, password: str = PASSWORD) -> ConnectionParams:
    config = tmp_path / "ssh_config"
    config.touch()
    return ConnectionParams(
        name="scripted",
        address="127.0.0.1",
        port=server.port,
        user="tester",
        password=password,
        known_hosts=str(server.known_hosts),
        ssh_config=str(config),
        key_file=str(tmp_path / "no-such-key"),
        connect_timeout=5.0,
        persistent_shell=False,  # each scripted behaviour answers one exec channel
    )


Serve = Callable[..., ScriptedServer]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """``serve(behaviour, methods=...)``: a scripted server, stopped after the test."""
    with contextlib.ExitStack() as stack:

        def _serve(behaviour: Behaviour, methods: tuple[str, ...] = ("password",)) -> ScriptedServer:
            server = scripted_server(tmp_path, behaviour, password=PASSWORD, methods=methods)
            return stack.enter_context(server)

        yield _serve


def connected(server: ScriptedServer, tmp_path: Path) -> Connection:
    conn = open_connection(params(server, tmp_path))
    conn.connect()
    return conn


def test_password_auth_is_tried_once(serve: Serve, tmp_path: Path) -> None:
    server = serve(exits_with(0, b"hello\n"))
    conn = connected(server, tmp_path)
    try:
        assert conn.run("anything").stdout == "hello\n"
    finally:
        conn.close()
    assert server.interface.attempts.count("password") == 1


def test_a_wrong_password_is_one_attempt_and_an_auth_error(serve: Serve, tmp_path: Path) -> None:
    server = serve(exits_with(0))
    conn = open_connection(params(server, tmp_path, password="canary-bad-7731"))
    with pytest.raises(UnreachableError) as caught:
        conn.connect()
    assert caught.value.reason == "auth"
    assert server.interface.attempts.count("password") == 1
    assert "canary-bad-7731" not in str(caught.value)


def test_keyboard_interactive_answers_with_the_password(serve: Serve, tmp_path: Path) -> None:
    server = serve(exits_with(3), methods=("keyboard-interactive",))
    conn = connected(server, tmp_path)
    try:
        assert conn.run("x").rc == 3
    finally:
        conn.close()
    assert "keyboard-interactive" in server.interface.attempts


def test_a_channel_closed_without_exit_status_has_an_unknown_code(serve: Serve, tmp_path: Path) -> None:
    server = serve(closes_without_status(b"partial\n"))
    conn = connected(server, tmp_path)
    try:
        result = conn.run("x", timeout=10)
    finally:
        conn.close()
    assert result.rc is None and not result.ok
    assert result.stdout == "partial\n"


def test_a_session_dropped_mid_command_is_connection_lost(serve: Serve, tmp_path: Path) -> None:
    server = serve(drops_session(b"partial\n"))
    conn = connected(server, tmp_path)
    try:
        with pytest.raises(ConnectionLost) as caught:
            conn.run("x", timeout=10)
    finally:
        conn.close()
    assert caught.value.result.rc is None


def test_the_wrapped_command_is_one_sh_line_without_secrets(serve: Serve, tmp_path: Path) -> None:
    server = serve(exits_with(0))
    conn = connected(server, tmp_path)
    try:
        conn.run("echo hi", env={"TOKEN": "$(id)"})
    finally:
        conn.close()
    (line,) = server.interface.execs
    assert b"setsid -w sh -c" in line
    assert b"echo hi" not in line and b"TOKEN" not in line  # the command's text comes on stdin
    assert PASSWORD.encode() not in line
