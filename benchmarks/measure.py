"""Run one command and measure its whole process tree: wall time, peak memory, open fds.

    python benchmarks/measure.py [--fds] [--interval 0.05] --out result.json -- COMMAND...

The wrapper makes itself a child subreaper (Linux ``PR_SET_CHILD_SUBREAPER``),
so processes that the tool daemonizes (ssh ControlPersist masters) stay in
its tree and are measured too. Every ``interval`` seconds it sums over the
tree (found through ``/proc/PID/task/TID/children``):

* PSS (``/proc/PID/smaps_rollup``): pages shared between forked workers
  count once, split among them, so a tool that forks is not overcharged;
* RSS (``/proc/PID/statm``), the plain sum;
* open file descriptors (``--fds``: ``/proc/PID/fd``), and processes.

The largest single process's exact peak RSS comes from ``getrusage`` of the
waited-for children (``ru_maxrss``); for a one-process tool such as remedy
that is its exact peak, which sampling could miss on a short run. The same
call gives the CPU time (user + system) of the whole tree, daemonized
processes included once they are reaped: what the tool costs the machine it
runs on, apart from the hosts it talks to.

Wall time runs from the spawn to the tool's exit. Whatever the tool left
running in its tree (a ControlPersist master) is then terminated, so that the
next run starts cold. The wrapper's own memory is not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

_PR_SET_CHILD_SUBREAPER = 36
_PAGE = os.sysconf("SC_PAGE_SIZE")


def tree(root: int) -> list[int]:
    """``root`` and every process below it."""
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    queue.extend(int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split())
    return found


def _pss(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def _rss(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    return 0


def _fds(pid: int) -> int:
    with contextlib.suppress(OSError):
        return len(os.listdir(f"/proc/{pid}/fd"))
    return 0


class Sampler(threading.Thread):
    """Samples the tree of ``pid`` until stopped; keeps the peaks."""

    def __init__(self, pid: int, interval: float, *, fds: bool) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.count_fds = pid, interval, fds
        self.peak = {"pss": 0, "rss": 0, "fds": 0, "procs": 0, "threads": 0}
        self.samples = 0
        self.done = threading.Event()

    def sample(self) -> None:
        pids = [p for p in tree(self.pid) if p != os.getpid()]
        values = {
            "pss": sum(_pss(p) for p in pids),
            "rss": sum(_rss(p) for p in pids),
            "fds": sum(_fds(p) for p in pids) if self.count_fds else 0,
            "procs": len(pids),
            "threads": sum(len(os.listdir(f"/proc/{p}/task")) for p in pids if os.path.isdir(f"/proc/{p}")),
        }
        for key, value in values.items():
            self.peak[key] = max(self.peak[key], value)
        self.samples += 1

    def run(self) -> None:
        while not self.done.wait(self.interval):
            with contextlib.suppress(OSError):
                self.sample()


def _terminate_rest() -> int:
    """End every process still below this wrapper; how many there were."""
    rest = [p for p in tree(os.getpid()) if p != os.getpid()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in rest:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                while os.waitpid(-1, os.WNOHANG)[0] > 0:
                    pass
            if not [p for p in tree(os.getpid()) if p != os.getpid()]:
                return len(rest)
            time.sleep(0.02)
    return len(rest)


def _reap() -> None:
    """Collect every exited descendant still unwaited for, so that its CPU time is counted."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="where to write the JSON result")
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--fds", action="store_true", help="also count open file descriptors")
    parser.add_argument("--stdout", default=os.devnull)
    parser.add_argument("--stderr", default=os.devnull)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    with open(args.stdout, "wb") as out, open(args.stderr, "wb") as err:
        start = time.monotonic()
        proc = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        sampler = Sampler(proc.pid, args.interval, fds=args.fds)
        sampler.start()
        rc = proc.wait()
        wall = time.monotonic() - start
        sampler.done.set()
        sampler.join()
    leftovers = _terminate_rest()
    _reap()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "rc": rc,
        "wall": wall,
        "peak_pss": sampler.peak["pss"],
        "peak_rss_sum": sampler.peak["rss"],
        "largest_rss": usage.ru_maxrss * 1024,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_fds": sampler.peak["fds"],
        "peak_procs": sampler.peak["procs"],
        "peak_threads": sampler.peak["threads"],
        "samples": sampler.samples,
        "leftover_processes": leftovers,
    }
    Path(args.out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
