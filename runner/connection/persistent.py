"""One long-lived ``sh`` per SSH session that runs the session's commands one after another.

Services layer, used by ``ssh``. Opening a channel and having sshd start a
login shell costs a few round trips and several processes per command; a
shell started once on its own channel and fed one command line at a time
costs one write and one fork. Each command still runs exactly as on a
channel of its own: in a new session (``setsid``), so that a deadline or an
interrupt can kill its whole process group; with stdin from ``/dev/null``
or, for a command given stdin, from a ``printf`` of those bytes (stdin over
``STDIN_LIMIT``, and sudo with a password, which needs a dialogue on stdin,
go to channels of their own); with SIGINT and SIGQUIT at their
defaults. After it ends the shell prints, on stdout and on stderr, a
delimiter carrying a per-command nonce and the exit code, so both streams
split back exactly into that command's output (the newline printed before
each delimiter is taken off again).

A command that leaves processes behind in its group (``cmd &``) may still
write to the shell's stdout or stderr later, into another command's output:
the next command checks for them first (``kill -0`` on the group), and if any
is left it does not run there; the shell is retired (its channel closed, as a
channel of its own would be) and the command runs in a new one. The shell is not used at all when
the host lacks ``setsid`` or the start-up check fails; the connection then
uses a channel per command. A background process that starts a new session
itself and keeps the inherited stdout open is not detected.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import select
import threading
import time

import paramiko

from runner.connection.shell import Launch

_CHUNK = 256 * 1024
_SWALLOWED = (OSError, EOFError, paramiko.SSHException)
#: Larger stdin goes over a channel of its own (it travels in the command line, escaped).
STDIN_LIMIT = 64 * 1024

#: Checks that the shell can run a command in a session of its own in the foreground:
#: ``setsid`` must not fork (it does not when its caller is no process group leader),
#: or the shell would not wait for the command.
_HELLO = (
    "if command -v setsid >/dev/null 2>&1; then "
    "setsid sh -c 'printf \"%s\\n\" \"$PPID\"' </dev/null; printf '{nonce} %s\\n' \"$$\"; "
    "else printf '{nonce} none\\n'; fi\n"
)


class ShellTainted(Exception):  # noqa: N818 - reads as a state
    """The previous command left processes in its group: the command did not run; retry elsewhere."""


class PersistentShell:
    """The long-lived shell on one channel; ``start`` returns None when the host cannot have one."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self._channel = channel
        self._busy = threading.Lock()
        self._retired = False
        self._last_group: int | None = None  # process group of the previous command

    @classmethod
    def start(cls, transport: paramiko.Transport, timeout: float) -> PersistentShell | None:
        """Start ``sh`` on a new channel and check it; None when it is not usable."""
        channel: paramiko.Channel | None = None
        try:
            channel = transport.open_session(timeout=timeout)
            channel.exec_command("exec sh")
            nonce = f"REMEDY-SHELL-{secrets.token_hex(8)}"
            channel.sendall(_HELLO.format(nonce=nonce).encode())
            answer = _read_line(channel, nonce.encode(), time.monotonic() + timeout)
        except _SWALLOWED:
            answer = None
        lines = answer.splitlines() if answer else []
        fields = lines[-1].split() if lines else []
        # the command's parent must be the shell itself, not a process that setsid forked
        if len(lines) >= 2 and len(fields) == 2 and lines[-2].strip() == fields[1] and channel is not None:
            return cls(channel)
        if channel is not None:
            with contextlib.suppress(*_SWALLOWED):
                channel.close()
        return None

    @property
    def usable(self) -> bool:
        chan = self._channel
        return not (self._retired or chan.closed or chan.eof_received)

    def begin(self, launch: Launch, stdin: bytes | None = None) -> ShellPipes | None:
        """Send ``launch`` (with ``stdin``, at most ``STDIN_LIMIT`` bytes) to the shell.

        None when the shell is busy or no longer usable, or ``stdin`` is larger.
        """
        if stdin and len(stdin) > STDIN_LIMIT:
            return None
        if not self.usable or not self._busy.acquire(blocking=False):
            return None
        end = f"REMEDY-END-{secrets.token_hex(8)}"
        source = f"printf '{printf_literal(stdin)}' | " if stdin else ""
        redirect = "" if stdin else " </dev/null"
        run = (f"{source}setsid {launch.program}{redirect}; "
               f"printf '\\n%s %s\\n' {end} \"$?\"; printf '\\n%s\\n' {end} >&2")
        if self._last_group:
            # processes left in the previous command's group may still write to this
            # shell's output: then this command does not run here (``ShellTainted``)
            run = (f"if kill -0 -{self._last_group} 2>/dev/null; then "
                   f"printf '\\n%s L\\n' {end}; printf '\\n%s\\n' {end} >&2; else {run}; fi")
        line = run + "\n"
        try:
            self._channel.sendall(line.encode())
        except _SWALLOWED:
            self._busy.release()
            self.retire()
            return None
        return ShellPipes(self, end.encode(), launch.marker)

    def _finish(self, group: int | None, *, clean: bool) -> None:
        """One command is over; an unclean end (unfinished, refused) retires the shell."""
        self._last_group = group
        if not clean:
            self.retire()
        self._busy.release()

    def retire(self) -> None:
        """Stop using the shell: close its stdin and its channel; idempotent."""
        self._retired = True
        with contextlib.suppress(*_SWALLOWED):
            self._channel.shutdown_write()
        with contextlib.suppress(*_SWALLOWED):
            self._channel.close()


def printf_literal(data: bytes) -> str:
    """``data`` as a ``printf`` format in single quotes that prints exactly those bytes.

    Printable ASCII stays as it is, newlines too; every other byte, and ``\\``,
    ``'`` and ``%``, becomes a three-digit octal escape (``\\ooo``).
    """
    return "".join(_LITERAL[b] for b in data)


_LITERAL = [chr(b) if (32 <= b < 127 and chr(b) not in "\\'%") or b == 10 else f"\\{b:03o}"
            for b in range(256)]


def _field_after(data: bytes, prefix: bytes) -> tuple[bytes | None, int]:
    """The rest of the line that starts with ``prefix`` in ``data``, and where ``prefix`` is.

    (None, -1) until that line is complete.
    """
    at = data.find(prefix)
    if at < 0:
        return None, -1
    end = data.find(b"\n", at + len(prefix))
    if end < 0:
        return None, -1
    return data[at + len(prefix):end], at


def _read_line(channel: paramiko.Channel, start: bytes, deadline: float) -> str | None:
    """stdout up to and including the line that starts with ``start``, without that line's end."""
    buffer = b""
    while True:
        if channel.recv_stderr_ready():
            channel.recv_stderr(_CHUNK)
        if channel.recv_ready():
            buffer += channel.recv(_CHUNK)
            at = buffer.find(start)
            if at >= 0 and b"\n" in buffer[at:]:
                head, rest = buffer[:at], buffer[at:]
                return (head + rest.split(b"\n", 1)[0]).decode("utf-8", "replace")
            continue
        remaining = deadline - time.monotonic()
        if channel.closed or channel.eof_received or remaining <= 0:
            return None
        select.select([channel], [], [], min(remaining, 1.0))


class ShellPipes:
    """``conversation.Pipes`` for one command running in the persistent shell."""

    def __init__(self, shell: PersistentShell, end: bytes, marker: bytes) -> None:
        self._shell = shell
        self._channel = shell._channel
        self._transport = self._channel.get_transport()
        # str.find, not regexes: a pattern with a fresh nonce would be compiled per command
        self._delimiter = b"\n" + end  # how both delimiter lines begin
        self._err_end = self._delimiter + b"\n"
        self._start = marker + b" "  # the start marker line: marker, process group, newline
        self._head = b""  # stdout until the start marker, to learn the process group
        self._group: int | None = None
        self._out = b""
        self._err = b""
        self._rc: int | None = None
        self._refused = False
        self._err_done = False
        self._closed = False

    def read(self) -> tuple[bytes, bytes]:
        """Output of this command available now.

        Raises:
            ShellTainted: the shell refused to run it (see ``PersistentShell.begin``).
        """
        chan = self._channel
        out = err = b""
        if self._rc is None and chan.recv_ready():
            chunk = chan.recv(_CHUNK)
            self._out += chunk
            if self._group is None and len(self._head) < 64 * 1024:
                self._head += chunk
            out = self._take_out()
        if not self._err_done and chan.recv_stderr_ready():
            self._err += chan.recv_stderr(_CHUNK)
            err = self._take_err()
        if self._refused and self._err_done:
            raise ShellTainted
        if not (out or err) and (chan.closed or chan.eof_received) and not self.finished():
            out, err, self._out, self._err = self._out, self._err, b"", b""  # no delimiter will come
        return out, err

    def _take_out(self) -> bytes:
        marker_line_last = self._learn_group()
        value, at = _field_after(self._out, self._delimiter + b" ")
        if value is not None and (value == b"L" or value.isdigit()):
            self._refused = value == b"L"
            self._rc = -1 if self._refused else int(value)
            data, self._out = self._out[:at], b""
        elif marker_line_last:
            data, self._out = self._out, b""  # its last newline ends the start marker's line
        else:
            data = self._release("_out")
        return data

    def _learn_group(self) -> bool:
        """Find the command's process group in its start marker (see ``shell.wrap``).

        True when the marker's line ends exactly at the end of what is buffered:
        that newline cannot begin a delimiter, so it is passed on at once (the
        caller needs the whole line to know what to kill).
        """
        if self._group is not None:
            return False
        value, at = _field_after(self._head, self._start)
        if value is None or not value.isdigit():
            return False
        self._group = int(value)
        at_end = at + len(self._start) + len(value) + 1 == len(self._head)
        self._head = b""
        return at_end

    def _take_err(self) -> bytes:
        at = self._err.find(self._err_end)
        if at >= 0:
            self._err_done = True
            data, self._err = self._err[:at], b""
            return data
        return self._release("_err")

    def _release(self, name: str) -> bytes:
        """Everything buffered except a last line that may be the start of a delimiter."""
        buffer: bytes = getattr(self, name)
        cut = buffer.rfind(b"\n")
        tail = buffer[cut:] if cut >= 0 else b""
        if not tail or not (self._delimiter.startswith(tail) or tail.startswith(self._delimiter)):
            setattr(self, name, b"")
            return buffer
        setattr(self, name, tail)
        return buffer[:cut]

    def wait(self, timeout: float) -> None:
        select.select([self._channel], [], [], timeout)

    def finished(self) -> bool:
        return self._rc is not None and self._err_done

    def exit_code(self) -> int | None:
        return self._rc if self.finished() else None

    def drained(self) -> bool:
        return self.finished()

    def lost(self) -> bool:
        if self.finished():
            return False
        chan = self._channel
        dead = self._transport is None or not self._transport.is_active()
        return dead or chan.closed or (chan.eof_received and not chan.recv_ready()
                                       and not chan.recv_stderr_ready())

    def send(self, data: bytes) -> None:
        """Never needed: a command with a stdin dialogue does not run in the shell."""

    def feed(self, data: bytes | None) -> None:
        """Nothing to write: the command's stdin is /dev/null."""

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._shell._finish(self._group, clean=self.finished() and not self._refused)
