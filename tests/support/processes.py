"""What the host's process table shows: every process's argument list, read from /proc."""

from __future__ import annotations

import shlex
from pathlib import Path


def command_lines_with(word: str) -> list[list[str]]:
    """The argument list of every process on this machine whose argument list contains ``word``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes()
        except OSError:
            continue  # ended meanwhile
        if word.encode() in argv:
            found.append([arg.decode(errors="replace") for arg in argv.split(b"\0")[:-1]])
    return found


def tagged(script: str, tag: str) -> str:
    """``script`` run by an ``sh`` whose argument list shows ``tag`` (its ``$0``), so pgrep -f finds it.

    The trailing ``exit`` keeps that sh from replacing itself with the script's last program.
    """
    return f"sh -c {shlex.quote(script + chr(10) + 'exit $?')} {shlex.quote(tag)}"
