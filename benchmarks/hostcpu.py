"""The CPU time the sshd hosts spend serving a tool, counted by a control group.

Every host's listening sshd is moved into one fresh control group before the
runs. Whatever it starts from then on (a connection's sshd processes, the
login shell, every command a tool runs on the host) is born into the same
group and stays in it, whoever ends up its parent, so the group's CPU
counter is the hosts' side of the work, exactly, and nothing else. (Adding
up the listeners' reaped children instead misses a session's shell that
outlives its sshd and is adopted by init.)

Both cgroup layouts work: cgroup v2 (``cpu.stat``, ``usage_usec``) and a v1
``cpuacct`` hierarchy (``cpuacct.usage``, nanoseconds). Where neither can be
written (no root, a read-only ``/sys/fs/cgroup``), ``HostCpu.seconds``
returns None and the harness reports the hosts' CPU as not measured.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path


def _mounts() -> list[tuple[str, Path, str]]:
    """(filesystem type, mount point, options) of every cgroup mount."""
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) >= 4 and fields[2] in ("cgroup2", "cgroup"):
                found.append((fields[2], Path(fields[1]), fields[3]))
    return found


class HostCpu:
    """A control group holding the hosts' listeners; ``seconds()`` is its CPU time so far."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._group: Path | None = None
        self._counter: tuple[str, str, float] = ("", "", 0.0)  # file, field ("" = whole file), unit
        self._listeners = 0  # processes added: what stays in the group between runs

    def __enter__(self) -> HostCpu:
        for kind, mount, options in _mounts():
            if kind == "cgroup2":
                counter = ("cpu.stat", "usage_usec", 1e-6)
            elif "cpuacct" in options.split(","):
                counter = ("cpuacct.usage", "", 1e-9)
            else:
                continue
            group = mount / self._name
            try:
                group.mkdir(exist_ok=True)
            except OSError:
                continue
            if (group / counter[0]).exists():
                self._group, self._counter = group, counter
                break
            with contextlib.suppress(OSError):
                group.rmdir()
        return self

    def add(self, pids: list[int]) -> bool:
        """Move ``pids`` (with what they start from now on) into the group; False if not possible."""
        if self._group is None:
            return False
        try:
            for pid in pids:
                (self._group / "cgroup.procs").write_text(f"{pid}\n")
        except OSError:
            return False
        self._listeners += len(pids)
        return True

    def seconds(self, *, wait: float = 5.0) -> float | None:
        """CPU time used by the group's processes so far, or None when not measured.

        First waits (up to ``wait`` seconds) until only the processes ``add``
        put there (the listeners) are left in the group: a connection still
        closing when a tool exits is counted too.
        """
        if self._group is None:
            return None
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and self._count() > self._listeners:
            time.sleep(0.01)
        name, field, unit = self._counter
        try:
            text = (self._group / name).read_text()
        except OSError:
            return None
        if not field:
            return int(text.strip()) * unit
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == field:
                return int(value) * unit
        return None

    def _count(self) -> int:
        assert self._group is not None
        try:
            return len((self._group / "cgroup.procs").read_text().split())
        except OSError:
            return 0

    def spent(self, before: float | None) -> float:
        """Seconds used since ``seconds()`` returned ``before``; NaN when not measured."""
        after = self.seconds()
        return after - before if before is not None and after is not None else float("nan")

    def __exit__(self, *exc: object) -> None:
        """Hand every process back to the parent group and remove the group."""
        if self._group is None:
            return
        parent = self._group.parent / "cgroup.procs"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                for pid in (self._group / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        parent.write_text(f"{pid}\n")
            with contextlib.suppress(OSError):
                self._group.rmdir()
            if not self._group.exists():
                return
            time.sleep(0.05)


__all__ = ["HostCpu"]

