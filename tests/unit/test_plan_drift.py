"""``plan_drift``: one short paragraph per host whose fresh check no longer matches its saved plan.

The saved side is the plan's JSON document, the fresh side a check ``Run``:
faults gone and faults new are named by playbook when a host had several,
a host that cannot be checked again says why, an unchanged host says nothing.
"""

from __future__ import annotations

from typing import Any

from runner.plan.saved import plan_drift
from runner.results import Fault, FaultState, HostResult, Run, Status, TaskResult

#: Two playbooks with a diagnosis and two fix tasks each.
TASKS = [(book, phase, index) for book in ("port_conflict", "cache_flush")
         for phase, index in (("diagnose", 1), ("tasks", 1), ("tasks", 2))]


def fresh_host(name: str, found: set[str], status: Status = Status.OK) -> HostResult:
    """A host as a check run sees it: the playbooks in ``found`` would change two files each."""
    results = tuple(TaskResult(name, f"{book}:{phase}[{index}]", f"{book} {phase} {index}",
                               _status(book in found, phase), phase=phase,
                               predicted=_predicted(book in found, phase) or "")
                    for book, phase, index in TASKS)
    faults = tuple(Fault(book, FaultState.FOUND if book in found else FaultState.HEALTHY)
                   for book in ("port_conflict", "cache_flush"))
    return HostResult(name, results, status, faults)


def _status(found: bool, phase: str) -> Status:
    if phase == "diagnose":
        return Status.OK if found else Status.CHANGED
    return Status.CHANGED if found else Status.HEALTHY


def _predicted(found: bool, phase: str) -> str | None:
    return "unknown" if phase == "diagnose" else ("change" if found else None)


def saved_host(host: HostResult) -> dict[str, Any]:
    """The host as ``remedy plan -o`` saved it (the fields drift reads)."""
    return {"host": host.host, "status": str(host.status),
            "tasks": [{"task": r.task, "name": r.name, "phase": r.phase, "status": str(r.status),
                       "predicted": r.predicted or None} for r in host.results],
            "faults": [{"playbook": f.playbook, "state": str(f.state)} for f in host.faults]}


def drift(planned: list[HostResult], now: list[HostResult]) -> list[str]:
    return plan_drift({"hosts": [saved_host(h) for h in planned]}, Run("fresh", tuple(now), check=True))


def test_a_host_as_planned_says_nothing() -> None:
    hosts = [fresh_host("host01", {"port_conflict"}), fresh_host("host02", set())]
    assert drift(hosts, hosts) == []


def test_faults_gone_and_new_are_named_when_the_host_had_several() -> None:
    both = {"port_conflict", "cache_flush"}
    planned = [fresh_host("host01", both), fresh_host("host02", both), fresh_host("host03", {"cache_flush"})]
    now = [fresh_host("host01", {"port_conflict"}), fresh_host("host02", set()),
           fresh_host("host03", {"port_conflict"})]
    assert drift(planned, now) == [
        "host01 no longer has the fault cache_flush: 2 planned changes are moot; make a new plan",
        "host02 no longer has the faults port_conflict, cache_flush: 4 planned changes are moot; "
        "make a new plan",
        "host03 no longer has the fault: 2 planned changes are moot and has a fault the plan did not find "
        "(port_conflict): 2 changes were not planned; make a new plan",
    ]


def test_a_host_that_cannot_be_checked_again_says_so_in_one_line() -> None:
    planned = fresh_host("host02", {"port_conflict"})
    now = HostResult("host02", (TaskResult("host02", "port_conflict:diagnose[1]", "probe", Status.UNREACHABLE,
                                           phase="diagnose"),), Status.UNREACHABLE)
    assert drift([planned], [now]) == ["host02 could not be checked again (unreachable); make a new plan"]
