"""The guards' state file: read, change and write it whole, under a lock, atomically.

Alerts stage, beside ``guards``. The state lives next to the audit log
(``audit.jsonl`` -> ``audit.guards.json``), so that cooldowns, fix counts
and the storm window survive a restart of ``remedy listen`` and are shared
with ``remedy trigger`` runs of the same audit log. Each change holds an
``flock`` on ``<state>.lock`` (other processes) and a thread lock, reads the
file, and writes the new state to a temporary file that is fsynced and
renamed over it: a crash leaves the old state or the new one, never half.

An alert in flight is owned by a process (pid and a random per-start id);
entries of a process that is gone, or of an earlier process with this pid
(a container restarted), are dropped when read.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from runner.alerts.guards import GuardState, InFlight
from runner.errors import InputError, Location

T = TypeVar("T")
#: What identifies this process as the owner of the alerts it runs.
INSTANCE = uuid.uuid4().hex


def state_path(audit_log: Path) -> Path:
    """The guard state file beside an audit log."""
    return audit_log.with_name(audit_log.stem + ".guards.json")


def owner(now: float) -> InFlight:
    """This process as the owner of an alert in flight since ``now``."""
    return InFlight(os.getpid(), INSTANCE, now)


class GuardStore:
    """The guard state in one file, changed by one ``transact`` at a time across processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def transact(self, change: Callable[[GuardState], tuple[GuardState, T]]) -> T:
        """Apply ``change`` to the stored state and store what it gives; returns its second value.

        Raises:
            InputError: the file cannot be read, written or is not a guard state.
        """
        with self._lock, self._file_lock():
            state = self.load()
            new, result = change(state)
            if new != state:
                self._save(new)
            return result

    def load(self) -> GuardState:
        """The stored state (empty when there is no file yet), without stale alerts in flight.

        Raises:
            InputError: the file cannot be read or is not a guard state.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return GuardState()
        except OSError as error:
            raise self._error(f"cannot read the guard state: {error.strerror}") from None
        try:
            state = GuardState.from_json(json.loads(text))
        except ValueError as error:
            raise self._error(f"this is not remedy's guard state: {error}") from None
        live = {fp: f for fp, f in state.in_flight.items() if _alive(f)}
        return state if len(live) == len(state.in_flight) else GuardState(
            live, state.last_run, state.fixes, state.alerting)

    def _save(self, state: GuardState) -> None:
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(temp, "w", encoding="utf-8") as handle:
                json.dump(state.to_json(), handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as error:
            temp.unlink(missing_ok=True)
            raise self._error(f"cannot write the guard state: {error.strerror}") from None

    def _file_lock(self) -> _FileLock:
        return _FileLock(self.path.with_name(self.path.name + ".lock"), self._error)

    def _error(self, message: str) -> InputError:
        return InputError.at(Location(str(self.path)), message,
                             "fix its permissions, or remove it (and its .lock) to start the guards afresh")


class _FileLock:
    """An exclusive ``flock`` on a lock file, for one ``with`` block."""

    def __init__(self, path: Path, error: Callable[[str], InputError]) -> None:
        self.path = path
        self.error = error
        self.fd = -1

    def __enter__(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise self.error(f"cannot open the guard state's lock: {error.strerror}") from None
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing releases the lock


def _alive(flight: InFlight) -> bool:
    """Whether the process that owns an alert in flight still runs (and is that process)."""
    if flight.pid == os.getpid():
        return flight.instance == INSTANCE
    try:
        os.kill(flight.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
