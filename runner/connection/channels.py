"""``SSHPipes`` and ``SSHHeld``: one exec channel as a command's ``Pipes`` or as a ``HeldCommand``.

Services layer, used by ``ssh``. A command that runs on a channel of its own
(not in the persistent shell) is driven by ``conversation.converse`` through
``SSHPipes``: both output streams are read without blocking, and stdin is
written by the caller's thread when it fits the channel's window, else by a
writer thread. ``SSHHeld`` keeps a channel's stdin open for ``Connection.hold``
and reads its stdout line by line, dropping stderr.
"""

from __future__ import annotations

import contextlib
import threading
import time

import paramiko

from runner.connection.conversation import POLL, wait_readable

#: Bytes asked of a channel per read (here and in the persistent shell).
CHUNK = 256 * 1024
#: Seconds a held command is given to end once its stdin is closed (``SSHHeld.close``).
RELEASE_WAIT = 5.0
#: stdin up to this size is written by the caller's thread when the channel's window
#: has room for it; larger stdin gets a writer thread so that output keeps flowing.
_INLINE_STDIN = 64 * 1024
#: What a closed or lost channel or transport raises: swallowed where the end is expected.
SWALLOWED = (OSError, EOFError, paramiko.SSHException)


class SSHPipes:
    """``conversation.Pipes`` over one exec channel."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self._channel = channel
        self._transport = channel.get_transport()

    def read(self) -> tuple[bytes, bytes]:
        chan = self._channel
        out = chan.recv(CHUNK) if chan.recv_ready() else b""
        err = chan.recv_stderr(CHUNK) if chan.recv_stderr_ready() else b""
        return out, err

    def wait(self, timeout: float) -> None:
        chan = self._channel
        if chan.eof_received or chan.closed:
            chan.status_event.wait(timeout)
        else:
            wait_readable(chan, timeout)

    def finished(self) -> bool:
        return self._channel.status_event.is_set()

    def exit_code(self) -> int | None:
        status = self._channel.exit_status
        return status if status >= 0 else None

    def drained(self) -> bool:
        chan = self._channel
        return bool(chan.eof_received and not chan.recv_ready() and not chan.recv_stderr_ready())

    def lost(self) -> bool:
        alive = self._transport is not None and self._transport.is_active()
        return not alive and self._channel.exit_status < 0

    def send(self, data: bytes) -> None:
        with contextlib.suppress(*SWALLOWED):
            self._channel.sendall(data)

    def feed(self, data: bytes | None) -> None:
        if not data or len(data) <= min(_INLINE_STDIN, self._channel.out_window_size):
            self._write_all(data)  # fits the window: sendall cannot block, no thread needed
            return
        threading.Thread(target=self._write_all, args=(data,), daemon=True).start()

    def _write_all(self, data: bytes | None) -> None:
        with contextlib.suppress(*SWALLOWED):
            # a chunk at a time: paramiko's sendall copies what is left after every packet,
            # which for 64 MiB at once took a minute instead of a second
            data = data or b""
            for at in range(0, len(data), CHUNK):
                self._channel.sendall(data[at:at + CHUNK])
            self._channel.shutdown_write()

    def close(self) -> None:
        self._channel.close()


class SSHHeld:
    """A ``HeldCommand`` on one exec channel; stderr is read and dropped."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self._channel = channel
        self._buffer = bytearray()

    @property
    def running(self) -> bool:
        chan = self._channel
        return not (chan.closed or chan.eof_received) or chan.recv_ready()

    def readline(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        chan = self._channel
        while b"\n" not in self._buffer:
            if chan.recv_stderr_ready():
                chan.recv_stderr(CHUNK)
            if chan.recv_ready():
                self._buffer += chan.recv(CHUNK)
                continue
            remaining = deadline - time.monotonic()
            if chan.closed or chan.eof_received or remaining <= 0:
                return None
            wait_readable(chan, min(remaining, POLL))
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        return line.decode("utf-8", "backslashreplace")

    def close(self) -> None:
        """End stdin, wait up to ``RELEASE_WAIT`` seconds for the command to end, close the channel.

        What the command does as its stdin ends (the host lock empties its lock
        file) is then done when ``close`` returns, as for a local command; a
        host that does not end it in time is left to end it with the channel.
        """
        chan = self._channel
        deadline = time.monotonic() + RELEASE_WAIT
        with contextlib.suppress(*SWALLOWED):
            chan.shutdown_write()
            while not (chan.closed or chan.eof_received or chan.exit_status_ready()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if chan.recv_stderr_ready():
                    chan.recv_stderr(CHUNK)
                elif chan.recv_ready():
                    chan.recv(CHUNK)
                else:
                    wait_readable(chan, min(remaining, POLL))
        chan.close()
