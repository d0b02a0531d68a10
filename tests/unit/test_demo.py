"""``remedy demo``, the README's first command: plan, fix, run again, and leave nothing behind."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest

from runner.cli.program import main


def test_the_demo_plans_fixes_finds_nothing_left_and_removes_its_sandbox(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["demo"]) == 0
    out, err = capsys.readouterr()
    sandbox = Path(re.search(r"== sandbox: (\S+)", err).group(1))  # type: ignore[union-attr]
    assert sandbox.parent == tmp_path and not sandbox.exists()
    assert not list(tmp_path.iterdir())  # no lock, audit log or file left beside it either
    planned, ran, again = (err.split("== 2. run")[0], err.split("== 2. run")[1].split("== 3.")[0],
                           err.split("== 3. run again")[1])
    assert "[localhost] will change: restore the config file mode" in planned
    assert "[localhost] changed: restore the config file mode" in ran
    assert "changed" not in again and "will change" not in again
    assert "Plan: 1 host will change (4 changes), 0 healthy, 0 unknown" in out, out
    assert re.search(r"^localhost +healthy ", out.split("RECAP")[-1], re.M), out  # nothing left to do
    # a path that no longer exists is never offered to inspect
    assert str(sandbox / "audit.jsonl") not in err and "sandbox and its audit log removed" in err


def test_the_demo_with_keep_leaves_the_sandbox_and_names_its_audit_log(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(["demo", "--keep"]) == 0
    err = capsys.readouterr().err
    sandbox = Path(re.search(r"== sandbox: (\S+)", err).group(1))  # type: ignore[union-attr]
    audit = sandbox / "audit.jsonl"
    assert f"== audit log: {audit}" in err and audit.stat().st_size > 0
    assert oct((sandbox / "etc" / "config.yaml").stat().st_mode & 0o777) == "0o640"  # fixed
