"""What one read of a command in the persistent shell may hold: bounded, however fast output comes."""

from __future__ import annotations

import re

import pytest

from runner.connection.channels import CHUNK
from runner.connection.persistent import PersistentShell
from runner.connection.shell import wrap

MIB = 1024 * 1024


class Firehose:
    """A channel on which one stream always has more ready: the command's start line, then 64 MiB."""

    closed = False
    eof_received = False

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.sent = b""
        self.left = 64 * MIB

    def get_transport(self) -> None:
        return None

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def _ready(self, stream: str) -> bool:
        return stream == self.stream and self.left > 0

    def _give(self, size: int) -> bytes:
        if self.left == 64 * MIB:  # first the start line of the command just sent
            match = re.search(rb"REMEDY-END-[0-9a-f]+", self.sent)
            assert match is not None
            self.left -= 1
            return match.group() + b" S\n"
        size = min(size, self.left)
        self.left -= size
        return b"o" * size

    def recv_ready(self) -> bool:
        return self._ready("stdout")

    def recv_stderr_ready(self) -> bool:
        return self._ready("stderr")

    def recv(self, size: int) -> bytes:
        return self._give(size)

    def recv_stderr(self, size: int) -> bytes:
        return self._give(size)


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_one_read_takes_at_most_a_chunk_of_each_stream_however_much_is_ready(stream: str) -> None:
    channel = Firehose(stream)
    shell = PersistentShell(channel, leads_group=True)  # type: ignore[arg-type]
    pipes = shell.begin(wrap("cat /dev/zero"))
    assert pipes is not None
    taken = [sum(map(len, pipes.read())) for _ in range(4)]
    assert all(size <= CHUNK for size in taken), taken
    assert channel.left > 60 * MIB  # the rest waits for later reads
