"""Saved plans (``remedy plan -o``): reading one back, and comparing a run or a fresh plan with it.

Plan stage. A saved plan is the ``--format json`` document of a check run
plus the ``inputs`` it was made from; ``apply`` refuses a plan whose per-task
predictions drifted (``plan_drift``) and, after the run, ``compare_with_plan``
says per host and task whether the run changed exactly what was planned.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runner.errors import InputError, Location
from runner.results import Run


def load_plan(path: str) -> dict[str, Any]:
    try:
        saved: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
        saved["hosts"], saved["inputs"]  # noqa: B018 - shape check
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError.at(Location(path), f"not a saved remedy plan: {error}",
                            "create one with 'remedy plan ... -o plan.json'") from None
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
    before = {(h["host"], t["task"]): (t["status"], t["predicted"])
              for h in saved["hosts"] for t in h["tasks"]}
    after = {(r.host, r.task): (str(r.status), r.predicted or None) for r in fresh.all_results()}
    drift = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            drift.append(f"plan drift on {key[0]} {key[1]}: planned {before.get(key)}, "
                         f"now {after.get(key)}; make and review a new plan")
    return drift
