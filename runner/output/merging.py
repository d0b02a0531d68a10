"""A run's JSON document read back into a ``Run``: for ``remedy merge`` of sliced runs.

Output stage, the reverse of ``runs.run_document``: a document already
redacted is read into the same data types, so that the recap, the JSON
document, the JUnit report and the exit code of several sliced runs come from
the functions that render one run.

Raises ``KeyError``, ``TypeError`` or ``ValueError`` on a document that is not
a run's; the command line turns them into input errors naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from runner.results import CommandResult, Diff, Fault, FaultState, HostResult, Run, Status, TaskResult


def run_from_document(document: Mapping[str, Any]) -> Run:
    """The ``Run`` a ``run_document`` was made from (less what it leaves out: task data)."""
    return Run(run_id=str(document["run_id"]), hosts=tuple(_host(h) for h in document["hosts"]),
               check=bool(document["check"]), interrupted=bool(document.get("interrupted")),
               aborted=str(document.get("aborted") or ""), audit_error=str(document.get("audit_error") or ""),
               over_budget=tuple(document.get("over_budget") or ()),
               incomplete=str(document.get("incomplete") or ""))


def merged_run(run_id: str, runs: Sequence[Run], missing: str = "") -> Run:
    """One run of the hosts of ``runs``, in their order, ending as the worst of them ended.

    ``missing`` says which runs are not there (slices): it makes the run incomplete.
    """
    def joined(values: Sequence[str]) -> str:
        return "; ".join(dict.fromkeys(v for v in values if v))

    return Run(run_id=run_id, hosts=tuple(h for run in runs for h in run.hosts),
               check=any(run.check for run in runs), interrupted=any(run.interrupted for run in runs),
               aborted=joined([run.aborted for run in runs]),
               audit_error=joined([run.audit_error for run in runs]),
               over_budget=tuple(h for run in runs for h in run.over_budget),
               incomplete=joined([*(run.incomplete for run in runs), missing]))


def _host(data: Mapping[str, Any]) -> HostResult:
    name = str(data["host"])
    faults = tuple(Fault(str(f["playbook"]), FaultState(f["state"]), tuple(f.get("evidence") or ()),
                         str(f.get("detail") or ""), str(f.get("blocked_by") or ""))
                   for f in data.get("faults") or ())
    return HostResult(name, tuple(_task(name, t) for t in data["tasks"]), Status(data["status"]),
                      faults=faults, health=dict(data.get("health") or {}),
                      evidence=dict(data.get("evidence") or {}))


def _task(host: str, data: Mapping[str, Any]) -> TaskResult:
    return TaskResult(
        host, str(data["task"]), str(data["name"]), Status(data["status"]),
        message=str(data.get("message", "")),
        changed=bool(data.get("changed")), predicted=str(data.get("predicted") or ""),
        diffs=tuple(Diff(str(d["path"]), str(d["before"]), str(d["after"])) for d in data.get("diffs") or ()),
        commands=tuple(CommandResult(str(c["command"]), c.get("rc"), str(c.get("stdout", "")),
                                     str(c.get("stderr", "")), truncated=bool(c.get("truncated")))
                       for c in data.get("commands") or ()),
        duration=float(data.get("duration") or 0.0), phase=str(data.get("phase") or "tasks"),
        no_log=bool(data.get("no_log")))
