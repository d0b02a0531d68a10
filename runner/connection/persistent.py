"""One long-lived ``sh`` per SSH session that runs the session's commands one after another.

Services layer, used by ``ssh``. Opening a channel and having sshd start a
login shell costs a few round trips and several processes per command; a
shell started once on its own channel and fed one command line at a time
costs one write and one fork. Each command still runs exactly as on a
channel of its own: in a new session (``setsid``), so that a deadline or an
interrupt can kill its whole process group; its text (see ``shell.wrap``)
comes on its stdin from a here-document, so its stdin is at its end, or,
for a command given stdin, from a ``printf`` of the text and those bytes
(stdin over ``STDIN_LIMIT``, and sudo with a password, which needs a
dialogue on stdin, go to channels of their own); with SIGINT and SIGQUIT at
their defaults. After it ends the shell prints, on stdout and on stderr, a
delimiter carrying a per-command nonce and the exit code, so both streams
split back exactly into that command's output (the newline printed before
each delimiter is taken off again). remedy's own commands that
leave no process behind (``contained``: probes, file operations, uploads
without ``validate``) skip the new session: they run in a subshell, in the shell's
process group, so a deadline that kills them ends the shell too, and the
next command gets a new one. That needs the shell to lead its group, as sshd
starts it; where it does not (a forced command that wraps it, say), they too
get a session of their own. A contained command given stdin reads it from
``/dev/null``; the bytes come from the shell function ``remedy_stdin``
instead (``shell.contained_script``), which saves the pipe's writer process.

A command that leaves processes behind in its group (``cmd &``) may still
write to the shell's stdout or stderr later, into another command's output:
the next command checks for them first (``kill -0`` on the group), and if any
is left it does not run there; the shell is retired (its channel closed, as a
channel of its own would be) and the command runs in a new one. The shell is not used at all when
the host lacks ``setsid`` or the start-up check fails; the connection then
uses a channel per command. A background process that starts a new session
itself and keeps the inherited stdout open is not detected. The start-up
check also reports the shell's uid, read from /proc by builtins, so that the
connection knows who its commands run as without a round trip of their own
(``Connection.whoami``).
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time

import paramiko

from runner.connection.channels import CHUNK, SWALLOWED
from runner.connection.conversation import wait_readable
from runner.connection.interface import HeldCommand
from runner.connection.shell import READ_GROUP, Launch, contained_script, printf_literal

#: Larger stdin goes over a channel of its own (it travels in the command line, escaped).
STDIN_LIMIT = 64 * 1024

#: Sets ``u`` to this shell's effective uid, read from /proc without a process ("-" without /proc).
_READ_UID = ('u=-; if [ -r /proc/$$/status ]; then '
             'while read -r k _ v _; do [ "$k" = Uid: ] && u=$v && break; done </proc/$$/status; fi')

#: Checks that the shell can run a command in a session of its own in the foreground:
#: ``setsid`` must not fork (it does not when its caller is no process group leader),
#: or the shell would not wait for the command. It also reports who the shell runs as
#: and its process group (from /proc, no process): contained commands share it, so it
#: must be the shell's.
_HELLO = (
    "if command -v setsid >/dev/null 2>&1; then "
    "setsid sh -c 'printf \"%s\\n\" \"$PPID\"' </dev/null; "
    f"{_READ_UID}; {READ_GROUP}; printf '{{nonce}} %s %s %s\\n' \"$$\" \"$u\" \"$g\"; unset u k v; "
    "else printf '{nonce} none\\n'; fi\n"
)


class ShellTainted(Exception):  # noqa: N818 - reads as a state
    """The previous command left processes in its group: the command did not run; retry elsewhere."""


class PersistentShell:
    """The long-lived shell on one channel; ``start`` returns None when the host cannot have one."""

    def __init__(self, channel: paramiko.Channel, *, leads_group: bool, uid: int | None = None) -> None:
        self._channel = channel
        self._leads_group = leads_group  # whether contained commands can be killed with the shell
        self.uid = uid  # who the shell (and every command without become) runs as; None: unknown
        self._busy = threading.Lock()
        self._retired = False
        self._last_group: int | None = None  # process group of the previous command
        self._last_sudo = False  # whether it ran under sudo

    @classmethod
    def start(cls, channel: paramiko.Channel, lines: HeldCommand, timeout: float) -> PersistentShell | None:
        """Check the ``sh`` started on ``channel`` (``lines`` reads its stdout); None if unusable.

        An unusable shell's channel is closed.
        """
        nonce = f"REMEDY-SHELL-{secrets.token_hex(8)}"
        deadline = time.monotonic() + timeout
        previous, line = "", ""
        with contextlib.suppress(*SWALLOWED):
            channel.sendall(_HELLO.format(nonce=nonce).encode())
            # a login shell may print its own lines first: the answer is the last two
            while not line.startswith(nonce):
                previous, line = line, lines.readline(max(0.0, deadline - time.monotonic())) or ""
                if not line and (not lines.running or time.monotonic() >= deadline):
                    break
        fields = line.split()  # nonce, pid, uid or "-", process group (none without /proc)
        # the command's parent must be the shell itself, not a process that setsid forked
        if len(fields) in (3, 4) and fields[0] == nonce and previous.strip() == fields[1]:
            leads = len(fields) == 4 and fields[3] == fields[1]  # its process group is its pid
            return cls(channel, leads_group=leads, uid=int(fields[2]) if fields[2].isdigit() else None)
        lines.close()
        return None

    @property
    def usable(self) -> bool:
        chan = self._channel
        return not (self._retired or chan.closed or chan.eof_received)

    def begin(self, launch: Launch, stdin: bytes | None = None, *,
              contained: bool = False) -> ShellPipes | None:
        """Send ``launch`` (with ``stdin``, at most ``STDIN_LIMIT`` bytes) to the shell.

        ``contained`` (see ``Connection.run``): the script runs in a subshell, in
        the shell's own process group, without the ``setsid`` and ``sh`` that a
        session of its own costs; a kill of that group ends the shell too, and
        the next command gets a new one. None when the shell is busy or no
        longer usable, or ``stdin`` is larger.
        """
        if stdin and len(stdin) > STDIN_LIMIT:
            return None
        end = f"REMEDY-END-{secrets.token_hex(8)}"
        contained = contained and bool(launch.script) and self._leads_group
        body = b""  # what follows the command line: a here-document
        if contained:
            source, command, redirect = "", contained_script(launch.script, stdin), " </dev/null"
        else:
            command = f"setsid {launch.program}"
            if stdin:  # the reader's stdin: the command's text, then the command's own stdin
                source, redirect = f"printf '{printf_literal(launch.text + stdin)}' | ", ""
            else:  # the text as a here-document; the command's stdin is at its end then
                source, redirect, body = "", f" <<'{end}'", launch.text + f"{end}\n".encode()
        run = (f"{source}{command}{redirect}; "
               f"printf '\\n%s %s\\n' {end} \"$?\"; printf '\\n%s E\\n' {end} >&2")
        if self._last_group:
            # processes left in the previous command's group may still write to this
            # shell's output: then this command does not run here (``ShellTainted``)
            run = (f"if {self._leftover_check()}; then "
                   f"printf '\\n%s L\\n' {end}; printf '\\n%s E\\n' {end} >&2; else {run}; fi")
        # Start lines on both streams: whatever came before them is not this command's.
        line = f"printf '%s S\\n' {end}; printf '%s S\\n' {end} >&2; {run}\n"
        if not self.usable or not self._busy.acquire(blocking=False):
            return None
        try:
            self._channel.sendall(line.encode() + body)
        except SWALLOWED:
            self._busy.release()
            self.retire()
            return None
        return ShellPipes(self, end.encode(), launch, contained=contained)

    def _leftover_check(self) -> str:
        """A test that succeeds while the previous command's process group has members.

        After sudo the group may belong to another user: ``kill -0`` then fails
        with EPERM although the group exists, which counts as members left.
        """
        group = self._last_group
        if not self._last_sudo:
            return f"kill -0 -{group} 2>/dev/null"
        return (f'{{ e=$(LC_ALL=C kill -0 -{group} 2>&1) || '
                f'case "$e" in *ermitted*) true;; *) false;; esac; }}')

    def _finish(self, launch: Launch, group: int | None, *, clean: bool, contained: bool) -> None:
        """One command is over; an unclean end (unfinished, refused) retires the shell."""
        self._last_group = None if contained else group  # a contained group is the shell's own
        self._last_sudo = launch.program.startswith("sudo ")
        if not clean:
            self.retire()
        self._busy.release()

    def retire(self) -> None:
        """Stop using the shell: close its stdin and its channel; idempotent."""
        self._retired = True
        with contextlib.suppress(*SWALLOWED):
            self._channel.shutdown_write()
        with contextlib.suppress(*SWALLOWED):
            self._channel.close()


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


class _Stream:
    """One output stream of one command: its start line, its data, its end delimiter.

    Bytes before the start line are another command's (a leftover writer, the
    login shell) and are dropped, and so is anything after the end. The last
    line is held back while it may be the beginning of the end delimiter.
    """

    def __init__(self, end: bytes) -> None:
        self._start = end + b" S\n"
        self._end = b"\n" + end + b" "  # then a value and a newline
        self._buffer = b""
        self.started = False
        self.value: bytes | None = None  # what the end delimiter carried
        self.head = b""  # the first bytes after the start line (for the start marker)

    def feed(self, chunk: bytes) -> bytes:
        """What of ``chunk`` (with what was held back) is the command's output for sure."""
        if self.value is not None:
            return b""
        self._buffer += chunk
        fresh = chunk
        if not self.started:
            at = self._buffer.find(self._start)
            if at < 0:
                self._buffer = self._buffer[-len(self._start):]
                return b""
            self.started, self._buffer = True, self._buffer[at + len(self._start):]
            fresh = self._buffer
        if len(self.head) < 64 * 1024:
            self.head += fresh
        value, at = _field_after(self._buffer, self._end)
        if value is not None:
            self.value, data, self._buffer = value, self._buffer[:at], b""
            return data
        return self._release()

    def _release(self) -> bytes:
        buffer = self._buffer
        cut = buffer.rfind(b"\n")
        tail = buffer[cut:] if cut >= 0 else b""
        if not tail or not (self._end.startswith(tail) or tail.startswith(self._end)):
            self._buffer = b""
            return buffer
        self._buffer = tail
        return buffer[:cut]

    def flush(self) -> bytes:
        """Everything held back: no delimiter will come, or the held newline is not one."""
        data, self._buffer = (self._buffer if self.started else b""), b""
        return data


class ShellPipes:
    """``conversation.Pipes`` for one command running in the persistent shell."""

    def __init__(self, shell: PersistentShell, end: bytes, launch: Launch, *, contained: bool) -> None:
        self._shell = shell
        self._launch = launch
        self._contained = contained
        self._channel = shell._channel
        self._transport = self._channel.get_transport()
        self._out = _Stream(end)
        self._err = _Stream(end)
        self._marker = launch.marker + b" "  # the start marker line: marker, process group
        self._group: int | None = None
        self._closed = False

    def read(self) -> tuple[bytes, bytes]:
        """Output of this command available now.

        Raises:
            ShellTainted: the command did not run: the shell refused it (see
                ``PersistentShell.begin``), or ended before starting it.
        """
        chan = self._channel
        out = err = b""
        # One read per stream and call, so that what one call holds is bounded however fast
        # the output comes; a finished stream is still read (and dropped): the window stays open.
        if chan.recv_ready():
            out = self._out.feed(chan.recv(CHUNK))
            if self._learn_group():
                out += self._out.flush()  # its last newline ends the start marker's line
        if chan.recv_stderr_ready():
            err = self._err.feed(chan.recv_stderr(CHUNK))
        if self._out.value == b"L" and self._err.value is not None:
            raise ShellTainted
        ended = (chan.closed or chan.eof_received) and not (chan.recv_ready() or chan.recv_stderr_ready())
        if not (out or err) and ended and not self.finished():
            if self._group is None and self._transport is not None and self._transport.is_active():
                raise ShellTainted  # the shell died before the command started
            return self._out.flush(), self._err.flush()  # no delimiter will come
        return out, err

    def _learn_group(self) -> bool:
        """Find the command's process group in its start marker (see ``shell.wrap``).

        True when the marker's line ends exactly at the end of what arrived:
        that newline cannot begin a delimiter, so it is passed on at once (the
        caller needs the whole line to know what to kill).
        """
        if self._group is not None:
            return False
        head = self._out.head
        value, at = _field_after(head, self._marker)
        if value is None or not value.isdigit():
            return False
        self._group = int(value)
        return at + len(self._marker) + len(value) + 1 == len(head) and self._out.value is None

    def wait(self, timeout: float) -> None:
        wait_readable(self._channel, timeout)

    def finished(self) -> bool:
        return self._out.value is not None and self._err.value is not None

    def exit_code(self) -> int | None:
        value = self._out.value
        return int(value) if self.finished() and value is not None and value.isdigit() else None

    def drained(self) -> bool:
        return self.finished()

    def lost(self) -> bool:
        if self.finished():
            return False
        chan = self._channel
        dead = self._transport is None or not self._transport.is_active()
        return bool(dead or chan.closed or (chan.eof_received and not chan.recv_ready()
                                            and not chan.recv_stderr_ready()))

    def send(self, data: bytes) -> None:
        """Never needed: a command with a stdin dialogue does not run in the shell."""

    def feed(self, data: bytes | None) -> None:
        """Nothing to write: stdin came with the command line, or is /dev/null."""

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            clean = self.finished() and self._out.value != b"L"
            self._shell._finish(self._launch, self._group, clean=clean, contained=self._contained)
