"""The append-only JSONL audit log of every run: a ``Listener``.

Output stage. One JSON object per line, written with a single ``write`` on
an ``O_APPEND`` descriptor and fsynced, so concurrent runs never interleave
records (only a disk that fills up within a line makes a second ``write``)
and a crash can tear at most the last line. Every record passes
through the run's ``Redactor`` first (task results arrive already concealed
and masked). Events: ``run_start``, ``task_end`` (one per host x task: the
terminal record), ``host_end``, ``run_end``; ``plan_apply`` before
``apply`` runs a saved plan: ``claim_plan`` records its id (under ``flock``)
and ``plan_applied`` finds it, so that each saved plan is applied once; and,
outside runs, ``alert`` (what became of an alert) and ``alert_run`` (the run
it triggered). ``unfinished_runs`` finds the runs that started but never
ended (killed).

A write or fsync that fails (a full disk: ENOSPC, or EIO, EDQUOT, ...) never
raises: the log keeps the first error, writes nothing more (a later record
after a gap would hide it), and ``audit_error`` reports it, which stops the
run from starting anything new.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.redaction import Redactor
from runner.results import HostResult, Run, TaskResult

#: How much of the end of the log ``unfinished_runs`` reads.
_TAIL = 8 * 1024 * 1024


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data``: a short write (the disk filled up within it) goes on with the rest.

    Raises:
        OSError: the error that stopped it (ENOSPC for a full disk).
    """
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


class AuditLog:
    """Appends redacted JSONL records; open it before any host is contacted."""

    def __init__(self, path: str | Path, redactor: Redactor) -> None:
        self.path = Path(path)
        self.redactor = redactor
        self._lock = threading.Lock()
        self._seq = 0
        self._sync_lock = threading.Lock()
        self._written = 0  # every record up to this seq is written
        self._synced = 0  # every record up to this seq is on disk
        self._run_id = ""
        self._error = ""
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def audit_error(self) -> str:
        """Why a record could not be written ('' while every one was)."""
        return self._error

    def _failed(self, error: OSError) -> None:
        if not self._error:
            self._error = f"{self.path}: {error.strerror or error}"

    def _write(self, event: str, **fields: Any) -> None:
        with self._lock:
            if self._error:
                return
            self._seq += 1
            record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
                      "run_id": self._run_id, "seq": self._seq, "event": event, **fields}
            line = json.dumps(self.redactor.value(record), sort_keys=True, default=str) + "\n"
            try:
                _write_all(self._fd, line.encode("utf-8", "backslashreplace"))
            except OSError as error:
                self._failed(error)
                return
            fd, mine = self._fd, self._seq
            self._written = self._seq
        # Outside the write lock, and one fsync covers every record written before it
        # started: hosts do not queue behind each other's fsync, yet each record is on
        # disk before its call returns.
        with self._sync_lock:
            if self._synced >= mine:
                return
            upto = self._written
            try:
                os.fsync(fd)
            except OSError as error:
                with self._lock:
                    self._failed(error)
                return
            self._synced = upto

    def record(self, event: str, **fields: Any) -> None:
        """Append one record outside a run's events (``alert``, ``alert_run``: what became of an alert)."""
        self._write(event, **fields)

    def run_started(self, run_id: str, hosts: Sequence[str], *, check: bool) -> None:
        self._run_id = run_id
        self._write("run_start", hosts=list(hosts), check=check, pid=os.getpid())

    def host_started(self, host: str) -> None:
        self._write("host_start", host=host)

    def task_started(self, host: str, task: str, name: str) -> None:
        """Nothing: a task's one record (``task_end``) is written when it ends."""

    def task_finished(self, result: TaskResult) -> None:
        fields: dict[str, Any] = {
            "host": result.host, "task": result.task, "name": result.name, "phase": result.phase,
            "status": str(result.status), "changed": result.changed, "predicted": result.predicted,
            "duration_ms": int(result.duration * 1000), "message": result.message,
            "commands": [{"command": c.command, "rc": c.rc, "truncated": c.truncated}
                         for c in result.commands],
        }
        self._write("task_end", **fields)

    def host_finished(self, result: HostResult) -> None:
        self._write("host_end", host=result.host, status=str(result.status),
                    evidence=dict(result.evidence) or None)

    def run_finished(self, run: Run) -> None:
        self._write("run_end", exit_code=run.exit_code, interrupted=run.interrupted,
                    aborted=run.aborted or None)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                try:
                    os.close(self._fd)
                except OSError as error:  # a deferred write error (NFS) is a failed write too
                    self._failed(error)
                self._fd = -1


def unfinished_runs(path: str | Path) -> list[dict[str, Any]]:
    """The ``run_start`` records of runs that never ended, since the last run that did.

    A run counts when its log has a ``run_start`` after the last ``run_end`` of
    any run, no ``run_end`` of its own, and its process (``pid``) is gone: it
    was killed, or its machine went down. Only the end of the log is read.
    """
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - _TAIL))
            lines = handle.read().splitlines()
    except OSError:
        return []
    started: dict[str, dict[str, Any]] = {}
    for line in lines:
        if b'"event": "run_' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue  # torn by a crash, or cut by the seek
        if record.get("event") == "run_end":
            started.clear()
        elif record.get("event") == "run_start":
            started[str(record.get("run_id"))] = record
    return [r for r in started.values() if not _alive(r.get("pid"))]


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, another user's
    return True


def plan_applied(path: Path, plan_id: str) -> str:
    """When the audit log at ``path`` says the saved plan ``plan_id`` was applied ('' if never)."""
    try:
        with open(path, "rb") as handle:
            return _plan_claim(handle, plan_id)
    except FileNotFoundError:
        return ""


def _plan_claim(handle: Any, plan_id: str) -> str:
    needle = plan_id.encode()
    for line in handle:
        if needle not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:  # a torn last line
            continue
        if isinstance(record, dict) and record.get("event") == "plan_apply" \
                and record.get("plan_id") == plan_id:
            return str(record.get("ts", "?"))
    return ""


def claim_plan(path: Path, plan_id: str, **fields: Any) -> str:
    """Record in the audit log that the saved plan ``plan_id`` is applied now, unless it already was.

    Returns when it was applied before ('' when this call recorded it). The
    log is locked (``flock``) while it is read and the ``plan_apply`` record
    appended and fsynced, so of two applies of one plan exactly one goes on.

    Raises:
        OSError: the log cannot be read or written.
    """
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "rb+", buffering=0) as handle:
        fcntl.flock(fd, fcntl.LOCK_EX)
        earlier = _plan_claim(handle, plan_id)
        if not earlier:
            record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": "plan_apply",
                      "plan_id": plan_id, "pid": os.getpid(), **fields}
            _write_all(fd, (json.dumps(record, sort_keys=True, default=str) + "\n").encode())
            os.fsync(fd)
    return earlier
