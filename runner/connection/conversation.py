"""Talking to one running command: capped capture, marker and sudo prompt, the pump loop.

Services layer, shared by ``ssh`` and ``local``. Each of them exposes its
process or channel as ``Pipes``; ``pump`` moves bytes between it and a
``Conversation`` until the command ends, the deadline passes, the session is
lost or sudo rejects the password. Both output streams are read in the same
loop and stdin is written by a background thread, so no stream can block
another, and at most ``cap`` bytes per stream are kept (head and tail).
"""

from __future__ import annotations

import enum
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from runner.connection.shell import KILL_GRACE, Launch
from runner.errors import CommandInterrupted, CommandTimeout, ConnectionLost
from runner.results import CommandResult

#: Seconds to keep reading after the exit status arrived while a background
#: process still holds the output open.
LINGER = 2.0
#: Longest single wait, so that liveness is re-checked regularly.
POLL = 1.0
#: Output held back while looking for the marker line or sudo's prompt.
_PREAMBLE_CAP = 64 * 1024
_NOTE_ROOM = 96
#: What ``CommandResult.stderr`` says when sudo rejected the password.
INCORRECT_PASSWORD = "sudo: incorrect password"  # noqa: S105 - a message, not a secret


def wait_readable(channel: object, timeout: float) -> None:
    """Block until ``channel`` (anything with ``fileno()``) is readable or ``timeout`` passes.

    ``poll``, not ``select``: with hundreds of hosts open, descriptors pass 1024.
    """
    poller = select.poll()
    poller.register(channel.fileno(), select.POLLIN)  # type: ignore[attr-defined]
    poller.poll(max(0.0, timeout) * 1000)


class Ending(enum.Enum):
    """How ``pump`` stopped."""

    EXITED = "exited"
    DEADLINE = "deadline"
    LOST = "lost"
    REJECTED = "rejected"  # sudo asked for the password again
    CANCELLED = "cancelled"  # the connection was interrupted (SIGINT/SIGTERM)


class Pipes(Protocol):
    """A running command's stdin, stdout, stderr and exit status."""

    def read(self) -> tuple[bytes, bytes]:
        """Output available now on (stdout, stderr), without blocking."""
        ...

    def wait(self, timeout: float) -> None:
        """Block until output may be available, the command ends, or ``timeout`` passes."""
        ...

    def finished(self) -> bool:
        """Whether the command is known to have ended."""
        ...

    def exit_code(self) -> int | None:
        """The exit code, once known."""
        ...

    def drained(self) -> bool:
        """Whether both output streams reached their end."""
        ...

    def lost(self) -> bool:
        """Whether the session died before the exit status arrived."""
        ...

    def send(self, data: bytes) -> None:
        """Write a few bytes to stdin now (sudo's password)."""
        ...

    def feed(self, data: bytes | None) -> None:
        """Write ``data`` to stdin in the background, then close stdin."""
        ...

    def close(self) -> None:
        """Stop talking to the command: close the channel or the pipes."""
        ...


class Capture:
    """At most ``cap`` bytes of one stream: its head and its tail, and how much was dropped."""

    def __init__(self, cap: int) -> None:
        self._head_cap = cap // 2
        self._tail_cap = max(0, cap - self._head_cap - _NOTE_ROOM)
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self._head_cap - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data and self._tail_cap:
            self._tail += data
            if len(self._tail) > 2 * self._tail_cap:
                del self._tail[: len(self._tail) - self._tail_cap]

    def _kept_tail(self) -> bytes:
        return bytes(self._tail[-self._tail_cap :]) if self._tail_cap else b""

    @property
    def truncated(self) -> bool:
        return self.total > len(self._head) + len(self._kept_tail())

    def text(self) -> str:
        """The kept bytes as UTF-8 (bad bytes backslash-escaped), with a note for any gap."""
        tail = self._kept_tail()
        head = self._head.decode("utf-8", "backslashreplace")
        if not self.truncated:
            return head + tail.decode("utf-8", "backslashreplace")
        dropped = self.total - len(self._head) - len(tail)
        note = f"\n[remedy: {dropped} bytes of output omitted; {self.total} bytes in all]\n"
        return head + note + tail.decode("utf-8", "backslashreplace")


class Conversation:
    """The controller's side of one wrapped command (see ``shell.wrap``)."""

    def __init__(self, launch: Launch, stdin: bytes | None, cap: int) -> None:
        self._launch = launch
        self._stdin = stdin
        self.stdout = Capture(cap)
        self.stderr = Capture(cap)
        self._early_out = bytearray()  # stdout before the marker line
        self._early_err = bytearray()  # stderr before the command started
        self.pgid: int | None = None  # 0 when the marker could not be parsed
        self._password_sent = False
        self.password_rejected = False
        self._stdin_sent = False

    @property
    def started(self) -> bool:
        return self.pgid is not None

    @property
    def password_due(self) -> bool:
        prompt = self._launch.prompt
        return bool(prompt) and not self._password_sent and prompt in self._early_err

    @property
    def stdin_due(self) -> bool:
        return not self._stdin_sent and (self.started or not self._launch.prompt)

    def take_password(self) -> bytes:
        self._password_sent = True
        self._early_err = self._early_err.replace(self._launch.prompt, b"", 1)
        return (self._launch.password or "").encode() + b"\n"

    def take_stdin(self) -> bytes:
        """What goes to the reader's stdin: the command's text, then the command's stdin."""
        self._stdin_sent = True
        return self._launch.text + (self._stdin or b"")

    def on_stdout(self, data: bytes) -> None:
        if self.started:
            self.stdout.feed(data)
            return
        self._early_out += data
        while not self.started and b"\n" in self._early_out:
            line, _, rest = bytes(self._early_out).partition(b"\n")
            self._early_out = bytearray(rest)
            if line.startswith(self._launch.marker + b" "):
                self._begin(line[len(self._launch.marker) + 1 :])
            else:
                self.stdout.feed(line + b"\n")
        if len(self._early_out) > _PREAMBLE_CAP:
            self.stdout.feed(bytes(self._early_out))
            self._early_out.clear()

    def _begin(self, pgid: bytes) -> None:
        try:
            self.pgid = int(pgid.strip())
        except ValueError:
            self.pgid = 0
        rest = bytes(self._early_out)
        self._early_out.clear()
        self._flush_stderr()
        self.on_stdout(rest)

    def on_stderr(self, data: bytes) -> None:
        if self.started:
            self.stderr.feed(data)
            return
        self._early_err += data
        prompt = self._launch.prompt
        if self._password_sent and (prompt in self._early_err or b"Sorry, try" in self._early_err):
            self.password_rejected = True
        if len(self._early_err) > _PREAMBLE_CAP:
            keep = len(prompt)
            self.stderr.feed(bytes(self._early_err[: len(self._early_err) - keep]))
            del self._early_err[: len(self._early_err) - keep]

    def _flush_stderr(self) -> None:
        early = bytes(self._early_err)
        prompt = self._launch.prompt
        self.stderr.feed(early.replace(prompt, b"") if prompt else early)
        self._early_err.clear()

    def result(
        self, command: str, rc: int | None, duration: float, *, timed_out: bool = False
    ) -> CommandResult:
        """The ``CommandResult`` of what was seen so far."""
        if self.password_rejected:
            return CommandResult(command, 1, "", INCORRECT_PASSWORD, duration)
        self.stdout.feed(bytes(self._early_out))
        self._early_out.clear()
        self._flush_stderr()
        return CommandResult(
            command=command,
            rc=rc,
            stdout=self.stdout.text(),
            stderr=self.stderr.text(),
            duration=duration,
            truncated=self.stdout.truncated or self.stderr.truncated,
            timed_out=timed_out,
        )


def pump(pipes: Pipes, talk: Conversation, deadline: float,
         cancel: threading.Event | None = None) -> Ending:
    """Move bytes until the command ends, ``deadline`` (monotonic) passes, the session dies,
    or ``cancel`` is set."""
    exited_at: float | None = None
    while True:
        if cancel is not None and cancel.is_set() and talk.started:
            return Ending.CANCELLED
        out, err = pipes.read()
        if out:
            talk.on_stdout(out)
        if err:
            talk.on_stderr(err)
        if talk.password_rejected:
            return Ending.REJECTED
        if talk.password_due:
            pipes.send(talk.take_password())
        if talk.stdin_due:
            pipes.feed(talk.take_stdin())
        busy = bool(out or err)
        now = time.monotonic()
        if not busy and pipes.lost():
            return Ending.LOST
        if pipes.finished():
            exited_at = now if exited_at is None else exited_at
            if not busy and (pipes.drained() or now - exited_at >= LINGER):
                return Ending.EXITED
        if now >= deadline:
            return Ending.DEADLINE
        if not busy:
            limit = deadline if exited_at is None else min(deadline, exited_at + LINGER)
            pipes.wait(max(0.0, min(limit - now, POLL)))


@dataclass(frozen=True)
class Talk:
    """What ``converse`` needs besides the pipes: stdin, deadline, cap and how to kill."""

    stdin: bytes | None
    timeout: float
    cap: int
    kill: Callable[[int], None] = field(repr=False)
    cancel: threading.Event | None = field(default=None, repr=False)


def converse(host: str, command: str, launch: Launch, opened: Pipes, options: Talk) -> CommandResult:
    """Run one wrapped command to its end and turn the ending into a result or an error.

    Raises:
        CommandTimeout: the deadline passed; the process group was killed first.
        ConnectionLost: the session died before the exit status arrived.
    """
    start = time.monotonic()
    talk = Conversation(launch, options.stdin, options.cap)
    try:
        ending = pump(opened, talk, start + options.timeout, options.cancel)
        if ending in (Ending.DEADLINE, Ending.CANCELLED):
            if talk.pgid:
                options.kill(talk.pgid)
            pump(opened, talk, time.monotonic() + KILL_GRACE + POLL)
    finally:
        opened.close()
    duration = time.monotonic() - start
    if ending is Ending.DEADLINE:
        result = talk.result(command, None, duration, timed_out=True)
        raise CommandTimeout(f"{host}: command timed out after {options.timeout:g}s", result)
    if ending is Ending.CANCELLED:
        result = talk.result(command, None, duration)
        raise CommandInterrupted(f"{host}: interrupted; the command's process group was killed", result)
    if ending is Ending.LOST:
        result = talk.result(command, None, duration)
        raise ConnectionLost(f"{host}: connection lost while a command ran", result)
    return talk.result(command, opened.exit_code(), duration)
