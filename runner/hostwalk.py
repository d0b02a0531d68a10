"""Walk one host through its plays: diagnose, lock, fix, handlers, verify, roll back.

Stages layer, called by the executor once per host. Every task of every play
that applies to the host ends with exactly one ``TaskResult``:

* ``diagnose`` runs first (also in check mode: its tasks must be read-only
  probes). A diagnose task that fails by ``assert``/``fail``/``failed_when``
  is evidence of the fault; if no task finds the fault the host is
  ``healthy`` and nothing else runs on it (no lock is taken).
* Before the first change the host lock is taken and the diagnosis repeated.
* ``tasks`` follow the graph: a failed task skips only its dependents.
* ``handlers`` notified by a changed task run at the end of the play, even
  when a later task failed (a change that happened keeps its handler).
* ``verify`` checks the fix; if a fix task or a verification fails,
  ``rollback`` runs and the host's verdict is ``rolled_back`` (``failed`` if
  the rollback fails too); the failed task keeps its ``failed`` record. In
  check mode verify and rollback are skipped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runner import templating
from runner.graph import Node, TaskGraph
from runner.hostlock import ANSWER_TIMEOUT, HostLock, LockBusy, LockError, default_lock_path
from runner.model import SECTIONS, Play, Playbook
from runner.results import HostResult, Status, TaskResult
from runner.taskrun import FAILED_WHEN, HostContext, ignore_failure, remember, run_task

EVIDENCE_MODULES = frozenset({"assert", "fail"})


@dataclass
class WalkOptions:
    """Per-run settings a host walk needs."""

    check: bool = False
    diagnose_only: bool = False
    tags: frozenset[str] = frozenset()
    skip_tags: frozenset[str] = frozenset()
    lock_path: str = ""  # "" = the host's remedy_lock_path, or default_lock_path(host)
    lock_timeout: float = 0.0
    lock_answer_timeout: float = ANSWER_TIMEOUT
    run_id: str = ""
    become_password: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)


Emit = Callable[[TaskResult], None]


class HostWalk:
    """Runs every applicable play on one host and collects its results."""

    def __init__(self, host: str, conn: Any, graph: TaskGraph, options: WalkOptions,
                 emit: Emit) -> None:
        self.host = host
        self.conn = conn
        self.graph = graph
        self.options = options
        self.emit = emit
        self.results: list[TaskResult] = []
        self.lock: HostLock | None = None
        self.failed_books: set[str] = set()
        self.blocking: set[str] = set()  # tasks whose dependents must be skipped
        self.fault_found = False  # some diagnosis found its fault on this host
        self.verdict = Status.OK
        self.lock_path = options.lock_path or default_lock_path(host)

    def run(self, plays: list[tuple[Playbook, Play, Mapping[str, Any]]]) -> HostResult:
        """``plays``: each applicable play with the host's variables for it."""
        try:
            for book, play, host_vars in plays:
                if not self.options.lock_path and host_vars.get("remedy_lock_path"):
                    self.lock_path = str(host_vars["remedy_lock_path"])
                self._play(book, play, host_vars)
        finally:
            if self.lock is not None:
                self.lock.release()
        return HostResult(self.host, tuple(self.results), self._host_status())

    def _host_status(self) -> Status:
        statuses = {r.status for r in self.results}
        for status in (Status.UNREACHABLE, Status.INDETERMINATE, Status.ROLLED_BACK,
                       Status.FAILED, Status.TIMED_OUT, Status.NOT_RUN):
            if status in statuses or self.verdict is status:
                return status
        if statuses and statuses <= {Status.HEALTHY, Status.OK, Status.SKIPPED}:
            healthy = Status.HEALTHY in statuses and not self.fault_found
            return Status.HEALTHY if healthy else Status.OK
        return Status.CHANGED if Status.CHANGED in statuses else Status.OK

    def record(self, result: TaskResult) -> TaskResult:
        self.results.append(result)
        self.emit(result)
        return result

    def close_rest(self, nodes: list[Node], status: Status, message: str) -> None:
        """Give every not-yet-recorded node of ``nodes`` its terminal record."""
        done = {r.task for r in self.results}
        for node in nodes:
            if node.id not in done:
                self.record(TaskResult(self.host, node.id, node.task.label, status,
                                       message=message, phase=node.section))

    def _play(self, book: Playbook, play: Play, host_vars: Mapping[str, Any]) -> None:
        nodes = {s: self._section(play, s) for s in SECTIONS}
        every = [n for section in nodes.values() for n in section]
        if book.name in self.failed_books:
            self.close_rest(every, Status.SKIPPED, "an earlier play of this playbook failed on the host")
            return
        ctx = HostContext(self.host, self.conn, play, Path(book.path).resolve().parent,
                          check=self.options.check, become_password=self.options.become_password,
                          stop=self.options.stop, run_id=self.options.run_id)
        scope = templating.Scope([(host_vars, True), ({"remedy_run_id": self.options.run_id}, False)])
        registered: dict[str, Any] = {}
        play_walk = _PlayWalk(self, ctx, scope, registered)
        play_walk.run(nodes, every)
        if any(r.status.is_failure for r in self.results if r.task in {n.id for n in every}):
            self.failed_books.add(book.name)

    def _section(self, play: Play, section: str) -> list[Node]:
        return self.graph.section_order(play, section)

    def ensure_lock(self) -> None:
        """Take the host lock before the first change (not in check mode).

        Raises:
            LockBusy: another run holds the lock.
            LockError: the lock could not be taken for another reason.
        """
        if self.options.check or self.lock is not None:
            return
        lock = HostLock(self.conn, self.lock_path, self.options.run_id,
                        answer_timeout=self.options.lock_answer_timeout)
        lock.acquire(timeout=self.options.lock_timeout, stop=self.options.stop)
        self.lock = lock


def _evidence(result: TaskResult) -> str:
    """What a failing diagnose task found: its message, or its output for ``failed_when``."""
    if result.message != FAILED_WHEN:
        return result.message
    output = str(result.data.get("stdout") or result.data.get("stderr") or "").strip()
    return output.splitlines()[-1][:200] if output else result.message


class _PlayWalk:
    """The phases of one play on one host."""

    def __init__(self, walk: HostWalk, ctx: HostContext, scope: templating.Scope,
                 registered: dict[str, Any]) -> None:
        self.walk = walk
        self.ctx = ctx
        self.scope = scope
        self.registered = registered
        self.notified: set[str] = set()

    def current_scope(self) -> templating.Scope:
        return self.scope.child(dict(self.registered))

    def run(self, nodes: dict[str, list[Node]], every: list[Node]) -> None:
        options = self.walk.options
        evidence = self._diagnose(nodes["diagnose"], recheck=False)
        if evidence is None:
            self.walk.close_rest(every, Status.FAILED, "diagnosis could not complete")
            self.walk.verdict = Status.FAILED
            return
        if nodes["diagnose"] and not evidence:
            self.walk.close_rest(every, Status.HEALTHY, "fault not present; nothing to do")
            return
        if options.diagnose_only:
            self.walk.close_rest(every, Status.SKIPPED, "diagnose only")
            return
        if not options.check and not self._lock_and_recheck(nodes, every):
            return
        fix_failed = self._walk(nodes["tasks"], "tasks")
        self._handlers(nodes["handlers"])
        if options.check:
            self.walk.close_rest(nodes["verify"] + nodes["rollback"], Status.SKIPPED,
                                 "check mode: runs after a real fix")
            return
        verified = not fix_failed and self._walk(nodes["verify"], "verify") is False
        if verified:
            self.walk.close_rest(nodes["rollback"], Status.SKIPPED, "verification passed")
            return
        self._rollback(nodes, fix_failed)

    def _lock_and_recheck(self, nodes: dict[str, list[Node]], every: list[Node]) -> bool:
        try:
            self.walk.ensure_lock()
        except LockBusy as busy:
            self.walk.close_rest(every, Status.NOT_RUN, f"locked: {busy}")
            self.walk.verdict = Status.NOT_RUN
            return False
        except LockError as error:  # not another run: the host's own trouble
            self.walk.close_rest(every, error.status, str(error))
            self.walk.verdict = error.status
            return False
        if nodes["diagnose"]:
            evidence = self._diagnose(nodes["diagnose"], recheck=True)
            if evidence == []:
                self.walk.close_rest(every, Status.HEALTHY,
                                     "fault no longer present when re-checked; nothing changed")
                return False
        return True

    def _diagnose(self, nodes: list[Node], *, recheck: bool) -> list[str] | None:
        """Evidence of the fault (empty list: healthy), or None if diagnosis failed.

        The re-check before the first change records nothing: the first
        diagnosis already has each task's terminal record.
        """
        evidence: list[str] = []
        probe_ctx = replace(self.ctx, check=False)  # diagnose tasks are read-only probes
        for node in nodes:
            result = run_task(probe_ctx, node.id, node.task, self.current_scope(), phase="diagnose")
            if node.task.register:
                self.registered[node.task.register] = dict(result.data)
            found = result.status is Status.FAILED and not result.data.get("error") and (
                node.task.module in EVIDENCE_MODULES or node.task.failed_when is not None)
            if found:
                detail = _evidence(result)
                evidence.append(f"{node.task.label}: {detail}")
                result = replace(result, status=Status.OK, message=f"fault found: {detail}")
                self.walk.fault_found = True
            elif result.status.is_failure and not node.task.ignore_errors:
                if not recheck:
                    self.walk.record(result)
                return None
            if not recheck:
                self.walk.record(result)
        return evidence

    def _walk(self, nodes: list[Node], phase: str) -> bool:
        """Run a section along the graph; True if any task failed."""
        failed_any = False
        for node in nodes:
            if self.walk.options.stop.is_set():
                self.walk.close_rest(nodes, Status.NOT_RUN, "run stopped before this task")
                return True
            blocked = [d for d in self.walk.graph.dependencies(node.id) if d in self.walk.blocking]
            if blocked:
                result = TaskResult(self.walk.host, node.id, node.task.label, Status.SKIPPED,
                                    message=f"dependency {blocked[0]} did not succeed", phase=phase)
                self.walk.blocking.add(node.id)
                self.walk.record(result)
                failed_any = True
                continue
            result = self._one(node, phase)
            failed_any |= result.status.is_failure
            if result.status is Status.INDETERMINATE:
                rest = nodes[nodes.index(node) + 1:]
                self.walk.close_rest(rest, Status.NOT_RUN, "connection lost earlier on this host")
                return True
        return failed_any

    def _one(self, node: Node, phase: str) -> TaskResult:
        task = node.task
        if not self._selected(task.tags + self.ctx.play.tags):
            result = TaskResult(self.walk.host, node.id, task.label, Status.SKIPPED,
                                message="not selected by tags", phase=phase)
        elif task.is_block:
            from runner.blocks import run_block

            result = run_block(self.ctx, node.id, task, self.current_scope(), phase,
                               self.registered)
        else:
            result = run_task(self.ctx, node.id, task, self.current_scope(), phase=phase)
            if task.ignore_errors:
                result = ignore_failure(result)
            remember(task, result, self.registered)
        if result.changed and not self.ctx.check or (self.ctx.check and result.predicted == "change"):
            self.notified.update(task.notify)
        if result.status.is_failure or result.status is Status.NOT_RUN:
            self.walk.blocking.add(node.id)
        return self.walk.record(result)

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

    def _handlers(self, nodes: list[Node]) -> None:
        for node in nodes:
            topics = {node.task.name, *node.task.listen}
            if topics & self.notified:
                self._one(node, "handlers")
            else:
                self.walk.record(TaskResult(self.walk.host, node.id, node.task.label,
                                            Status.SKIPPED, message="not notified",
                                            phase="handlers"))

    def _rollback(self, nodes: dict[str, list[Node]], fix_failed: bool) -> None:
        reason = "a fix task failed" if fix_failed else "verification failed"
        self.walk.close_rest(nodes["verify"], Status.SKIPPED, f"not verified: {reason}")
        if not nodes["rollback"]:
            self.walk.verdict = Status.FAILED
            return
        rollback_failed = self._walk(nodes["rollback"], "rollback")
        self.walk.verdict = Status.FAILED if rollback_failed else Status.ROLLED_BACK
