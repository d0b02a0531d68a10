"""``LocalConnection``: the ``Connection`` interface on the controller itself.

Services layer. Commands run as ``sh -c`` in a session of their own through
``subprocess``, wrapped exactly as on a remote host (``shell.wrap``), so that
process-group kill on timeout, sudo with the password on stdin, output caps
and env quoting behave the same as over SSH. Files are read and written
directly.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from runner.connection.conversation import Talk, converse
from runner.connection.interface import (
    DEFAULT_COMMAND_TIMEOUT,
    OUTPUT_CAP,
    Become,
    ConnectionParams,
    HeldCommand,
    Login,
)
from runner.connection.shell import KILL_GRACE, kill_script, wrap_as
from runner.errors import RemedyError
from runner.results import CommandResult

#: stdin up to this size (one pipe page, always free in a fresh pipe) is written at once;
#: larger stdin gets a writer thread so that output keeps flowing.
_INLINE_STDIN = 4096


class LocalConnection:
    """Runs commands on the controller; ``host`` is the inventory name."""

    def __init__(self, params: ConnectionParams, *, cap: int = OUTPUT_CAP) -> None:
        self.host = params.name
        self._params = params
        self._cap = cap
        self._user = pwd.getpwuid(os.geteuid()).pw_name
        self._held: list[LocalHeld] = []
        self._cancel = threading.Event()

    def __repr__(self) -> str:
        return f"LocalConnection(host={self.host!r}, user={self._user!r})"

    def connect(self) -> None:
        """Nothing to open for the local host."""

    def whoami(self) -> Login:
        """Who commands without ``become`` run as: this process's user."""
        return Login(os.geteuid(), self._user)

    def run(
        self,
        command: str,
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        become: Become | None = None,
        env: Mapping[str, str] | None = None,
        contained: bool = False,  # every local command has a session of its own anyway
        _uncancellable: bool = False,
    ) -> CommandResult:
        """Run ``command`` under ``sh -c``; see ``Connection.run``."""
        launch, sudo = wrap_as(command, env=env, become=become, login_user=self._user,
                               become_password=self._params.become_password)
        pipes = LocalPipes(launch.line)
        talk = Talk(
            stdin=stdin,
            timeout=DEFAULT_COMMAND_TIMEOUT if timeout is None else timeout,
            cap=self._cap,
            kill=lambda pgid: self._kill(pgid, sudo),
            cancel=None if _uncancellable else self._cancel,
        )
        return converse(self.host, command, launch, pipes, talk)

    def _kill(self, pgid: int, become: Become | None) -> None:
        """End process group ``pgid``: TERM, then KILL after a grace period."""
        with contextlib.suppress(RemedyError):
            self.run(kill_script(pgid), become=become, timeout=KILL_GRACE + 10, _uncancellable=True)

    def interrupt(self) -> None:
        """Stop every running and future command: kill its process group, raise ``CommandInterrupted``."""
        self._cancel.set()

    def put(self, data: bytes, path: str) -> None:
        """Write ``data`` to ``path`` (not atomic; callers write a temp path and rename)."""
        Path(path).write_bytes(data)

    def get(self, path: str, *, limit: int = 64 * 1024 * 1024) -> bytes:
        """Read ``path``.

        Raises:
            OSError: it cannot be read, or it is larger than ``limit`` bytes (EFBIG).
        """
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes", path)
        return data

    def hold(self, command: str) -> HeldCommand:
        """Start ``command`` with its stdin kept open; see ``HeldCommand``."""
        held = LocalHeld(command)
        self._held.append(held)
        return held

    def close(self) -> None:
        """End every held command; idempotent."""
        while self._held:
            self._held.pop().close()


class LocalPipes:
    """``conversation.Pipes`` over a subprocess started in a new session."""

    def __init__(self, line: str) -> None:
        self._proc = subprocess.Popen(
            ["/bin/sh", "-c", line],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._stdin: IO[bytes] | None = self._proc.stdin
        self._selector = selectors.DefaultSelector()
        assert self._proc.stdout is not None and self._proc.stderr is not None
        for stream, name in ((self._proc.stdout, "out"), (self._proc.stderr, "err")):
            os.set_blocking(stream.fileno(), False)
            self._selector.register(stream, selectors.EVENT_READ, name)

    def read(self) -> tuple[bytes, bytes]:
        chunks = {"out": b"", "err": b""}
        if not self._selector.get_map():
            return b"", b""
        for key, _ in self._selector.select(0):
            data = os.read(key.fd, 256 * 1024)
            if data:
                chunks[key.data] = data
            else:
                self._selector.unregister(key.fileobj)
                key.fileobj.close()  # type: ignore[union-attr]
        return chunks["out"], chunks["err"]

    def wait(self, timeout: float) -> None:
        if self._selector.get_map():
            self._selector.select(timeout)
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout)

    def finished(self) -> bool:
        return self._proc.poll() is not None

    def exit_code(self) -> int | None:
        code = self._proc.poll()
        return 128 - code if code is not None and code < 0 else code

    def drained(self) -> bool:
        return not self._selector.get_map()

    def lost(self) -> bool:
        return False

    def send(self, data: bytes) -> None:
        if self._stdin is not None:
            with contextlib.suppress(OSError):
                self._stdin.write(data)
                self._stdin.flush()

    def feed(self, data: bytes | None) -> None:
        stream, self._stdin = self._stdin, None
        if stream is None:
            return
        if not data or len(data) <= _INLINE_STDIN:
            _write_all(stream, data)  # an empty pipe takes this much without blocking
            return
        threading.Thread(target=_write_all, args=(stream, data), daemon=True).start()

    def close(self) -> None:
        if self._stdin is not None:
            with contextlib.suppress(OSError):
                self._stdin.close()
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(KILL_GRACE)
        for key in list(self._selector.get_map().values()):
            self._selector.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()


def _write_all(stream: IO[bytes], data: bytes | None) -> None:
    with contextlib.suppress(OSError):
        if data:
            stream.write(data)
            stream.flush()
    with contextlib.suppress(OSError):
        stream.close()


class LocalHeld:
    """A ``HeldCommand`` over a local subprocess in its own session."""

    def __init__(self, command: str) -> None:
        self._proc = subprocess.Popen(
            ["/bin/sh", "-c", command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert self._proc.stdout is not None
        self._out = self._proc.stdout
        os.set_blocking(self._out.fileno(), False)
        self._buffer = bytearray()
        self._ended = False

    @property
    def running(self) -> bool:
        return not self._ended

    def readline(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self._out, selectors.EVENT_READ)
            while b"\n" not in self._buffer and not self._ended:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    return None
                data = os.read(self._out.fileno(), 65536)
                self._buffer += data
                self._ended = not data
        if b"\n" not in self._buffer:
            return None
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        return line.decode("utf-8", "backslashreplace")

    def close(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(KILL_GRACE)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(KILL_GRACE)
        self._ended = True
        self._out.close()
