"""Saved plans (``remedy plan -o``): reading one back, and comparing a run or a fresh plan with it.

Plan stage. A saved plan is the ``--format json`` document of a check run
plus the ``inputs`` it was made from; ``apply`` refuses a plan whose per-task
predictions drifted (``plan_drift``) and, after the run, ``compare_with_plan``
says per host and task whether the run changed exactly what was planned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import InputError, Location
from runner.results import FaultState, HostResult, Run, Status


def load_plan(path: str) -> dict[str, Any]:
    """The plan saved at ``path`` by ``remedy plan -o``.

    Raises:
        InputError: the file cannot be read, is not JSON, or is not a saved plan
            (the JSON output of ``run --check --format json`` is a run, not a plan).
    """
    fix = "create one with 'remedy plan PLAYBOOK... -i INVENTORY -o plan.json'"
    try:
        saved: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError.at(Location(path), f"cannot read the plan: {error.strerror}", fix) from None
    except ValueError as error:
        raise InputError.at(Location(path), f"not a saved remedy plan: not JSON ({error})", fix) from None
    if not isinstance(saved, dict) or not isinstance(saved.get("hosts"), list) or "inputs" not in saved:
        what = "the JSON output of a run (--format json), which names no inputs" \
            if isinstance(saved, dict) and "hosts" in saved else "no 'hosts' and 'inputs' in it"
        raise InputError.at(Location(path), f"not a saved remedy plan: {what}", fix)
    return saved


def compare_with_plan(saved: dict[str, Any], run: Run) -> list[str]:
    """Per host x task: did the real run change exactly what the saved plan predicted?"""
    planned = {(h["host"], t["task"]): t.get("predicted") for h in saved["hosts"] for t in h["tasks"]
               if t.get("phase") in ("tasks", "handlers")}
    lines = []
    for result in run.all_results():
        key = (result.host, result.task)
        if key not in planned or result.phase not in ("tasks", "handlers"):
            continue
        expected = planned[key]
        if expected == "unknown":
            continue
        if (expected == "change") != result.changed:
            lines.append(f"{result.host} {result.task}: planned {expected or 'nothing'}, "
                         f"{'changed' if result.changed else 'changed nothing'} ({result.status})")
    return lines


def plan_drift(saved: dict[str, Any], fresh: Run) -> list[str]:
    """One short paragraph per host on which a fresh check no longer matches the saved plan.

    ``host02 no longer has the fault: 2 planned changes are moot; make a new plan``:
    a fault gone or new is named as such; otherwise the first task whose
    outcome or prediction differs, with how many do.
    """
    planned = {h["host"]: h for h in saved["hosts"]}
    now = {h.host: h for h in fresh.hosts}
    order = [*planned, *(name for name in now if name not in planned)]
    return [text for name in order if (text := _host_drift(name, planned.get(name), now.get(name)))]


@dataclass(frozen=True)
class _Step:
    """One task of a plan: what drift compares (``status``, ``predicted``) and how to name it."""

    name: str
    phase: str
    status: str
    predicted: str | None

    @property
    def runs(self) -> bool:
        return self.phase in ("tasks", "handlers") and self.predicted in ("change", "unknown")


def _host_drift(name: str, planned: dict[str, Any] | None, now: HostResult | None) -> str:
    before = {t["task"]: _Step(t["name"], t["phase"], t["status"], t.get("predicted"))
              for t in (planned or {}).get("tasks", [])}
    after = {r.task: _Step(r.name, r.phase, str(r.status), r.predicted or None)
             for r in (now.results if now else ())}
    differ = [task for task in (*before, *(t for t in after if t not in before))
              if _key(before.get(task)) != _key(after.get(task))]
    if not differ:
        return ""
    if planned is None or now is None:
        return f"{name} {'was not in the plan' if planned is None else 'is not in this run'}; make a new plan"
    if now.status.is_failure and now.status is not Status.BLOCKED:
        return f"{name} could not be checked again ({now.status}); make a new plan"
    clauses = _fault_clauses(planned, now, before, after)
    if not clauses:
        first, count = differ[0], len(differ)
        clauses.append(f"has {count} task{'s' * (count > 1)} no longer as planned: "
                       f"'{(before.get(first) or after[first]).name}' planned {_outcome(before.get(first))}, "
                       f"now {_outcome(after.get(first))}")
    return f"{name} {' and '.join(clauses)}; make a new plan"


def _fault_clauses(planned: dict[str, Any], now: HostResult,
                   before: dict[str, _Step], after: dict[str, _Step]) -> list[str]:
    """``no longer has the fault: 2 planned changes are moot``, ``has a fault the plan did not find``."""
    was = [f["playbook"] for f in planned.get("faults", []) if f["state"] != str(FaultState.HEALTHY)]
    found = [f.playbook for f in now.faults if f.state is not FaultState.HEALTHY]
    clauses = []
    if gone := [p for p in was if p not in found]:
        count = _running(before, gone)
        what = "the fault" if len(was) == 1 else f"the fault{'s' * (len(gone) > 1)} {', '.join(gone)}"
        clauses.append(f"no longer has {what}: {count} planned change{'s are' if count != 1 else ' is'} moot")
    if new := [p for p in found if p not in was]:
        count = _running(after, new)
        clauses.append(f"has a fault the plan did not find ({', '.join(new)}): "
                       f"{count} change{'s were' if count != 1 else ' was'} not planned")
    return clauses


def _key(step: _Step | None) -> tuple[str, str | None] | None:
    return (step.status, step.predicted) if step else None


def _running(steps: dict[str, _Step], playbooks: list[str]) -> int:
    """How many fix tasks of these playbooks would change something (or run, effect unknown)."""
    return sum(1 for task, step in steps.items() if step.runs and task.split(":", 1)[0] in playbooks)


def _outcome(step: _Step | None) -> str:
    if step is None:
        return "no such task"
    return {"change": "a change", "no_change": "no change", "unknown": "a run of unknown effect"}.get(
        step.predicted or "", step.status)
