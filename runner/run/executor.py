"""Run a validated set of playbooks across the inventory's hosts.

Run stage. Hosts run in parallel on a bounded thread pool (``forks``), in
``serial`` batches; a batch whose failures exceed ``max_fail_percentage``
stops the run, and every task not yet run gets ``not_run``; so does an audit
log that can no longer be written (``Listener.audit_error``): tasks already
running finish, none starts. Hosts past the blast-radius budget
(``ChangeBudget``) are diagnosed, not changed: their fix is ``not_run``.
Each host gets one connection for the whole run,
is walked by ``HostWalk``, and ends with exactly one record per task, as the
run's ``Redactor`` shows it. No exception crosses this module: a host whose
connection fails is ``unreachable`` once, on its first task, and every other
task of it is skipped because of that.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from runner.connection import Connection, ConnectionParams
from runner.errors import UnreachableError
from runner.events import Halting, Listener
from runner.load.graph import Node
from runner.load.inputs import Inputs
from runner.plan.hosts import HostPlan, RunOptions, batches, change_budget, plan_hosts
from runner.redaction import Redactor
from runner.results import AUDIT_STOP, CAUSE, HostResult, Run, Status, TaskResult
from runner.run.budget import ChangeBudget
from runner.run.hostlock import ANSWER_TIMEOUT
from runner.run.hostwalk import HostWalk
from runner.run.playwalk import WalkOptions

Connect = Callable[[ConnectionParams], Connection]
Result = TypeVar("Result")


def execute(inputs: Inputs, options: RunOptions, listener: Listener, *,
            connect: Connect | None = None, stop: threading.Event | None = None,
            run_id: str | None = None, hosts: Sequence[HostPlan] | None = None,
            redactor: Redactor | None = None) -> Run:
    """Run every planned host (``hosts``, else ``plan_hosts``); returns the finished ``Run``.

    Never raises for host failures. ``redactor`` (which should hold the hosts'
    ``secrets``) masks every record before ``listener`` sees it.

    Raises:
        InputError: bad selection (before any host is contacted).
    """
    hosts = list(hosts) if hosts is not None else plan_hosts(inputs, options)
    run_id = run_id or uuid.uuid4().hex[:12]
    stop = stop or threading.Event()
    halt = threading.Event()  # no new task starts: set by stop (signals), a threshold, the audit
    listener = Halting(listener, halt)
    live = LiveConnections(stop, halt)
    connect = connect or _open_connection
    serial, max_fail = _run_policy(inputs, options)
    budget = ChangeBudget(change_budget([play for _, play in inputs.graph.plays], options, len(hosts)))
    listener.run_started(run_id, [h.name for h in hosts], check=options.check)
    by_name = {h.name: h for h in hosts}
    results: dict[str, HostResult] = {}
    aborted = ""
    walk_options = WalkOptions(
        check=options.check, diagnose_only=options.diagnose_only, tags=options.tags,
        skip_tags=options.skip_tags, lock_path=options.lock_path, lock_timeout=options.lock_timeout,
        lock_answer_timeout=options.lock_answer_timeout or ANSWER_TIMEOUT, run_id=run_id,
        become_password=options.connect.become_password, stop=halt,
        redactor=redactor or Redactor(), budget=budget,
        evidence_dir=Path(options.evidence_dir, run_id) if options.evidence_dir else None)
    workers = max(1, min(options.forks, len(hosts)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="remedy-host") as pool:
        for batch in batches([h.name for h in hosts], serial):
            if halt.is_set():
                break
            futures = {name: pool.submit(_run_host, by_name[name], inputs, walk_options,
                                         listener, live.wrap(connect)) for name in batch}
            failed = 0
            for name, future in futures.items():
                results[name] = live.await_result(future)
                failed += results[name].status.is_failure
                if max_fail is not None and failed * 100 / len(batch) > max_fail and not stop.is_set():
                    aborted = (f"max_fail_percentage {max_fail:g}% exceeded in a batch of "
                               f"{len(batch)} ({failed} failed)")
                    halt.set()
    interrupted = stop.is_set()
    audit_error = listener.audit_error()
    reason = AUDIT_STOP if audit_error else "interrupted" if interrupted else aborted
    for host in hosts:
        if host.name not in results:
            results[host.name] = _close_host(host, listener, Status.NOT_RUN, f"not run: {reason}")
            listener.host_finished(results[host.name])
    held = tuple(h.name for h in hosts if h.name in budget.held())
    run = Run(run_id=run_id, hosts=tuple(results[h.name] for h in hosts), check=options.check,
              interrupted=interrupted, aborted=aborted, audit_error=audit_error, over_budget=held,
              incomplete=f"{budget.reason}; not changed: {', '.join(held)}" if held else "")
    listener.run_finished(run)
    return run


class LiveConnections:
    """Open connections of the run; a signal (``stop``) interrupts every one of them.

    The thread that waits for the hosts' results watches ``stop`` while it
    waits (``await_result``), so no watcher thread has to be woken and joined
    at the end of a run.
    """

    def __init__(self, stop: threading.Event, halt: threading.Event) -> None:
        self._lock = threading.Lock()
        self._open: set[Connection] = set()
        self._stop = stop
        self._halt = halt
        self._interrupted = False

    def wrap(self, connect: Connect) -> Connect:
        def opened(params: ConnectionParams) -> Connection:
            conn = connect(params)
            with self._lock:
                self._open.add(conn)
            if self._stop.is_set():
                conn.interrupt()
            return conn
        return opened

    def await_result(self, future: Future[Result]) -> Result:
        """``future.result()``, interrupting every connection within 0.2 s of ``stop``."""
        while True:
            self.check_stop()
            try:
                return future.result(timeout=0.2)
            except FuturesTimeout:
                continue

    def check_stop(self) -> None:
        if not self._stop.is_set() or self._interrupted:
            return
        self._interrupted = True
        self._halt.set()
        with self._lock:
            conns = list(self._open)
        for conn in conns:
            try:
                conn.interrupt()
            except Exception:  # noqa: BLE001, S112 - best effort on the way out
                continue


def _run_policy(inputs: Inputs, options: RunOptions) -> tuple[tuple[int | str, ...], float | None]:
    """Batches and failure threshold: the options' (the command line's), else the first play's."""
    serial: tuple[int | str, ...] = ()
    max_fail: float | None = None
    for _, play in inputs.graph.plays:
        serial = serial or play.serial
        if max_fail is None:
            max_fail = play.max_fail_percentage
    if options.serial is not None:
        serial = options.serial
    if options.max_fail_percentage is not None:
        max_fail = options.max_fail_percentage
    return serial, max_fail


def _open_connection(params: ConnectionParams) -> Connection:
    from runner.connection import open_connection

    return open_connection(params)


def _record(host: str, node: Node, status: Status, message: str) -> TaskResult:
    return TaskResult(host, node.id, node.task.label, status, message=message, phase=node.section)


def _close_host(host: HostPlan, listener: Listener, status: Status, message: str,
                previous: tuple[TaskResult, ...] = (), *, because: str = "") -> HostResult:
    """Give every task of ``host`` not in ``previous`` its terminal record: one per task.

    With ``because``, the failure is recorded once (on the first of them) and
    every other task is skipped because of it.
    """
    done = {r.task for r in previous}
    records = [_record(host.name, n, status, message) for n in host.nodes if n.id not in done]
    if because and records:
        first = records[0]
        records[1:] = [replace(r, status=Status.SKIPPED, message=f"skipped because {because}",
                               data={CAUSE: first.task}) for r in records[1:]]
    for record in records:
        listener.task_finished(record)
    return HostResult(host.name, previous + tuple(records), status)


def _run_host(host: HostPlan, inputs: Inputs, options: WalkOptions, listener: Listener,
              connect: Connect) -> HostResult:
    """Connect, walk, close; every failure becomes records. Never raises."""
    listener.host_started(host.name)
    conn: Connection | None = None
    walk: HostWalk | None = None
    try:
        if options.stop.is_set():
            result = _close_host(host, listener, Status.NOT_RUN, "not run: run stopped")
        else:
            conn = connect(host.params)
            conn.connect()  # unreachable hosts (connect, auth, host key) are found here
            walk = HostWalk(host.name, conn, inputs.graph, options, listener)
            result = walk.run(list(host.plays))
    except UnreachableError as error:
        result = _close_host(host, listener, Status.UNREACHABLE,
                             options.redactor.text(f"{error.reason}: {error.detail}"),
                             because=f"the host is unreachable ({error.reason})")
    except Exception as error:  # noqa: BLE001 - no exception crosses the executor
        previous = tuple(walk.results) if walk is not None else ()
        result = _close_host(host, listener, Status.FAILED,
                             options.redactor.text(f"internal error: {error!r}"), previous,
                             because="of an internal error on the host")
    finally:
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001, S110 - closing must not mask the result
                pass
    listener.host_finished(result)
    return result


__all__ = ["execute"]
