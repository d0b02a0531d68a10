"""Collect the guide's diagnosis bundle of many hosts: in parallel, one connection each.

Run stage, called by the ``collect`` command. Hosts run on a bounded thread
pool (``forks``); each gets one connection and one ``capture``, stored in
``directory/<host>/`` as soon as it is done. No exception crosses this
module: a host that cannot be reached, or whose capture fails, is a
``Collected`` record that says why. A signal (``stop``) interrupts every
open connection; hosts not started by then are ``not_run``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from runner.connection import Connection, open_connection
from runner.errors import UnreachableError
from runner.plan.hosts import HostPlan
from runner.redaction import Redactor
from runner.results import Status
from runner.run.capture import CAPTURE_TIMEOUT, Evidence, capture, write_evidence
from runner.run.evidence import EvidenceSpec
from runner.run.executor import Connect, LiveConnections


@dataclass(frozen=True)
class Collected:
    """What became of one host: ``ok`` (its files are in ``directory``), ``failed``,
    ``unreachable`` or ``not_run``, and why."""

    host: str
    status: Status
    message: str
    spec: EvidenceSpec
    directory: Path | None = None
    problems: tuple[str, ...] = ()  # files that could not be captured, and why


@dataclass(frozen=True)
class CollectOptions:
    """How to collect: hosts in parallel, the run's secrets, each capture's deadline."""

    forks: int = 20
    redactor: Redactor = Redactor()
    timeout: float = CAPTURE_TIMEOUT


Report = Callable[[Collected], None]


def collect(hosts: Sequence[HostPlan], specs: Mapping[str, EvidenceSpec], directory: Path,
            options: CollectOptions, *, report: Report | None = None, stop: threading.Event | None = None,
            connect: Connect | None = None) -> list[Collected]:
    """Capture every host's bundle into ``directory/<host>/``; one ``Collected`` per host, in order.

    ``report`` hears of each host as it ends (from the host's thread).
    """
    stop = stop or threading.Event()
    halt = threading.Event()
    live = LiveConnections(stop, halt)
    opened = live.wrap(connect or open_connection)

    def one(host: HostPlan) -> Collected:
        done = _collect_host(host, specs[host.name], directory, options, opened, halt)
        if report is not None:
            report(done)
        return done

    with ThreadPoolExecutor(max_workers=max(1, min(options.forks, len(hosts))),
                            thread_name_prefix="remedy-collect") as pool:
        futures = [pool.submit(one, host) for host in hosts]
        return [live.await_result(future) for future in futures]


def _collect_host(host: HostPlan, spec: EvidenceSpec, directory: Path, options: CollectOptions,
                  connect: Connect, halt: threading.Event) -> Collected:
    """Connect, capture, store, close; every failure becomes the record. Never raises."""
    if halt.is_set():
        return Collected(host.name, Status.NOT_RUN, "not run: interrupted", spec)
    conn: Connection | None = None
    try:
        conn = connect(host.params)
        conn.connect()
        evidence = capture(conn, host.name, spec, options.redactor, timeout=options.timeout)
        write_evidence(evidence, directory / host.name)
    except UnreachableError as error:
        return Collected(host.name, Status.UNREACHABLE,
                         options.redactor.text(f"{error.reason}: {error.detail}"), spec)
    except OSError as error:
        return Collected(host.name, Status.FAILED, f"cannot store its files: {error}", spec)
    except Exception as error:  # noqa: BLE001 - no exception crosses the collection
        return Collected(host.name, Status.FAILED, options.redactor.text(f"internal error: {error!r}"), spec)
    finally:
        if conn is not None:
            with contextlib.suppress(Exception):  # closing must not mask the record
                conn.close()
    return _record(evidence, directory / host.name)


def _record(evidence: Evidence, directory: Path) -> Collected:
    if evidence.error:
        return Collected(evidence.host, Status.FAILED, evidence.error, evidence.spec, directory,
                         evidence.problems)
    missing = f", {len(evidence.problems)} missing" if evidence.problems else ""
    return Collected(evidence.host, Status.OK, f"{len(evidence.files)} files{missing}", evidence.spec,
                     directory, evidence.problems)
