"""Walk one host through its plays: diagnose all, fix in fault order, verify each, roll back.

Run stage, called by the executor once per host. Every task of every play
that applies to the host ends with exactly one ``TaskResult``. A host may
have several faults, one per playbook, so the walk goes in phases:

1. **Diagnose** every play (also in check mode: diagnose tasks must be
   read-only probes). A diagnose task that fails by ``assert``/``fail``/
   ``failed_when`` is evidence of the fault; one with ``blocked_by: X`` that
   fails says playbook X must run first. A play whose diagnosis finds nothing
   is ``healthy`` and nothing else of it runs (no lock is taken for it).
   A play that declares ``requires_root`` is ``failed`` before its diagnosis
   on a host where it would not run as root (one ``id`` probe per host).
2. **Fix**, one play after another in the fault order (``graph.plays``:
   ``requires``, ``after`` and ``blocked_by`` between playbooks, file order
   otherwise): before a play's first change the host lock is taken (once) and
   its diagnosis repeated, since the plays before it changed the host; then
   the run's blast-radius budget is claimed (a host past it changes nothing:
   its fix is predicted as in check mode and recorded ``not_run``). Its
   ``tasks`` follow the graph: a failed task skips only its dependents. A
   blocked play runs only after its blocker ran, if its fault is still there.
3. **Handlers** notified by a changed task run once, after every play's fix
   tasks (handlers of different playbooks with the same name or topic, module
   and arguments are one handler): a service is restarted once, with every
   fault fixed, not once per fault.
4. **Verify** each play that ran, by its own checks; then **roll back**, in
   reverse order, only the plays whose fix or verification failed. A failed
   rollback task (even with ``ignore_errors``, which only lets the rollback
   go on) makes the verdict ``rollback_failed``.
5. The service's whole **health** is read once at the end (the last play that
   ran and declares ``health:``) and kept on the ``HostResult``.

A failure that stops the rest of a play (a failed probe, a lock held by another
run, a failed re-check) is recorded once for the host; every task it stopped
is ``skipped`` with ``data[CAUSE]`` naming that record's task.

In check mode the walk stops after the handlers' predictions. Once ``stop``
is set no task starts any more (the rest are ``not_run``). Every result is
recorded as the run's ``Redactor`` shows it (``no_log`` concealed, secrets
masked); what ``register`` stores is the task's own.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runner.errors import RemedyError
from runner.events import Listener
from runner.load import templating
from runner.load.graph import Node, TaskGraph
from runner.model import SECTIONS, Play, Playbook, Task
from runner.redaction import Redactor
from runner.results import CAUSE, FAULT_FOUND, STOPPED, Fault, FaultState, HostResult, Status, TaskResult
from runner.run.budget import ChangeBudget
from runner.run.capture import EvidenceRecorder, evidence_wanted
from runner.run.context import HostContext
from runner.run.foresight import Foresight
from runner.run.hostlock import ANSWER_TIMEOUT, HostLock, LockBusy, LockError, default_lock_name
from runner.run.rendering import host_becomes
from runner.run.taskrun import FAILED_WHEN, ignore_failure, remember, run_task

#: Seconds for the ``id`` probe of a play that declares ``requires_root``.
_ID_TIMEOUT = 30.0
EVIDENCE_MODULES = frozenset({"assert", "fail"})
#: The host verdict a play's final fault state contributes (the worst one wins).
_VERDICT = {FaultState.ROLLBACK_FAILED: Status.ROLLBACK_FAILED, FaultState.ROLLED_BACK: Status.ROLLED_BACK,
            FaultState.FAILED: Status.FAILED, FaultState.BLOCKED: Status.BLOCKED,
            FaultState.NOT_RUN: Status.NOT_RUN}


@dataclass
class WalkOptions:
    """Per-run settings a host walk needs."""

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


class HostWalk:
    """Runs every applicable play on one host and collects its results."""

    def __init__(self, host: str, conn: Any, graph: TaskGraph, options: WalkOptions,
                 listener: Listener) -> None:
        self.host = host
        self.conn = conn
        self.graph = graph
        self.options = options
        self.listener = listener
        self.results: list[TaskResult] = []
        self.lock: HostLock | None = None
        self.lock_refused: LockBusy | LockError | None = None
        self.blocking: set[str] = set()  # tasks whose dependents must be skipped
        self.facts: dict[str, Any] = {}  # set_fact values: the host's, across its plays
        self.health: dict[str, Any] = {}
        self.causes: dict[str, str] = {}  # a failure shown once for the host -> its record's task
        self.evidence: EvidenceRecorder | None = None
        self.lock_path = options.lock_path or default_lock_name(host)
        self.foresight = Foresight()  # check mode: the changes planned so far, over every play
        self.identity: tuple[str, str] | None = None  # (uid, user name) the plays run as, once probed
        self.holding = ""  # why the fix is only planned (the blast-radius budget), or ""

    def run(self, plays: list[tuple[Playbook, Play, Mapping[str, Any]]]) -> HostResult:
        """``plays``: each applicable play with the host's variables for it, in fault order."""
        units: list[PlayWalk] = []
        try:
            for book, play, host_vars in plays:
                if not self.options.lock_path and host_vars.get("remedy_lock_path"):
                    self.lock_path = str(host_vars["remedy_lock_path"])
                units.append(PlayWalk(self, book, play, host_vars))
            self._phases(units)
        finally:
            if self.lock is not None:
                self.lock.release()
        faults = tuple(unit.fault() for unit in units)
        return HostResult(self.host, tuple(self.results), self._host_status(units), faults=faults,
                          health=self.health, evidence=self.evidence.paths if self.evidence else {})

    def _phases(self, units: list[PlayWalk]) -> None:
        for unit in units:
            unit.diagnose_first()
        active = [u for u in units if u.state in (FaultState.FOUND, FaultState.BLOCKED)]
        if self.options.diagnose_only:
            for unit in active:
                self.close_rest(unit.every, Status.SKIPPED, "diagnose only")
            return
        for index, unit in enumerate(active):
            unit.fix(active[:index], self.options.check)
        ran = [u for u in active if u.ran]
        self._handlers(ran)
        if self.options.check:
            for unit in ran:
                self.close_rest(unit.nodes["verify"] + unit.nodes["rollback"], Status.SKIPPED,
                                "check mode: runs after a real fix")
            return
        for unit in ran:
            unit.verify()
        for unit in reversed(ran):
            unit.settle()
        if any(r.changed for r in self.results):  # a host left as it was keeps its health
            self._final_health(ran)
        if self.evidence is not None and not self.options.stop.is_set():
            self.evidence.capture("after")

    def _host_status(self, units: list[PlayWalk]) -> Status:
        dry = self.options.check or self.options.diagnose_only  # a blocked fault there is a finding
        verdicts = {u.state for u in units} - ({FaultState.BLOCKED} if dry else set())
        statuses = {r.status for r in self.results} | {_VERDICT[s] for s in verdicts if s in _VERDICT}
        for status in (Status.UNREACHABLE, Status.INDETERMINATE, Status.ROLLBACK_FAILED,
                       Status.ROLLED_BACK, Status.FAILED, Status.BLOCKED, Status.TIMED_OUT,
                       Status.NOT_RUN):
            if status in statuses:
                return status
        if statuses and statuses <= {Status.HEALTHY, Status.OK, Status.SKIPPED}:
            found = any(u.state is not FaultState.HEALTHY for u in units)
            return Status.OK if found or Status.HEALTHY not in statuses else Status.HEALTHY
        return Status.CHANGED if Status.CHANGED in statuses else Status.OK

    def record(self, result: TaskResult) -> TaskResult:
        """Keep and report ``result`` as every output may show it (a fix only planned: ``not_run``)."""
        if self.holding and result.phase in ("tasks", "handlers"):
            result = replace(result, status=Status.NOT_RUN, changed=False, message=self.holding)
        result = self.options.redactor.result(result)
        self.results.append(result)
        self.listener.task_finished(result)
        return result

    def started(self, node: Node) -> None:
        """Say that ``node`` starts: progress shows what runs, and for how long."""
        self.listener.task_started(self.host, node.id, self.options.redactor.text(node.task.label))

    def close_rest(self, nodes: list[Node], status: Status, message: str) -> None:
        """Give every not-yet-recorded node of ``nodes`` its terminal record."""
        done = {r.task for r in self.results}
        for node in nodes:
            if node.id not in done:
                self.record(TaskResult(self.host, node.id, node.task.label, status,
                                       message=message, phase=node.section))

    def close_once(self, nodes: list[Node], status: Status, message: str, because: str) -> None:
        """One failure, recorded once for the host: the first node of ``nodes`` not yet recorded gets
        ``status`` and ``message``, every other one is skipped ``because`` of it. A failure the host
        already recorded (the same ``because``) skips them all."""
        done = {r.task for r in self.results}
        rest = [n for n in nodes if n.id not in done]
        if rest and because not in self.causes:
            first = rest.pop(0)
            self.record(TaskResult(self.host, first.id, first.task.label, status, message=message,
                                   phase=first.section))
            self.causes[because] = first.id
        if rest:
            self.skip_because(rest, self.causes[because], because)

    def skip_because(self, nodes: list[Node], cause: str, because: str) -> None:
        """Skip every not-yet-recorded node of ``nodes``: the record of task ``cause`` says why."""
        done = {r.task for r in self.results}
        for node in nodes:
            if node.id not in done:
                self.record(TaskResult(self.host, node.id, node.task.label, Status.SKIPPED,
                                       message=f"skipped because {because}", phase=node.section,
                                       data={CAUSE: cause}))

    def evidence_before(self, unit: PlayWalk) -> None:
        """Capture the evidence before the host's first change, once, if the run and the play keep it."""
        root = self.options.evidence_dir
        if root is None or self.evidence is not None or not evidence_wanted(unit.book.path, unit.host_vars):
            return
        self.evidence = EvidenceRecorder(self.conn, self.host, unit.host_vars, root / self.host,
                                         self.options.redactor)
        self.evidence.capture("before")

    def root_refusal(self, book: Playbook, play: Play, host_vars: Mapping[str, Any]) -> str:
        """Why ``play``, which declares ``requires_root``, cannot run on this host; "" if it can.

        Asks the host who it runs as (``id``) once, the first time a play needs to know;
        a probe that fails refuses nothing: the diagnosis then meets and reports the trouble.
        """
        becomes = play.become or host_becomes(host_vars)
        if not play.requires_root or (becomes and (play.become_user or "root") == "root"):
            return ""
        if self.identity is None:
            try:
                result = self.conn.run("id -u; id -un", timeout=_ID_TIMEOUT)
            except RemedyError:
                result = None
            words = result.stdout.split() if result is not None and result.ok else []
            self.identity = (words[0], words[-1]) if len(words) == 2 else ("", "")
        uid, user = self.identity
        if uid in ("", "0"):
            return ""
        return (f"{book.name} needs root on {self.host}; connected as {user}: add become: true "
                f"(or ansible_become=true for the host; -K if sudo asks for a password) "
                f"or connect as root")

    def ensure_lock(self) -> None:
        """Take the host lock before the first change (not in check mode).

        Raises:
            LockBusy: another run holds the lock.
            LockError: the lock could not be taken for another reason.
        """
        if self.options.check or self.lock is not None:
            return
        if self.lock_refused is not None:  # one wait per host, not one per play
            raise self.lock_refused
        lock = HostLock(self.conn, self.lock_path, self.options.run_id,
                        answer_timeout=self.options.lock_answer_timeout)
        try:
            lock.acquire(timeout=self.options.lock_timeout, stop=self.options.stop)
        except (LockBusy, LockError) as refused:
            self.lock_refused = refused
            raise
        self.lock = lock

    def _handlers(self, units: list[PlayWalk]) -> None:
        """Each notified handler once for the host, after every play's fix tasks."""
        done: dict[tuple[str, str, str], TaskResult] = {}
        for unit in units:
            for node in unit.nodes["handlers"]:
                if self.options.stop.is_set():
                    self.close_rest(unit.nodes["handlers"], Status.NOT_RUN, STOPPED)
                    break
                topics = {node.task.name, *node.task.listen} - {""}
                if not topics & unit.notified:
                    self.record(TaskResult(self.host, node.id, node.task.label, Status.SKIPPED,
                                           message="not notified", phase="handlers"))
                    continue
                keys = [(topic, node.task.module, repr(sorted(node.task.args.items()))) for topic in topics]
                earlier = next((done[k] for k in keys if k in done), None)
                if earlier is not None:
                    result = self.record(TaskResult(
                        self.host, node.id, node.task.label, Status.SKIPPED, phase="handlers",
                        message=f"ran once for the host, as {earlier.task} ({earlier.status})"))
                    unit.fix_failed |= earlier.status.is_failure
                    continue
                result = unit.one(node, "handlers")
                unit.fix_failed |= result.status.is_failure
                done.update(dict.fromkeys(keys, result))

    def _final_health(self, units: list[PlayWalk]) -> None:
        """The service's whole health, read once with the last declared ``health:``."""
        unit = next((u for u in reversed(units) if u.play.health), None)
        if unit is None or self.options.stop.is_set():
            return
        args = {"url": unit.play.health.get("url"), "checks": [],
                "timeout": unit.play.health.get("timeout", 10),
                "validate_certs": unit.play.health.get("validate_certs", True)}
        probe = Task(id="health", name="the service's health after the run", location=unit.play.location,
                     module="health", args=args)
        result = run_task(unit.ctx, f"{unit.book.name}:health", probe, unit.current_scope(), phase="verify")
        data = result.data
        self.health = {"url": data.get("url"), "status": data.get("status"), "ok": result.status is Status.OK,
                       "failing": list(data.get("failing", [])), "reasons": list(data.get("reasons", [])),
                       "message": result.message}


def _evidence(result: TaskResult) -> str:
    """What a failing diagnose task found: its message, or its output for ``failed_when``."""
    if result.message != FAILED_WHEN:
        return result.message
    output = str(result.data.get("stdout") or result.data.get("stderr") or "").strip()
    return output.splitlines()[-1][:200] if output else result.message


class PlayWalk:
    """One play on one host: its diagnosis, fix, verification and rollback, and its verdict."""

    def __init__(self, walk: HostWalk, book: Playbook, play: Play, host_vars: Mapping[str, Any]) -> None:
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
