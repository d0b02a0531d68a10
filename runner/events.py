"""Run events: the ``Listener`` protocol the executor reports progress to.

Data layer. The executor calls these from worker threads; implementations
(console progress, audit log) must be thread-safe. ``Listeners`` fans out.
A listener that keeps the run's record (the audit log) never raises: once it
cannot write, ``audit_error`` says why, and ``Halting`` stops the run from
starting anything new.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from runner.results import HostResult, Run, TaskResult


class Listener(Protocol):
    """Receives the run's events in order per host."""

    def run_started(self, run_id: str, hosts: Sequence[str], *, check: bool) -> None: ...

    def host_started(self, host: str) -> None: ...

    def task_finished(self, result: TaskResult) -> None: ...

    def host_finished(self, result: HostResult) -> None: ...

    def run_finished(self, run: Run) -> None: ...

    def audit_error(self) -> str:
        """Why an event could not be written to the audit log ('' while every one was)."""
        ...


class NullListener:
    """Ignores every event."""

    def run_started(self, run_id: str, hosts: Sequence[str], *, check: bool) -> None:
        return None

    def host_started(self, host: str) -> None:
        return None

    def task_finished(self, result: TaskResult) -> None:
        return None

    def host_finished(self, result: HostResult) -> None:
        return None

    def run_finished(self, run: Run) -> None:
        return None

    def audit_error(self) -> str:
        return ""


class Listeners(NullListener):
    """Forwards every event to each listener in turn."""

    def __init__(self, listeners: Sequence[Listener]) -> None:
        self.listeners = list(listeners)

    def run_started(self, run_id: str, hosts: Sequence[str], *, check: bool) -> None:
        for listener in self.listeners:
            listener.run_started(run_id, hosts, check=check)

    def host_started(self, host: str) -> None:
        for listener in self.listeners:
            listener.host_started(host)

    def task_finished(self, result: TaskResult) -> None:
        for listener in self.listeners:
            listener.task_finished(result)

    def host_finished(self, result: HostResult) -> None:
        for listener in self.listeners:
            listener.host_finished(result)

    def run_finished(self, run: Run) -> None:
        for listener in self.listeners:
            listener.run_finished(run)

    def audit_error(self) -> str:
        return next((e for e in (listener.audit_error() for listener in self.listeners) if e), "")


class Halting(Listeners):
    """Forwards every event to ``listener``; sets ``halt`` once it reports an ``audit_error``."""

    def __init__(self, listener: Listener, halt: threading.Event) -> None:
        super().__init__([listener])
        self.halt = halt

    def _check(self) -> None:
        if not self.halt.is_set() and self.audit_error():
            self.halt.set()

    def run_started(self, run_id: str, hosts: Sequence[str], *, check: bool) -> None:
        super().run_started(run_id, hosts, check=check)
        self._check()

    def host_started(self, host: str) -> None:
        super().host_started(host)
        self._check()

    def task_finished(self, result: TaskResult) -> None:
        super().task_finished(result)
        self._check()

    def host_finished(self, result: HostResult) -> None:
        super().host_finished(result)
        self._check()
