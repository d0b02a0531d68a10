"""What the person on call reads on the lab, at COLUMNS=100: the plan with its diff and summary, one line per
root cause."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from runner.output.tables import cell_width
from tests.unit.test_cli_output import section

if TYPE_CHECKING:
    from tests.e2e.conftest import LabHandle


def remedy(lab: LabHandle, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "runner", *args, "-i", str(lab.dir / "inventory.ini"),
            "--audit-log", str(lab.dir / "oncall-audit.jsonl")]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "COLUMNS": "100"})


def test_a_port_move_is_planned_on_stdout_with_its_diff_and_a_summary_within_100_columns(
        lab: LabHandle, broken: Callable[[str, str], None]) -> None:
    broken("host02", "port_conflict_foreign")
    port = lab.host("host02")["service_port"]
    done = remedy(lab, "plan", "port_conflict")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    table = out.split("\n\n")[0]
    assert re.search(r"^host02 +move the service to the fallback port +will change +line replaced in "
                     r"…/etc/coze/config\.yaml$", table, re.MULTILINE), table
    assert f"    -port: {port}\n" in out and re.search(r"^    \+port: \d+$", out, re.MULTILINE), out
    assert f"-port: {port}" not in done.stderr
    diff = [line for line in out.splitlines() if line.startswith(("     ", "    -", "    +"))]
    assert all(cell_width(line) <= 100 for line in out.splitlines() if line not in diff), out
    assert out.rstrip("\n").splitlines()[-1] == "Plan: 1 host will change (2 changes), 2 healthy, 0 unknown"


def test_a_missing_config_is_one_failure_with_its_hint_not_one_per_task(lab: LabHandle) -> None:
    config = lab.root("host01") / "etc" / "coze" / "config.yaml"
    aside = config.with_name("config.yaml.aside")
    config.rename(aside)
    try:
        done = remedy(lab, "run", "port_conflict", "-l", "host01")
    finally:
        aside.rename(config)
    assert done.returncode == 2, done.stderr
    failed = [line for line in done.stderr.splitlines() if line.startswith("[host01] FAILED")]
    assert len(failed) == 1 and failed[0].startswith("[host01] FAILED: read the port from the config file - "
                                                     "command exited 1: grep:"), failed
    failures = section(done.stdout, "Failures (one root cause per host):")
    assert failures.startswith(f"Failures (one root cause per host): host01: FAILED at 'read the port "
                               f"from the config file': command exited 1: grep: {config}: No such file or "
                               "directory")
    inventory = lab.dir / "inventory.ini"
    assert failures.endswith("fix: see the failing task's commands and output, fix the cause, then run "
                             f"again: remedy run port_conflict -i {inventory} -l host01 -v another fault may "
                             "be the cause: every bundled playbook's diagnosis of the host says which: "
                             f"remedy diagnose -i {inventory} -l host01"), failures
    assert "diagnosis could not complete" not in done.stderr
