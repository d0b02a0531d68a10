"""One play on one host: its diagnosis, fix, verification and rollback, and its verdict.

Run stage, used by ``hostwalk``, which walks a host's plays through the phases
its docstring describes and calls each ``PlayWalk`` for the play's part of
every phase: ``diagnose_first``, ``fix``, ``verify``, ``settle`` (and ``one``
for the handlers it runs once for the host). What the host's plays share (its
records, its ``set_fact`` values, the lock, the evidence, who the connection
runs as) stays with the host's walk, which a ``PlayWalk`` reaches only through
``HostSide``, the part of it that this module names.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from runner.load import templating
from runner.load.graph import Node, TaskGraph
from runner.model import SECTIONS, Play, Playbook, Task
from runner.redaction import Redactor
from runner.results import CAUSE, FAULT_FOUND, STOPPED, Fault, FaultState, Status, TaskResult
from runner.run.budget import ChangeBudget
from runner.run.context import HostContext
from runner.run.foresight import Foresight
from runner.run.hostlock import ANSWER_TIMEOUT, LockBusy, LockError
from runner.run.taskrun import FAILED_WHEN, ignore_failure, remember, run_task

EVIDENCE_MODULES = frozenset({"assert", "fail"})


@dataclass
class WalkOptions:
    """Per-run settings a host walk (and each of its plays) needs."""

    check: bool = False
    diagnose_only: bool = False
    tags: frozenset[str] = frozenset()
    skip_tags: frozenset[str] = frozenset()
    lock_path: str = ""  # "" = the host's remedy_lock_path, or default_lock_name(host)
    lock_timeout: float = 0.0
    lock_answer_timeout: float = ANSWER_TIMEOUT
    run_id: str = ""
    become_password: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    redactor: Redactor = field(default_factory=Redactor)
    evidence_dir: Path | None = None  # the run's evidence: <it>/<host>/before, after; None: none
    budget: ChangeBudget = field(default_factory=lambda: ChangeBudget(None))  # the run's, shared


@dataclass(frozen=True)
class Diagnosis:
    """What a play's diagnose section found: ``evidence`` of the fault, or who blocks it."""

    evidence: tuple[str, ...] = ()
    blocked_by: str = ""
    detail: str = ""
    failed: str = ""  # why the diagnosis could not complete (a probe failed), or ""
    failed_task: str = ""  # the task of the probe that failed


class HostSide(Protocol):
    """What a ``PlayWalk`` uses of its host's walk (``hostwalk.HostWalk``): what the plays share."""

    host: str
    conn: Any
    graph: TaskGraph
    options: WalkOptions
    foresight: Foresight  # check mode: the changes planned so far, over every play
    results: list[TaskResult]  # every record of the host so far
    blocking: set[str]  # tasks whose dependents must be skipped
    facts: dict[str, Any]  # set_fact values: the host's, across its plays
    holding: str  # why the fix is only planned (the blast-radius budget), or ""

    def record(self, result: TaskResult) -> TaskResult:
        """Keep and report ``result`` as every output may show it."""
        ...

    def started(self, node: Node) -> None:
        """Say that ``node`` starts."""
        ...

    def close_rest(self, nodes: list[Node], status: Status, message: str) -> None:
        """Give every not-yet-recorded node of ``nodes`` its terminal record."""
        ...

    def close_once(self, nodes: list[Node], status: Status, message: str, because: str) -> None:
        """One failure, recorded once for the host; the other nodes skipped ``because`` of it."""
        ...

    def skip_because(self, nodes: list[Node], cause: str, because: str) -> None:
        """Skip every not-yet-recorded node of ``nodes``: the record of task ``cause`` says why."""
        ...

    def root_refusal(self, book: Playbook, play: Play, host_vars: Mapping[str, Any]) -> str:
        """Why ``play`` cannot run on the host for want of root; "" if it can."""
        ...

    def ensure_lock(self) -> None:
        """Take the host lock before the first change (raises ``LockBusy``, ``LockError``)."""
        ...

    def evidence_before(self, unit: PlayWalk) -> None:
        """Capture the evidence before the host's first change, once."""
        ...


class PlayWalk:
    """One play on one host: its diagnosis, fix, verification and rollback, and its verdict."""

    def __init__(self, walk: HostSide, book: Playbook, play: Play, host_vars: Mapping[str, Any]) -> None:
        self.walk = walk
        self.book = book
        self.play = play
        self.nodes = {s: walk.graph.section_order(play, s) for s in SECTIONS}
        self.every = [n for section in self.nodes.values() for n in section]
        self.host_vars = host_vars
        options = walk.options
        self.ctx = HostContext(walk.host, walk.conn, play, Path(book.path).resolve().parent,
                               check=options.check, become_password=options.become_password,
                               stop=options.stop, run_id=options.run_id, redactor=options.redactor,
                               foresight=walk.foresight)
        self.scope = templating.Scope([(host_vars, True), ({"remedy_run_id": options.run_id}, False)])
        self.registered: dict[str, Any] = {}
        self.notified: set[str] = set()
        self.state = FaultState.HEALTHY
        self.diagnosis = Diagnosis()
        self.ran = False  # its fix tasks ran (or were predicted, in check mode)
        self.fix_failed = False
        self.verified = False
        self.detail = ""

    def current_scope(self) -> templating.Scope:
        return self.scope.child({**self.walk.facts, **self.registered})

    def fault(self) -> Fault:
        return Fault(self.book.name, self.state, self.diagnosis.evidence, self.detail,
                     self.diagnosis.blocked_by)

    # --- phase 1: diagnosis --------------------------------------------------------------

    def diagnose_first(self) -> None:
        """The first diagnosis, recorded; sets ``state``."""
        if self.walk.options.stop.is_set():
            self._close(FaultState.NOT_RUN, Status.NOT_RUN, STOPPED)
            return
        refusal = self.walk.root_refusal(self.book, self.play, self.scope)
        if refusal:
            self._close_once(FaultState.FAILED, Status.FAILED, refusal, "the connection is not root")
            return
        self.diagnosis = found = self._diagnose(recheck=False)
        if found.failed:
            self.state, self.detail = FaultState.FAILED, f"diagnosis could not complete: {found.failed}"
            label = self.walk.graph.nodes[found.failed_task].task.label
            self.walk.skip_because(self.every, found.failed_task, f"'{label}' failed")
        elif found.blocked_by:
            self.state = FaultState.BLOCKED
            self.detail = f"blocked by {found.blocked_by}: {found.detail}"
        elif found.evidence or not self.nodes["diagnose"]:
            self.state = FaultState.FOUND
        else:
            self._close(FaultState.HEALTHY, Status.HEALTHY, "fault not present; nothing to do")

    def _diagnose(self, *, recheck: bool) -> Diagnosis:
        """Run the diagnose section; the re-check before a change records nothing."""
        evidence: list[str] = []
        blocked: tuple[str, str] | None = None
        probe_ctx = replace(self.ctx, check=False)  # diagnose tasks are read-only probes
        for node in self.nodes["diagnose"]:
            self.walk.started(node)
            result = run_task(probe_ctx, node.id, node.task, self.current_scope(), phase="diagnose")
            self._keep(node.task, result)
            failed = result.status is Status.FAILED and not result.data.get("error")
            shown = self.walk.options.redactor.result(result)  # evidence as every output may show it
            if failed and node.task.blocked_by and blocked is None:
                blocked = (node.task.blocked_by, _evidence(shown))
                result = replace(result, status=Status.OK,
                                 message=f"blocked by {blocked[0]}: {blocked[1]}")
            elif failed and (node.task.module in EVIDENCE_MODULES or node.task.failed_when is not None):
                detail = _evidence(shown)
                evidence.append(f"{node.task.label}: {detail}")
                result = replace(result, status=Status.OK, message=f"fault found: {detail}",
                                 data={**result.data, FAULT_FOUND: True})
            elif result.status.is_failure and not node.task.ignore_errors and blocked is None:
                if not recheck:
                    self.walk.record(result)
                return Diagnosis(tuple(evidence), failed=f"{node.task.label}: {shown.message}",
                                 failed_task=node.id)
            if not recheck:
                self.walk.record(result)
        if blocked is not None:
            return Diagnosis(tuple(evidence), blocked_by=blocked[0], detail=blocked[1])
        return Diagnosis(tuple(evidence))

    # --- phase 2: fix -----------------------------------------------------------------------

    def fix(self, before: list[PlayWalk], check: bool) -> None:
        """Run the fix tasks, after the lock and a fresh diagnosis; ``before``: the plays ahead of it."""
        if any(u.book is self.book and (u.state is FaultState.FAILED or u.fix_failed) for u in before):
            self._close(FaultState.NOT_RUN, Status.SKIPPED,
                        "an earlier play of this playbook failed on the host")
            return
        ran = [u for u in before if u.ran]
        if self.state is FaultState.BLOCKED and not self._blocker_ran(ran, check):
            return
        if not check and not self._lock_and_recheck(ran):
            return
        if not check and not self.walk.options.budget.claim(self.walk.host):
            self._plan_only(self.walk.options.budget.reason)
            return
        if not check:
            self.walk.evidence_before(self)
        self.ctx.pending_change = any(u.ctx.pending_change for u in ran)
        self.ran = True
        self.fix_failed = self._walk(self.nodes["tasks"], "tasks")

    def _plan_only(self, reason: str) -> None:
        """Past the budget: predict the fix as check mode does, record each task ``not_run``."""
        self.walk.holding = reason
        self.ctx = replace(self.ctx, check=True)
        self._walk(self.nodes["tasks"], "tasks")
        self._close(FaultState.NOT_RUN, Status.NOT_RUN, reason)

    def _blocker_ran(self, ran: list[PlayWalk], check: bool) -> bool:
        blocker = self.diagnosis.blocked_by
        if not any(u.book.name == blocker for u in ran):
            self._close(FaultState.BLOCKED, Status.SKIPPED if check else Status.BLOCKED,
                        f"{self.detail}; run {blocker} first")
            return False
        if check:
            self._close(FaultState.WAITING, Status.SKIPPED,
                        f"runs after {blocker}, if its fault is still present then ({self.detail})")
            return False
        return True

    def _lock_and_recheck(self, ran: list[PlayWalk]) -> bool:
        try:
            self.walk.ensure_lock()
        except LockBusy as busy:
            self._close_once(FaultState.NOT_RUN, Status.NOT_RUN, f"locked: {busy}",
                             "the host is locked by another run")
            return False
        except LockError as error:  # not another run: the host's own trouble
            state = FaultState.NOT_RUN if error.status is Status.NOT_RUN else FaultState.FAILED
            self._close_once(state, error.status, str(error), "the host lock could not be taken")
            return False
        if not self.nodes["diagnose"]:
            return True
        found = self._diagnose(recheck=True)
        after = f" after {', '.join(u.book.name for u in ran)} ran" if ran else ""
        if found.failed:
            self._close_once(FaultState.FAILED, Status.FAILED, f"the diagnosis failed when re-checked "
                             f"before the first change{after} ({found.failed}); nothing was changed",
                             f"the diagnosis of {self.book.name} failed when re-checked")
        elif found.blocked_by:
            self.diagnosis = found
            self._close(FaultState.BLOCKED, Status.BLOCKED,
                        f"still blocked by {found.blocked_by}{after}: {found.detail}")
        elif not found.evidence:
            self._close(FaultState.HEALTHY, Status.HEALTHY,
                        f"fault no longer present when re-checked{after}; nothing changed")
        else:
            self.diagnosis = replace(found, blocked_by="")
            self.state = FaultState.FOUND
            return True
        return False

    def _walk(self, nodes: list[Node], phase: str) -> bool:
        """Run a section along the graph; True if any task failed."""
        failed_any = False
        for node in nodes:
            if self.walk.options.stop.is_set():
                self.walk.close_rest(nodes, Status.NOT_RUN, STOPPED)
                return True
            blocked = [d for d in self.walk.graph.dependencies(node.id) if d in self.walk.blocking]
            if blocked:
                result = TaskResult(self.walk.host, node.id, node.task.label, Status.SKIPPED,
                                    message=f"dependency {blocked[0]} did not succeed", phase=phase,
                                    data={CAUSE: blocked[0]})
                self.walk.blocking.add(node.id)
                self.walk.record(result)
                failed_any = True
                continue
            result = self.one(node, phase)
            failed_any |= result.status.is_failure
            if result.status is Status.INDETERMINATE:
                rest = nodes[nodes.index(node) + 1:]
                self.walk.close_rest(rest, Status.NOT_RUN, "connection lost earlier on this host")
                return True
        return failed_any

    def one(self, node: Node, phase: str) -> TaskResult:
        """Run one task node and record it."""
        task = node.task
        undone = self.walk.graph.undoes.get(node.id, ())
        if undone and not any(r.changed for r in self.walk.results if r.task in undone):
            names = ", ".join(t.split(":", 1)[1] for t in undone)
            return self.walk.record(TaskResult(self.walk.host, node.id, task.label, Status.SKIPPED,
                                               message=f"nothing to undo: {names} changed nothing",
                                               phase=phase))
        if not self._selected(task.tags + self.ctx.play.tags):
            result = TaskResult(self.walk.host, node.id, task.label, Status.SKIPPED,
                                message="not selected by tags", phase=phase)
        elif task.is_block:
            from runner.run.blocks import run_block

            self.walk.started(node)
            result = run_block(self.ctx, node.id, task, self.current_scope(), phase, self.registered)
        else:
            self.walk.started(node)
            result = run_task(self.ctx, node.id, task, self.current_scope(), phase=phase)
            if task.ignore_errors and phase != "rollback":  # a failed undo is never hidden
                result = ignore_failure(result)
            self._keep(task, result)
        if result.changed and not self.ctx.check or (self.ctx.check and result.predicted == "change"):
            self.notified.update(task.notify)
        go_on = phase == "rollback" and task.ignore_errors
        if (result.status.is_failure or result.status is Status.NOT_RUN) and not go_on:
            self.walk.blocking.add(node.id)
        return self.walk.record(result)

    def _keep(self, task: Task, result: TaskResult) -> None:
        """What a finished task leaves for the later ones: its register, its set_fact values."""
        remember(task, result, self.registered)
        if task.module == "set_fact" and result.status is not Status.FAILED:
            self.walk.facts.update(result.data.get("ansible_facts", {}))

    def _selected(self, tags: tuple[str, ...]) -> bool:
        options = self.walk.options
        names = set(tags)
        if "never" in names and not (names & options.tags):
            return False
        if options.skip_tags & names:
            return False
        if not options.tags or "always" in names:
            return True
        return bool(names & options.tags) or ("all" in options.tags)

    # --- phases 4 and 5: verification and rollback -------------------------------------------

    def verify(self) -> None:
        if self.fix_failed:
            self.walk.close_rest(self.nodes["verify"], Status.SKIPPED, "not verified: a fix task failed")
            return
        self.verified = not self._walk(self.nodes["verify"], "verify")

    def settle(self) -> None:
        """The verdict: fixed, or rolled back (in reverse order of the plays, by the caller)."""
        if self.verified:
            self.state = FaultState.FIXED
            self.walk.close_rest(self.nodes["rollback"], Status.SKIPPED, "verification passed")
            return
        reason = "a fix task failed" if self.fix_failed else "verification failed"
        self.walk.close_rest(self.nodes["verify"], Status.SKIPPED, f"not verified: {reason}")
        fix = {n.id for n in self.nodes["tasks"] + self.nodes["handlers"]}
        if not any(r.changed for r in self.walk.results if r.task in fix):
            self.walk.close_rest(self.nodes["rollback"], Status.SKIPPED,
                                 "nothing to roll back: the fix changed nothing")
            self.state, self.detail = FaultState.FAILED, f"{reason}; nothing was changed"
            return
        if not self.nodes["rollback"]:
            self.state, self.detail = FaultState.FAILED, f"{reason}; the playbook has no rollback"
            return
        self._walk(self.nodes["rollback"], "rollback")
        undo = {n.id for n in self.nodes["rollback"]}
        failed = [r for r in self.walk.results if r.task in undo and r.status.is_failure]
        if failed:
            self.state = FaultState.ROLLBACK_FAILED
            self.detail = f"{reason}; the rollback failed at '{failed[0].name}': {failed[0].message}"
        else:
            self.state, self.detail = FaultState.ROLLED_BACK, f"{reason}; rolled back"

    def _close(self, state: FaultState, status: Status, message: str) -> None:
        self.state = state
        self.detail = message
        self.walk.close_rest(self.every, status, message)

    def _close_once(self, state: FaultState, status: Status, message: str, because: str) -> None:
        """``_close``, with the failure recorded once and the other tasks skipped because of it."""
        self.state = state
        self.detail = message
        self.walk.close_once(self.every, status, message, because)


def _evidence(result: TaskResult) -> str:
    """What a failing diagnose task found: its message, or its output for ``failed_when``."""
    if result.message != FAILED_WHEN:
        return result.message
    output = str(result.data.get("stdout") or result.data.get("stderr") or "").strip()
    return output.splitlines()[-1][:200] if output else result.message
