"""What the persistent shell's start-up check learns: whether it takes commands, who it runs as."""

from __future__ import annotations

import re

import pytest

from runner.connection.persistent import PersistentShell


class Answering:
    """A channel and the reader of its stdout: the shell's answer to the start-up check it was sent.

    ``NONCE`` in an answer line becomes the nonce of the check.
    """

    def __init__(self, *answer: str) -> None:
        self.answer = answer
        self.lines: list[str] = []
        self.sent = ""
        self.closed = False

    def sendall(self, data: bytes) -> None:
        self.sent += data.decode()
        match = re.search(r"REMEDY-SHELL-[0-9a-f]+", self.sent)
        assert match is not None
        self.lines = [line.replace("NONCE", match.group()) for line in self.answer]

    def readline(self, timeout: float) -> str | None:
        return self.lines.pop(0) if self.lines else None

    @property
    def running(self) -> bool:
        return bool(self.lines)

    def close(self) -> None:
        self.closed = True


def start(*answer: str) -> PersistentShell | None:
    channel = Answering(*answer)
    return PersistentShell.start(channel, channel, timeout=1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(("answer", "uid"), [
    (("4242", "NONCE 4242 1000 4242"), 1000),
    (("Welcome!", "4242", "NONCE 4242 0 4242"), 0),  # a login shell's own lines come first
    (("4242", "NONCE 4242 0 77"), 0),  # not its group's leader: still usable
    (("4242", "NONCE 4242 - "), None),  # no /proc: neither uid nor group known
], ids=["user", "root-after-motd", "not-leader", "no-proc"])
def test_the_start_up_check_says_who_the_shell_runs_as(answer: tuple[str, ...], uid: int | None) -> None:
    shell = start(*answer)
    assert shell is not None and shell.uid == uid


@pytest.mark.parametrize("answer", [("NONCE none",), ("4243", "NONCE 4242 1000 4242"), ("4242",)],
                         ids=["no-setsid", "setsid-forked", "no-answer"])
def test_a_shell_that_fails_the_start_up_check_is_not_used(answer: tuple[str, ...]) -> None:
    assert start(*answer) is None


def test_the_start_up_check_reads_the_uid_with_builtins_and_leaves_no_variable_behind() -> None:
    channel = Answering()
    PersistentShell.start(channel, channel, timeout=0.0)  # type: ignore[arg-type]
    assert "</proc/$$/status" in channel.sent and "$(id" not in channel.sent and "unset u k v" in channel.sent
