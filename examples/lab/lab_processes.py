"""Processes the lab starts: spawn them detached, record them, tell if they live, stop them.

A ``ProcessRecord`` keeps the pid with the process's start time (field 22 of
``/proc/PID/stat``), so a recycled pid is never mistaken for a lab process,
and whether the process leads its own process group (then the whole group is
signalled). Zombies count as gone: on hosts whose init does not reap orphans
a stopped daemon stays a zombie, which holds no port and no file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Popen objects of daemons started by this process, kept so that they are never
# garbage-collected while the daemon runs (Popen warns about that).
_CHILDREN: list[object] = []


class LabError(Exception):
    """Something the lab needs failed; the message says what and where to look."""


@dataclass(frozen=True)
class ProcessRecord:
    """One process the lab started."""

    role: str  # sshd, redis, postgres, service, stale-service, foreign
    pid: int
    start: int  # /proc/PID/stat starttime, in clock ticks since boot
    host: str | None = None
    group: bool = False  # leads its own process group

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessRecord:
        return cls(**data)

    def describe(self) -> str:
        where = f" of {self.host}" if self.host else ""
        return f"{self.role}{where} (pid {self.pid})"


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name, or None if there is no such pid."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    return text.rsplit(")", 1)[1].split()


def record(pid: int, role: str, host: str | None = None) -> ProcessRecord:
    """A record of the running process ``pid``. Raises ``LabError`` if it is gone."""
    fields = _stat(pid)
    if fields is None or fields[0] == "Z":
        raise LabError(f"{role}: process {pid} is not running")
    return ProcessRecord(role, pid, int(fields[19]), host, group=int(fields[2]) == pid)


def alive(rec: ProcessRecord) -> bool:
    """True while the recorded process runs (same pid and start time, not a zombie)."""
    fields = _stat(rec.pid)
    return fields is not None and fields[0] != "Z" and int(fields[19]) == rec.start


def running(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def cmdline(pid: int) -> list[str]:
    with contextlib.suppress(OSError):
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    return []


def find_processes(match: Callable[[list[str]], bool]) -> list[int]:
    """Pids of live processes whose argv satisfies ``match`` (never this process)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            pid = int(entry.name)
            if running(pid) and match(cmdline(pid)):
                found.append(pid)
    return found


def descendants(root: int) -> list[int]:
    """Every live process below ``root``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], list(children.get(root, []))
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children.get(pid, []))
    return [pid for pid in found if running(pid)]


def as_user(user: str | None) -> list[str]:
    """An argv prefix that runs a command as ``user`` (setpriv) when we are root."""
    if user is None or user == "root" or os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]


def spawn(
    argv: Sequence[str],
    *,
    role: str,
    log: Path,
    host: str | None = None,
    cwd: Path | None = None,
) -> ProcessRecord:
    """Start a daemon in a new session, stdout and stderr appended to ``log``."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
    _CHILDREN.append(proc)
    fields = _stat(proc.pid)
    start = int(fields[19]) if fields else 0
    return ProcessRecord(role, proc.pid, start, host, group=True)


def keep(obj: object) -> None:
    """Keep ``obj`` (e.g. an ``Sshd`` holding a Popen) alive as long as this process."""
    _CHILDREN.append(obj)


def wait_for(probe: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Poll ``probe`` until it returns something truthy; ``LabError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause, interval = threading.Event(), 0.01
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise LabError(f"timed out after {timeout:g}s waiting for {what}")
        pause.wait(interval)
        interval = min(interval * 2, 0.2)


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    with contextlib.suppress(OSError):
        with socket.create_connection((host, port), timeout=1):
            return True
    return False


def free_port(taken: Iterable[int] = ()) -> int:
    """A loopback port nobody listens on now, not in ``taken``."""
    avoid = set(taken)
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in avoid:
            return port


def _signal(rec: ProcessRecord, signum: int) -> None:
    """Signal a recorded process: its whole group if it leads one, else it and its descendants."""
    if not alive(rec):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if rec.group and rec.pid != os.getpgrp():
            os.killpg(rec.pid, signum)
            return
        for pid in descendants(rec.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)
        os.kill(rec.pid, signum)


def stop(records: Iterable[ProcessRecord], *, grace: float = 10.0) -> list[ProcessRecord]:
    """SIGTERM the processes, SIGKILL what is left after ``grace`` s; return the survivors."""
    targets = [rec for rec in records if alive(rec)]
    for rec in targets:
        _signal(rec, signal.SIGTERM)
    with contextlib.suppress(LabError):
        wait_for(lambda: not any(alive(rec) for rec in targets), timeout=grace, what="exit")
    for rec in targets:
        _signal(rec, signal.SIGKILL)
    with contextlib.suppress(LabError):
        wait_for(lambda: not any(alive(rec) for rec in targets), timeout=5.0, what="exit")
    _reap()
    return [rec for rec in targets if alive(rec)]


def _reap() -> None:
    """Collect our own children that have exited, so that they do not linger as zombies."""
    for child in _CHILDREN:
        if isinstance(child, subprocess.Popen):
            child.poll()
