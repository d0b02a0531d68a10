"""Golden case files: ``args + probe output -> steps + diffs``, loaded and replayed.

A case is ``cases/<module>/<case>.yaml``::

    args: {...}
    facts_output: {fact_name: {rc: 0, stdout: "...", stderr: ""}}
    expect: {changed, predictable, failed, steps: [...], diffs: [...], summary?, data?}

Steps are written as ``{command: ...}``, ``{upload: dest, content: ..., mode: ...}``
or ``{fetch: src, dest: ...}``; only fields that differ from their defaults appear.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runner.modules import MODULES
from runner.modules.base import Change, Command, Fetch, Module, Step, Upload
from runner.results import CommandResult, Diff

CASES_DIR = Path(__file__).parent / "cases"


@dataclass(frozen=True)
class Case:
    path: Path
    module: Module
    args: Mapping[str, Any]
    facts_output: Mapping[str, Mapping[str, Any]]
    expect: Mapping[str, Any]

    @property
    def id(self) -> str:
        return f"{self.path.parent.name}/{self.path.stem}"


def all_case_paths() -> list[Path]:
    return sorted(CASES_DIR.glob("*/*.yaml"))


def load_case(path: Path) -> Case:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    module = MODULES[path.parent.name]()
    return Case(path, module, raw.get("args") or {}, raw.get("facts_output") or {}, raw["expect"])


def result_of(command: str, output: Mapping[str, Any]) -> CommandResult:
    return CommandResult(command, output.get("rc", 0), output.get("stdout", ""), output.get("stderr", ""))


def plan_case(case: Case) -> Change:
    """Parse the case's probe outputs and plan, as the executor would."""
    probes = case.module.facts(case.args)
    facts = {
        name: probe.parse(result_of(probe.command, case.facts_output[name])) for name, probe in probes.items()
    }
    return case.module.plan(case.args, facts)


def step_dict(step: Step) -> dict[str, Any]:
    if isinstance(step, Command):
        out: dict[str, Any] = {"command": step.command}
        if step.stdin is not None:
            out["stdin"] = step.stdin.decode("utf-8")
        if step.ok_rc != (0,):
            out["ok_rc"] = list(step.ok_rc)
        return out
    if isinstance(step, Upload):
        out = {"upload": step.dest, "content": step.content.decode("utf-8", "surrogateescape")}
        for name in ("mode", "owner", "group", "validate"):
            if getattr(step, name) is not None:
                out[name] = getattr(step, name)
        if step.backup:
            out["backup"] = True
        return out
    assert isinstance(step, Fetch)
    return {"fetch": step.src, "dest": step.dest, "flat": step.flat}


def diff_dict(diff: Diff) -> dict[str, str]:
    return {"path": diff.path, "before": diff.before, "after": diff.after}


def observed(change: Change) -> dict[str, Any]:
    """The parts of a Change a case file records."""
    return {
        "changed": change.changed,
        "predictable": change.predictable,
        "failed": change.failed,
        "steps": [step_dict(s) for s in change.steps],
        "diffs": [diff_dict(d) for d in change.diffs],
        "summary": change.summary,
        "data": dict(change.data),
    }
