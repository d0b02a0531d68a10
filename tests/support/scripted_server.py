"""An in-process SSH server (paramiko ``ServerInterface``) on 127.0.0.1:0 for faults.

It produces what a real sshd will not do on demand, and needs no root:
password and keyboard-interactive logins it counts, a channel closed
without an exit status, a session dropped in the middle of a command. Each
exec request is answered by a ``Behaviour`` callable instead of a shell.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

Behaviour = Callable[[paramiko.Channel, paramiko.Transport], None]


def exits_with(code: int, stdout: bytes = b"") -> Behaviour:
    def behave(channel: paramiko.Channel, transport: paramiko.Transport) -> None:
        channel.sendall(stdout)
        channel.send_exit_status(code)
        channel.close()

    return behave


def closes_without_status(stdout: bytes) -> Behaviour:
    def behave(channel: paramiko.Channel, transport: paramiko.Transport) -> None:
        channel.sendall(stdout)
        channel.close()

    return behave


def drops_session(stdout: bytes) -> Behaviour:
    def behave(channel: paramiko.Channel, transport: paramiko.Transport) -> None:
        channel.sendall(stdout)
        transport.close()

    return behave


@dataclass
class Interface(paramiko.ServerInterface):
    """Accepts ``user`` with ``password`` by the allowed ``methods``; counts every attempt."""

    user: str
    password: str
    methods: tuple[str, ...]
    attempts: list[str] = field(default_factory=list)
    execs: list[bytes] = field(default_factory=list)
    exec_seen: threading.Event = field(default_factory=threading.Event)

    def get_allowed_auths(self, username: str) -> str:
        return ",".join(self.methods)

    def check_auth_none(self, username: str) -> int:
        self.attempts.append("none")
        return paramiko.AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        self.attempts.append("password")
        ok = "password" in self.methods and (username, password) == (self.user, self.password)
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        self.attempts.append("publickey")
        return paramiko.AUTH_FAILED

    def check_auth_interactive(self, username: str, submethods: str) -> paramiko.InteractiveQuery:
        self.attempts.append("keyboard-interactive")
        return paramiko.InteractiveQuery("", "", ("Password: ", False))

    def check_auth_interactive_response(self, responses: list[str]) -> int:
        ok = list(responses) == [self.password]
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        self.execs.append(command)
        self.exec_seen.set()
        return True


@dataclass
class ScriptedServer:
    port: int
    interface: Interface
    known_hosts: Path


@contextlib.contextmanager
def scripted_server(
    directory: Path, behaviour: Behaviour, *, password: str, methods: tuple[str, ...]
) -> Iterator[ScriptedServer]:
    """Serve one connection on 127.0.0.1 with ``behaviour`` answering every exec request."""
    host_key = paramiko.ECDSAKey.generate()
    interface = Interface("tester", password, methods)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    known_hosts = directory / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key.get_name()} {host_key.get_base64()}\n")
    transports: list[paramiko.Transport] = []

    def serve() -> None:
        # the client may hang up at any point (that is what several tests do)
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            sock, _ = listener.accept()
            transport = paramiko.Transport(sock)
            transports.append(transport)
            transport.add_server_key(host_key)
            transport.start_server(server=interface)
            while transport.is_active():
                channel = transport.accept(timeout=1)
                if channel is not None and interface.exec_seen.wait(10):
                    interface.exec_seen.clear()
                    behaviour(channel, transport)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield ScriptedServer(port, interface, known_hosts)
    finally:
        listener.close()
        for transport in transports:
            transport.close()
        thread.join(10)
