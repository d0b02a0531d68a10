"""`--serial` and `--max-fail-percentage` on `remedy run` and `apply`: canary batches from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.cli.program import main
from tests.unit.test_executor import mark_module  # noqa: F401 - the autouse fixture that adds "mark"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """Three local hosts; the first one fails its only task."""
    (tmp_path / "hosts.ini").write_text("".join(
        f"{h} ansible_connection=local remedy_lock_path={tmp_path}/{h}.lock\n" for h in "abc"))
    (tmp_path / "book.yml").write_text(f"""
- hosts: all
  tasks:
    - mark:
        name: "{{{{ inventory_hostname }}}}"
        log: {tmp_path}/log
        fail: "{{{{ inventory_hostname == 'a' }}}}"
""")
    return tmp_path


def remedy(site: Path, capsys: pytest.CaptureFixture[str], command: str, *args: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    """``remedy COMMAND`` on the site's playbook and inventory (``apply``: ARGS only), as JSON."""
    inputs = [str(site / "book.yml"), "-i", str(site / "hosts.ini"), "--audit-log", str(site / "audit.jsonl")]
    code = main([command, *(inputs if command != "apply" else []), "--format", "json", *args])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else {}, err


def logged(site: Path) -> list[str]:
    log = site / "log"
    return log.read_text().split() if log.exists() else []


def test_a_failed_canary_stops_the_run_and_the_other_hosts_are_not_run(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, document, _ = remedy(site, capsys, "run", "--serial", "1,100%", "--max-fail-percentage", "0")
    assert code == 2
    assert {h["host"]: h["status"] for h in document["hosts"]} == {"a": "failed", "b": "not_run",
                                                                    "c": "not_run"}
    assert "max_fail_percentage 0% exceeded in a batch of 1" in document["aborted"]
    assert logged(site) == ["a"]


def test_without_the_options_every_host_runs(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, document, _ = remedy(site, capsys, "run")
    assert code == 2
    assert sorted(logged(site)) == ["a", "b", "c"]
    assert document["aborted"] is None


def test_the_options_override_the_playbook(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = site / "book.yml"
    book.write_text(book.read_text().replace("- hosts: all\n", "- hosts: all\n  serial: 1\n"
                                             "  max_fail_percentage: 0\n"))
    code, _, _ = remedy(site, capsys, "run", "--serial", "100%", "--max-fail-percentage", "100")
    assert code == 2
    assert sorted(logged(site)) == ["a", "b", "c"]


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--serial", "0", "--serial '0': '0' is not a positive count or a percentage"),
    ("--serial", "1,,50%", "--serial '1,,50%': '' is not a positive count or a percentage"),
    ("--serial", "ten", "'ten' is not a positive count or a percentage"),
    ("--serial", "-1", "'-1' is not a positive count or a percentage"),
    ("--max-fail-percentage", "101", "--max-fail-percentage '101' is not a number from 0 to 100"),
    ("--max-fail-percentage", "-5", "is not a number from 0 to 100"),
    ("--max-fail-percentage", "nan", "is not a number from 0 to 100"),
    ("--max-fail-percentage", "lots", "is not a number from 0 to 100"),
])
def test_a_bad_value_is_exit_4_before_any_host_is_contacted(
        site: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str) -> None:
    code, document, err = remedy(site, capsys, "run", option, value)
    assert code == 4
    assert message in err and f"<command line {option}>" in err, err
    assert "e.g." in err  # the fix
    assert not document and logged(site) == [] and not (site / "audit.jsonl").exists()


def test_apply_runs_a_saved_plan_in_canary_batches(
        site: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("runner.cli.commands.DEFAULT_AUDIT", site / "audit.jsonl")  # apply: its default log
    plan = site / "plan.json"
    code, _, err = remedy(site, capsys, "plan", "-o", str(plan))
    assert code == 0, err
    assert remedy(site, capsys, "apply", str(plan), "--serial", "x")[0] == 4
    assert logged(site) == []
    code, document, _ = remedy(site, capsys, "apply", str(plan), "--serial", "1,100%",
                               "--max-fail-percentage", "0")
    assert code == 2
    assert [h["status"] for h in document["hosts"]] == ["failed", "not_run", "not_run"]
    assert logged(site) == ["a"]
