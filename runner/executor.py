"""Run a validated set of playbooks across the inventory's hosts.

Stages layer. Hosts run in parallel on a bounded thread pool (``forks``), in
``serial`` batches; a batch whose failures exceed ``max_fail_percentage``
stops the run, and every task not yet run gets ``not_run``. Each host gets
one connection for the whole run, is walked by ``HostWalk``, and ends with
exactly one record per task. No exception crosses this module: a host whose
connection fails is ``unreachable`` on every task.
"""

from __future__ import annotations

import math
import os
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass, field
from typing import Any

from runner.connection import Connection, ConnectionParams
from runner.errors import InputError, InventoryError, Location, UnreachableError
from runner.events import Listener
from runner.graph import Node
from runner.hostlock import ANSWER_TIMEOUT
from runner.hostwalk import HostWalk, WalkOptions
from runner.inputs import Inputs
from runner.model import Play, Playbook
from runner.modules.base import flag
from runner.patterns import select_hosts
from runner.results import HostResult, Run, Status, TaskResult

Connect = Callable[[ConnectionParams], Connection]


@dataclass(frozen=True)
class ConnectOptions:
    """CLI-level overrides of how hosts are reached."""

    user: str | None = None
    key_file: str | None = None
    password: str | None = field(default=None, repr=False)
    become_password: str | None = field(default=None, repr=False)
    known_hosts: str | None = None
    accept_new_host_keys: bool = False
    ssh_config: str | None = None
    connect_timeout: float = 10.0


@dataclass(frozen=True)
class RunOptions:
    """How to run: check mode, parallelism, selection, locks."""

    check: bool = False
    diagnose_only: bool = False
    forks: int = 20
    limit: str | None = None
    tags: frozenset[str] = frozenset()
    skip_tags: frozenset[str] = frozenset()
    lock_timeout: float = 0.0
    lock_path: str = ""  # "" = per host: remedy_lock_path or /tmp/remedy-<host>.lock
    lock_answer_timeout: float = ANSWER_TIMEOUT  # for the lock command's first line
    connect: ConnectOptions = ConnectOptions()


@dataclass(frozen=True)
class HostPlan:
    """One host, the plays that apply to it, and its variables."""

    name: str
    params: ConnectionParams
    plays: tuple[tuple[Playbook, Play, Mapping[str, Any]], ...]
    nodes: tuple[Node, ...]


def plan_hosts(inputs: Inputs, options: RunOptions) -> list[HostPlan]:
    """Which plays run on which hosts, with merged variables; no host is contacted.

    Raises:
        InputError: a bad --limit or host pattern, or no host selected at all.
    """
    inventory = inputs.inventory
    if inventory is None:
        raise InputError.at(Location("<command line>"), "an inventory is required", "pass -i INVENTORY")
    limited = set(select_hosts(inventory, options.limit)) if options.limit else None
    per_host: dict[str, list[tuple[Playbook, Play, Mapping[str, Any]]]] = {}
    for book, play in inputs.graph.plays:
        for host in _play_hosts(inventory, play, book):
            if limited is not None and host not in limited:
                continue
            host_vars = {**play.vars, **inventory.host_vars(host), **inventory.magic_vars(host),
                         **inputs.extra_vars, "playbook_dir": str(_book_dir(book)),
                         "ansible_check_mode": options.check, "remedy_check_mode": options.check}
            per_host.setdefault(host, []).append((book, play, host_vars))
    if not per_host:
        raise InputError.at(Location("<command line>"), "no host matches the plays and --limit",
                            "check 'hosts:' in the playbook and the -l pattern")
    order = list(per_host)  # inventory order, then implicit hosts such as localhost
    return [HostPlan(h, connection_params(h, per_host[h][0][2], options.connect),
                     tuple(per_host[h]), tuple(_nodes_of(inputs, per_host[h]))) for h in order]


def _play_hosts(inventory: Any, play: Play, book: Playbook) -> list[str]:
    """Hosts of a play's pattern.

    Raises:
        InputError: a part of the pattern matches no host (a typo must not
            silently skip a play), naming the play's location.
    """
    try:
        return list(select_hosts(inventory, play.hosts))
    except InventoryError as error:
        raise InputError.at(play.location, f"hosts: {play.hosts!r} of play "
                            f"'{play.name or book.name}': {error.problems[0].message}",
                            error.problems[0].hint) from None


def _book_dir(book: Playbook) -> str:
    from pathlib import Path

    return str(Path(book.path).resolve().parent)


def _nodes_of(inputs: Inputs, plays: list[tuple[Playbook, Play, Mapping[str, Any]]]) -> list[Node]:
    chosen = {id(play) for _, play, _ in plays}
    return [inputs.graph.nodes[n] for n in inputs.graph.order
            if id(inputs.graph.nodes[n].play) in chosen]


def connection_params(host: str, host_vars: Mapping[str, Any], options: ConnectOptions) -> ConnectionParams:
    """Map Ansible connection variables and CLI overrides to ``ConnectionParams``."""
    kind = str(host_vars.get("ansible_connection", "ssh"))
    if kind not in ("ssh", "local", "paramiko", "smart"):
        raise InputError.at(Location(f"<inventory host {host}>"),
                            f"ansible_connection '{kind}' is not supported", "use ssh or local")
    port = host_vars.get("ansible_port", host_vars.get("ansible_ssh_port"))
    return ConnectionParams(
        name=host,
        address=str(host_vars.get("ansible_host", host)),
        kind="local" if kind == "local" else "ssh",
        port=int(port) if port is not None else None,
        user=options.user or _opt(host_vars.get("ansible_user", host_vars.get("ansible_ssh_user"))),
        key_file=_path(options.key_file or _opt(host_vars.get("ansible_ssh_private_key_file"))),
        password=options.password or _opt(host_vars.get("ansible_password")),
        become_password=options.become_password or _opt(host_vars.get("ansible_become_password")),
        ssh_config=options.ssh_config,
        known_hosts=options.known_hosts or _opt(host_vars.get("remedy_known_hosts")),
        accept_new_host_keys=options.accept_new_host_keys,
        connect_timeout=options.connect_timeout,
        persistent_shell=flag(host_vars.get("remedy_persistent_shell", True)),
    )


def _path(value: str | None) -> str | None:
    return None if value is None else os.path.expanduser(value)


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def batches(hosts: Sequence[str], serial: Sequence[int | str]) -> list[list[str]]:
    """Split hosts into serial batches (counts or percentages; the last size repeats)."""
    if not serial:
        return [list(hosts)] if hosts else []
    result: list[list[str]] = []
    index, step = 0, 0
    while index < len(hosts):
        spec = serial[min(step, len(serial) - 1)]
        if isinstance(spec, str):
            size = max(1, math.floor(len(hosts) * float(spec.rstrip("%")) / 100))
        else:
            size = spec
        result.append(list(hosts[index:index + size]))
        index += size
        step += 1
    return result


def execute(inputs: Inputs, options: RunOptions, listener: Listener, *,
            connect: Connect | None = None, stop: threading.Event | None = None,
            run_id: str | None = None, hosts: Sequence[HostPlan] | None = None) -> Run:
    """Run every planned host (``hosts``, else ``plan_hosts``); returns the finished ``Run``.

    Never raises for host failures.

    Raises:
        InputError: bad selection (before any host is contacted).
    """
    hosts = list(hosts) if hosts is not None else plan_hosts(inputs, options)
    run_id = run_id or uuid.uuid4().hex[:12]
    stop = stop or threading.Event()
    halt = threading.Event()  # no new task starts: set by stop (signals) or a threshold
    live = _LiveConnections(stop, halt)
    connect = connect or _open_connection
    serial, max_fail = _run_policy(inputs)
    listener.run_started(run_id, [h.name for h in hosts], check=options.check)
    by_name = {h.name: h for h in hosts}
    results: dict[str, HostResult] = {}
    aborted = ""
    walk_options = WalkOptions(
        check=options.check, diagnose_only=options.diagnose_only, tags=options.tags,
        skip_tags=options.skip_tags, lock_path=options.lock_path, lock_timeout=options.lock_timeout,
        lock_answer_timeout=options.lock_answer_timeout, run_id=run_id,
        become_password=options.connect.become_password, stop=halt)
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
    reason = "interrupted" if interrupted else aborted
    for host in hosts:
        if host.name not in results:
            results[host.name] = _close_host(host, listener, Status.NOT_RUN, f"not run: {reason}")
            listener.host_finished(results[host.name])
    run = Run(run_id=run_id, hosts=tuple(results[h.name] for h in hosts), check=options.check,
              interrupted=interrupted, aborted=aborted)
    listener.run_finished(run)
    return run


class _LiveConnections:
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

    def await_result(self, future: Future[HostResult]) -> HostResult:
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


def _run_policy(inputs: Inputs) -> tuple[tuple[int | str, ...], float | None]:
    serial: tuple[int | str, ...] = ()
    max_fail: float | None = None
    for _, play in inputs.graph.plays:
        serial = serial or play.serial
        if max_fail is None:
            max_fail = play.max_fail_percentage
    return serial, max_fail


def _open_connection(params: ConnectionParams) -> Connection:
    from runner.connection import open_connection

    return open_connection(params)


def _record(host: str, node: Node, status: Status, message: str) -> TaskResult:
    return TaskResult(host, node.id, node.task.label, status, message=message, phase=node.section)


def _close_host(host: HostPlan, listener: Listener, status: Status, message: str,
                previous: tuple[TaskResult, ...] = ()) -> HostResult:
    """Give every task of ``host`` not in ``previous`` its terminal record: one per task."""
    done = {r.task for r in previous}
    records = tuple(_record(host.name, n, status, message) for n in host.nodes if n.id not in done)
    for record in records:
        listener.task_finished(record)
    return HostResult(host.name, previous + records, status)


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
            walk = HostWalk(host.name, conn, inputs.graph, options, listener.task_finished)
            result = walk.run(list(host.plays))
    except UnreachableError as error:
        result = _close_host(host, listener, Status.UNREACHABLE, f"{error.reason}: {error.detail}")
    except Exception as error:  # noqa: BLE001 - no exception crosses the executor
        previous = tuple(walk.results) if walk is not None else ()
        result = _close_host(host, listener, Status.FAILED, f"internal error: {error!r}", previous)
    finally:
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001, S110 - closing must not mask the result
                pass
    listener.host_finished(result)
    return result


__all__ = ["ConnectOptions", "HostPlan", "RunOptions", "batches", "connection_params",
           "execute", "plan_hosts"]
