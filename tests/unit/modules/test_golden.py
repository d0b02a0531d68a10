"""Every golden case: the probe names match, and the plan is exactly the recorded one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from runner.modules.base import Command
from tests.unit.modules.casefile import all_case_paths, load_case, observed, plan_case

DEFAULTS = {"predictable": True, "failed": "", "steps": [], "diffs": []}


@pytest.mark.parametrize("path", all_case_paths(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden_case(path: Path) -> None:
    case = load_case(path)
    assert set(case.module.facts(case.args)) == set(case.facts_output), "probe names"
    got = observed(plan_case(case))
    want = {**DEFAULTS, **case.expect}
    for key in ("changed", "predictable", "failed", "steps", "diffs"):
        assert got[key] == want[key], key
    for key in ("summary", "data"):
        if key in want:
            assert got[key] == want[key], key


def _sh_syntax_error(text: str) -> str:
    check = subprocess.run(["sh", "-n", "-c", text], capture_output=True, text=True)
    return check.stderr if check.returncode else ""


@pytest.mark.parametrize("path", all_case_paths(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_probes_and_commands_are_valid_sh(path: Path) -> None:
    """Each probe and each command step parses with ``sh -n`` (syntax only, nothing runs)."""
    case = load_case(path)
    texts = [probe.command for probe in case.module.facts(case.args).values()]
    texts += [s.command for s in plan_case(case).steps if isinstance(s, Command)]
    for text in texts:
        assert not _sh_syntax_error(text), text
