"""Run events: the ``Listener`` protocol the executor reports progress to.

Data layer. The executor calls these from worker threads; implementations
(console progress, audit log) must be thread-safe. ``Listeners`` fans out.
"""

from __future__ import annotations

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
