"""Result states and records: one terminal ``TaskResult`` per host x task.

Data layer. The executor produces these; ``output`` renders them; the recap
counters are derived from them, so they always add up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """The terminal states of DESIGN.md, in recap column order."""

    OK = "ok"
    CHANGED = "changed"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNREACHABLE = "unreachable"
    TIMED_OUT = "timed_out"
    INDETERMINATE = "indeterminate"
    HEALTHY = "healthy"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    BLOCKED = "blocked"
    NOT_RUN = "not_run"

    def __str__(self) -> str:
        return self.value

    @property
    def is_failure(self) -> bool:
        """Whether this state makes the run exit non-zero."""
        return self in _FAILURES


#: The message of a task not started because the run was stopped.
STOPPED = "run stopped before this task"
#: Why the rest of a run was not run once its audit log could not be written (exit 5).
AUDIT_STOP = "the audit log could not be written: nothing further was changed"
#: The ``data`` flag of a diagnose task's record when it found its fault.
FAULT_FOUND = "fault_found"
#: The ``data`` key of a record skipped because of another failure on its host: that record's task.
CAUSE = "cause"


_FAILURES = frozenset(
    {Status.FAILED, Status.UNREACHABLE, Status.TIMED_OUT, Status.INDETERMINATE, Status.ROLLED_BACK,
     Status.ROLLBACK_FAILED, Status.BLOCKED}
)

#: Exit code of a run in which a rollback failed: a host is in neither its old nor its fixed state.
EXIT_ROLLBACK_FAILED = 6
#: Exit code of a run that did all it was allowed to and nothing failed, yet left hosts to do: the
#: blast-radius budget stopped hosts before their first change, or a merge lacks some slices.
EXIT_INCOMPLETE = 7

#: Exit codes of runs, worst first (a code not listed, such as 4, ranks first of all).
EXIT_PRECEDENCE = (5, 99, EXIT_ROLLBACK_FAILED, 3, 2, EXIT_INCOMPLETE, 0)


def worst_exit(*codes: int) -> int:
    """The exit code of several runs (or checks) together: the worst by ``EXIT_PRECEDENCE``."""
    return min(codes, key=lambda code: EXIT_PRECEDENCE.index(code) if code in EXIT_PRECEDENCE else -1)


def budget_reason(limit: int) -> str:
    """Why a host was not changed: the run's blast-radius budget was spent by other hosts."""
    return f"blast-radius budget: {limit} host{'s' * (limit != 1)} changed"


class FaultState(StrEnum):
    """What became of one playbook's fault on one host."""

    HEALTHY = "healthy"  # the diagnosis found no fault
    FOUND = "found"  # present; diagnose and plan stop here
    FIXED = "fixed"  # fixed and verified by the playbook's own checks
    FAILED = "failed"  # the diagnosis or the fix failed, with nothing to roll back
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    BLOCKED = "blocked"  # another fault's playbook must run first
    WAITING = "waiting"  # plan: runs after its blocker, if its fault is still present then
    NOT_RUN = "not_run"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Fault:
    """One playbook's fault on one host: its state, the evidence, and why."""

    playbook: str
    state: FaultState
    evidence: tuple[str, ...] = ()
    detail: str = ""
    blocked_by: str = ""


@dataclass(frozen=True)
class CommandResult:
    """What one command did: exit code (None if unknown), decoded output, timing."""

    command: str
    rc: int | None
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    truncated: bool = False
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def tail(self, stream: str = "stderr", lines: int = 10) -> str:
        text = self.stderr if stream == "stderr" else self.stdout
        return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class Diff:
    """A before/after pair for one path or object; rendered as a unified diff."""

    path: str
    before: str
    after: str


@dataclass(frozen=True)
class TaskResult:
    """The terminal record of one task on one host."""

    host: str
    task: str  # graph node id, "playbook:id"
    name: str
    status: Status
    message: str = ""
    changed: bool = False
    predicted: str = ""  # "change" | "no_change" | "unknown" | "" (not planned)
    diffs: tuple[Diff, ...] = ()
    commands: tuple[CommandResult, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)  # what `register` stores
    duration: float = 0.0
    phase: str = "tasks"  # diagnose | tasks | handlers | verify | rollback
    no_log: bool = False


@dataclass(frozen=True)
class HostResult:
    """Everything that happened on one host, in execution order."""

    host: str
    results: tuple[TaskResult, ...]
    status: Status  # the host's overall verdict, used for the recap's host column
    faults: tuple[Fault, ...] = ()  # the playbooks' faults, in the order their playbooks ran
    health: Mapping[str, Any] = field(default_factory=dict)  # the service's whole health at the end
    evidence: Mapping[str, str] = field(default_factory=dict)  # phase -> its evidence dir ("error": why not)

    def counts(self) -> Counter[Status]:
        return Counter(r.status for r in self.results)

    def root_causes(self) -> list[TaskResult]:
        """The host's failures that are not the consequence of another one, in execution order."""
        return [r for r in self.results
                if (r.status.is_failure or r.status is Status.NOT_RUN) and CAUSE not in r.data]


@dataclass(frozen=True)
class Run:
    """A finished run: per-host results plus how it ended."""

    run_id: str
    hosts: tuple[HostResult, ...]
    check: bool = False
    interrupted: bool = False
    aborted: str = ""  # why the remaining hosts were not run (threshold, ...)
    audit_error: str = ""  # why the audit log could not be written; nothing started after it
    over_budget: tuple[str, ...] = ()  # hosts stopped before their first change by the budget
    incomplete: str = ""  # why hosts were left to do: the budget, slices missing from a merge

    def all_results(self) -> Iterable[TaskResult]:
        for host in self.hosts:
            yield from host.results

    def recap(self) -> dict[str, Counter[Status]]:
        return {h.host: h.counts() for h in self.hosts}

    @property
    def exit_code(self) -> int:
        """0 success, 2 a task or verification failed (or a host was not run: locked,
        threshold; or blocked by another fault), 3 a host unreachable, 5 the audit log
        could not be written, 6 a rollback failed, 7 incomplete (hosts held back by the
        blast-radius budget, nothing failed), 99 interrupted."""
        if self.audit_error:
            return 5  # before all else: the run's record is incomplete
        if self.interrupted:
            return 99
        held = set(self.over_budget)  # their not_run is the budget's, not a failure
        statuses = {r.status for h in self.hosts for r in h.results
                    if not (h.host in held and r.status is Status.NOT_RUN)}
        statuses |= {h.status for h in self.hosts if not (h.host in held and h.status is Status.NOT_RUN)}
        if Status.ROLLBACK_FAILED in statuses:
            return EXIT_ROLLBACK_FAILED
        if Status.UNREACHABLE in statuses:
            return 3
        if any(s.is_failure for s in statuses) or self.aborted or Status.NOT_RUN in statuses:
            return 2  # a host not run (locked, threshold) is a host not fixed
        return EXIT_INCOMPLETE if self.over_budget or self.incomplete else 0
