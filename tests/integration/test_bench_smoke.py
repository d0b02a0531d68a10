"""A 2-host smoke of the benchmark harness (remedy, the paramiko floor, a --forks sweep), so it cannot rot.

Runs ``benchmarks/harness.py`` end to end on two real sshd hosts: fleet,
broken state, measurement wrapper, verification of every host, summary. No
ansible-core or pyinfra install; no timing assertions (benchmarks are not
timed tests).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from tests.support.prerequisites import require_sshd

ROOT = Path(__file__).resolve().parents[2]


def test_the_harness_fixes_two_hosts_with_remedy_and_the_floor_and_reports_them(tmp_path: Path) -> None:
    require_sshd()
    raw = tmp_path / "runs.json"
    results = tmp_path / "RESULTS.md"
    results.write_text("# notes kept\n\n<!-- harness:begin -->\nold\n<!-- harness:end -->\n\ntail kept\n")
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "harness.py"), "--sizes", "2", "--check-size", "2",
         "--no-scale", "--tools", "remedy,floor", "--reps", "1", "--json", str(raw),
         "--forks-sweep", "1,2", "--forks-hosts", "2", "--scale-reps", "1",
         "--write-results", str(results)],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads(raw.read_text())
    assert {(r["tool"], r["check"]) for r in runs} == {("remedy", False), ("floor", False), ("remedy", True),
                                                       ("remedy-forks-1", False), ("remedy-forks-2", False)}
    assert all(r["ok"] and r["hosts"] == 2 and r["wall"] > 0 for r in runs), runs
    remedy = next(r for r in runs if r["tool"] == "remedy" and not r["check"])
    assert remedy["largest_rss"] > 10 * 2**20 and remedy["peak_fds"] > 0
    # CPU on both sides: the tool's tree (a Python start-up alone costs tens of ms) and the
    # hosts' (two logins, a shell and the workload's commands), counted by a control group
    # where one can be made, and said to be unmeasured where not
    assert all(r["cpu"] > 0.02 for r in runs), runs
    if "not measured" in done.stderr:
        assert all(math.isnan(r["host_cpu"]) for r in runs), runs
    else:
        assert all(r["host_cpu"] > 0.01 for r in runs), runs
    text = results.read_text()
    assert text.startswith("# notes kept") and text.rstrip().endswith("tail kept")
    assert "old" not in text and "### 2 hosts, apply" in text and "| floor |" in text
    assert "### remedy at 2 hosts by --forks" in text and "| 2 | " in text


def test_the_collect_benchmark_collects_two_hosts_three_ways_and_reports_them(tmp_path: Path) -> None:
    require_sshd()
    results = tmp_path / "RESULTS.md"
    results.write_text("# notes kept\n")
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "collect.py"), "--hosts", "2", "--reps", "1",
         "--write-results", str(results)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    text = results.read_text()
    assert text.startswith("# notes kept") and "### remedy collect, 2 hosts" in text
    for variant in ("parallel (--forks 20)", "wide (--forks 2)", "serial (--forks 1)"):
        assert f"| {variant} |" in text and "| 1 of 1 |" in text, text


def test_the_harness_spreads_hosts_over_fewer_listeners_and_writes_its_own_section(tmp_path: Path) -> None:
    """``--listeners 1``: three inventory hosts on one sshd, each fixed in its own root;
    ``--section scale`` replaces only the ``harness:scale`` part of the results file."""
    require_sshd()
    raw = tmp_path / "runs.json"
    results = tmp_path / "RESULTS.md"
    results.write_text("<!-- harness:begin -->\nmatrix kept\n<!-- harness:end -->\n\n"
                       "<!-- harness:scale:begin -->\nold\n<!-- harness:scale:end -->\n")
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "harness.py"), "--sizes", "1", "--check-size", "0",
         "--scale", "3", "--listeners", "1", "--tools", "remedy", "--reps", "1", "--scale-reps", "1",
         "--section", "scale", "--json", str(raw), "--write-results", str(results)],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 sshd up" in done.stderr, done.stderr[-2000:]
    runs = json.loads(raw.read_text())
    assert sorted((r["tool"], r["hosts"], r["ok"]) for r in runs) == [("remedy", 1, True),
                                                                       ("remedy", 3, True)]
    text = results.read_text()
    assert "matrix kept" in text and "old" not in text
    assert "Hosts share 1 sshd listeners" in text and "### remedy at scale" in text
    assert "| 3 | " in text and text.rstrip().endswith("<!-- harness:scale:end -->")
