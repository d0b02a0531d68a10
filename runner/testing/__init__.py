"""Test support shipped with remedy: fake and recording connections, throwaway sshd servers.

Test support, for tests only (remedy's own and its users'). Pass these in
where a ``Connection`` is expected; nothing needs patching.

* ``FakeConnection(responses)``: a scripted connection. ``responses`` maps a
  command (exact string, compiled regex matched in full, or a predicate) to a
  ``CommandResult``, a plain stdout string, a callable ``FakeCall -> result``
  or an exception to raise. Every call lands in ``.calls``; an unknown
  command raises ``UnexpectedCommandError`` (an ``AssertionError``). Its
  ``whoami`` is the ``login`` it was given; without one (None) the caller asks
  the host, with a command the responses must answer (``id -u; id -un``).
* ``RecordingConnection(inner)``: forwards to any connection and records
  every call in ``.calls``.
* ``Sshd``: a real OpenSSH server on 127.0.0.1 and a free port, with a fresh
  ed25519 host key, a client key pair, ``authorized_keys`` and a known_hosts
  file naming it ``[127.0.0.1]:PORT``; ``SshdFleet(n)`` starts n of them in
  parallel, sharing one client key and one known_hosts. They live in
  ``runner.testing.sshdlab`` and are re-exported here.

Example::

    conn = FakeConnection({"id -u": "0\\n", re.compile(r"test -e .*"): result(rc=1)})
    with Sshd() as server:
        ssh = open_connection(server.params("web1"))
"""

from __future__ import annotations

import dataclasses
import errno
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeAlias

from runner.connection import Become, Connection, HeldCommand, Login
from runner.results import CommandResult
from runner.testing.sshdlab import SSHD_PATH, ClientKeys, Sshd, SshdFleet

__all__ = [
    "SSHD_PATH",
    "ClientKeys",
    "FakeCall",
    "FakeConnection",
    "FakeHeld",
    "RecordingConnection",
    "Sshd",
    "SshdFleet",
    "UnexpectedCommandError",
    "result",
]


@dataclass(frozen=True)
class FakeCall:
    """One call made on a fake or recording connection."""

    command: str
    stdin: bytes | None = None
    become: Become | None = None
    env: Mapping[str, str] | None = None
    timeout: float | None = None
    contained: bool = False


Response: TypeAlias = CommandResult | str | BaseException | Callable[[FakeCall], CommandResult]
Matcher: TypeAlias = str | re.Pattern[str] | Callable[[str], bool]


class UnexpectedCommandError(AssertionError):
    """A ``FakeConnection`` was sent a command that no response matches."""

    def __init__(self, host: str, command: str) -> None:
        self.command = command
        super().__init__(f"{host}: unexpected command: {command!r}")


def result(stdout: str = "", stderr: str = "", rc: int | None = 0) -> CommandResult:
    """A ``CommandResult`` for scripting; the command is filled in when it is returned."""
    return CommandResult(command="", rc=rc, stdout=stdout, stderr=stderr)


class FakeConnection:
    """A scripted ``Connection``: canned results, recorded calls, files in a dict."""

    def __init__(
        self,
        responses: Mapping[Matcher, Response] | None = None,
        *,
        host: str = "fake",
        files: Mapping[str, bytes] | None = None,
        login: Login | None = None,
    ) -> None:
        self.host = host
        self.responses: dict[Matcher, Response] = dict(responses or {})
        self.calls: list[FakeCall] = []
        self.files: dict[str, bytes] = dict(files or {})
        self.login = login
        self.closed = False
        self.interrupted = False

    @property
    def commands(self) -> list[str]:
        return [call.command for call in self.calls]

    def connect(self) -> None:
        """Nothing to open."""

    def whoami(self) -> Login | None:
        """The ``login`` given; see ``Connection.whoami``."""
        return self.login

    def run(
        self,
        command: str,
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        become: Become | None = None,
        env: Mapping[str, str] | None = None,
        contained: bool = False,
    ) -> CommandResult:
        """The scripted result for ``command``; see ``Connection.run``."""
        call = FakeCall(command, stdin, become, dict(env) if env else None, timeout, contained)
        self.calls.append(call)
        response = self._match(command)
        if isinstance(response, BaseException):
            raise response
        if isinstance(response, str):
            return CommandResult(command=command, rc=0, stdout=response)
        value = response if isinstance(response, CommandResult) else response(call)
        return dataclasses.replace(value, command=command)

    def _match(self, command: str) -> Response:
        if command in self.responses:
            return self.responses[command]
        for matcher, response in self.responses.items():
            if isinstance(matcher, re.Pattern) and matcher.fullmatch(command):
                return response
            if callable(matcher) and not isinstance(matcher, re.Pattern) and matcher(command):
                return response
        raise UnexpectedCommandError(self.host, command)

    def put(self, data: bytes, path: str) -> None:
        self.files[path] = bytes(data)

    def get(self, path: str, *, limit: int = 64 * 1024 * 1024) -> bytes:
        if path not in self.files:
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
        if len(self.files[path]) > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes", path)
        return self.files[path]

    def interrupt(self) -> None:
        """Record the interruption (a fake command never runs long enough to be killed)."""
        self.interrupted = True

    def hold(self, command: str) -> HeldCommand:
        """A held command whose output lines are the scripted result's stdout."""
        return FakeHeld(self.run(command).stdout.splitlines())

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeHeld:
    """A ``HeldCommand`` replaying fixed lines; ``closed`` tells whether it was released."""

    lines: list[str]
    closed: bool = False

    @property
    def running(self) -> bool:
        return not self.closed and bool(self.lines)

    def readline(self, timeout: float) -> str | None:
        return self.lines.pop(0) if self.lines and not self.closed else None

    def close(self) -> None:
        self.closed = True


class RecordingConnection:
    """Wraps any ``Connection`` and records every command it is sent in ``.calls``."""

    def __init__(self, inner: Connection) -> None:
        self.inner = inner
        self.host = inner.host
        self.calls: list[FakeCall] = []
        self.held: list[str] = []

    @property
    def commands(self) -> list[str]:
        return [call.command for call in self.calls]

    def connect(self) -> None:
        self.inner.connect()

    def whoami(self) -> Login | None:
        return self.inner.whoami()

    def run(
        self,
        command: str,
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        become: Become | None = None,
        env: Mapping[str, str] | None = None,
        contained: bool = False,
    ) -> CommandResult:
        self.calls.append(FakeCall(command, stdin, become, dict(env) if env else None, timeout, contained))
        return self.inner.run(command, stdin=stdin, timeout=timeout, become=become, env=env,
                              contained=contained)

    def put(self, data: bytes, path: str) -> None:
        self.inner.put(data, path)

    def get(self, path: str, *, limit: int = 64 * 1024 * 1024) -> bytes:
        return self.inner.get(path, limit=limit)

    def interrupt(self) -> None:
        self.inner.interrupt()

    def hold(self, command: str) -> HeldCommand:
        self.held.append(command)
        return self.inner.hold(command)

    def close(self) -> None:
        self.inner.close()
