"""Walk one host through its plays: diagnose all, fix in fault order, verify each, roll back.

Run stage, called by the executor once per host. Every task of every play
that applies to the host ends with exactly one ``TaskResult``. A host may
have several faults, one per playbook, so the walk goes in phases; each
play's part of a phase is its ``PlayWalk`` (``playwalk``), and what the plays
share (the records, ``set_fact`` values, the lock, the evidence) stays here:

1. **Diagnose** every play (also in check mode: diagnose tasks must be
   read-only probes). A diagnose task that fails by ``assert``/``fail``/
   ``failed_when`` is evidence of the fault; one with ``blocked_by: X`` that
   fails says playbook X must run first. A play whose diagnosis finds nothing
   is ``healthy`` and nothing else of it runs (no lock is taken for it).
   A play that declares ``requires_root`` is ``failed`` before its diagnosis
   on a host where it would not run as root (who the connection runs as is
   learned once per host, where possible without a command of its own).
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

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from runner.errors import RemedyError
from runner.events import Listener
from runner.load.graph import Node, TaskGraph
from runner.model import Play, Playbook, Task
from runner.results import CAUSE, STOPPED, FaultState, HostResult, Status, TaskResult
from runner.run.capture import EvidenceRecorder, evidence_wanted
from runner.run.foresight import Foresight
from runner.run.hostlock import HostLock, LockBusy, LockError, default_lock_name
from runner.run.playwalk import PlayWalk, WalkOptions
from runner.run.rendering import host_becomes
from runner.run.taskrun import run_task

#: Seconds for the ``id`` probe of a play that declares ``requires_root``.
_ID_TIMEOUT = 30.0
#: The host verdict a play's final fault state contributes (the worst one wins).
_VERDICT = {FaultState.ROLLBACK_FAILED: Status.ROLLBACK_FAILED, FaultState.ROLLED_BACK: Status.ROLLED_BACK,
            FaultState.FAILED: Status.FAILED, FaultState.BLOCKED: Status.BLOCKED,
            FaultState.NOT_RUN: Status.NOT_RUN}


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
        self.identity: tuple[str, str] | None = None  # (uid, user name) the plays run as, once learned
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

        Learns who the host runs its commands as once, the first time a play needs to
        know: from the connection where it knows without a command of its own
        (``Connection.whoami``), else by asking the host (``id``). Not knowing refuses
        nothing: the diagnosis then meets and reports the trouble.
        """
        becomes = play.become or host_becomes(host_vars)
        if not play.requires_root or (becomes and (play.become_user or "root") == "root"):
            return ""
        if self.identity is None:
            self.identity = self._who()
        uid, user = self.identity
        if uid in ("", "0"):
            return ""
        return (f"{book.name} needs root on {self.host}; connected as {user}: add become: true "
                f"(or ansible_become=true for the host; -K if sudo asks for a password) "
                f"or connect as root")

    def _who(self) -> tuple[str, str]:
        """(uid, user name) that commands without ``become`` run as; ("", "") if it cannot be learned."""
        try:
            login = self.conn.whoami()
            if login is not None:
                return str(login.uid), login.user
            result = self.conn.run("id -u; id -un", timeout=_ID_TIMEOUT)
        except RemedyError:
            return "", ""
        words = result.stdout.split() if result.ok else []
        return (words[0], words[-1]) if len(words) == 2 else ("", "")

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

