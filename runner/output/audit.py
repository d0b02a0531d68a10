"""The append-only JSONL audit log of every run: a ``Listener``.

Output stage. One JSON object per line, written with a single ``write`` on
an ``O_APPEND`` descriptor and fsynced, so concurrent runs never interleave
records (only a disk that fills up within a line makes a second ``write``)
and a crash can tear at most the last line. Every record passes
through the run's ``Redactor`` first (task results arrive already concealed
and masked). Events: ``run_start``, ``task_end`` (one per host x task: the
terminal record), ``host_end``, ``run_end``.

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

    def run_started(self, run_id: str, hosts: Sequence[str], *, check: bool) -> None:
        self._run_id = run_id
        self._write("run_start", hosts=list(hosts), check=check, pid=os.getpid())

    def host_started(self, host: str) -> None:
        self._write("host_start", host=host)

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
        self._write("host_end", host=result.host, status=str(result.status))

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
