"""What `remedy run` writes: JSON document, JUnit, audit log, recap, secrets masked."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest

from runner.cli.commands import _settle_start_up
from runner.cli.program import main
from runner.modules import MODULES
from runner.output.runs import render_recap, render_result_line
from runner.output.tables import cell_width, table
from runner.results import FAULT_FOUND, HostResult, Run, Status, TaskResult
from tests.unit.test_executor import Mark

CANARY = "Canary-7f3a9-secret"


@pytest.fixture(autouse=True)
def mark_module() -> Iterator[None]:
    MODULES["mark"] = Mark
    yield
    MODULES.pop("mark", None)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("".join(f"{h} ansible_connection=local remedy_lock_path={tmp_path}/{h}.lock\n"
                                 for h in "ab"))
    book = tmp_path / "book.yml"
    log = tmp_path / "log"
    book.write_text(f"""
- hosts: all
  vars:
    token: {CANARY}
  tasks:
    - name: uses a secret
      no_log: true
      mark: {{name: "{{{{ token }}}}", log: {log}}}
    - name: fails on b
      mark: {{name: x, log: {log}, fail: "{{{{ inventory_hostname == 'b' }}}}"}}
""")
    return inventory, book


def test_json_junit_and_audit_agree_and_never_show_a_no_log_secret(
        tmp_path: Path, setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    inventory, book = setup
    junit, audit = tmp_path / "junit.xml", tmp_path / "audit.jsonl"
    code = main(["run", str(book), "-i", str(inventory), "--format", "json", "--junit", str(junit),
                 "--audit-log", str(audit), "-vv", "--diff"])
    out, err = capsys.readouterr()
    assert code == 2
    document = json.loads(out)
    assert document["exit_code"] == 2
    assert {h["host"]: h["status"] for h in document["hosts"]} == {"a": "changed", "b": "failed"}
    for host in document["hosts"]:
        assert sum(host["counts"].values()) == len(host["tasks"]) == 2
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    ends = [(r["host"], r["task"]) for r in records if r["event"] == "task_end"]
    assert len(ends) == len(set(ends)) == 4
    assert records[0]["event"] == "run_start" and records[-1]["event"] == "run_end"
    suites = ElementTree.parse(junit).getroot()
    assert [s.get("failures") for s in suites] == ["0", "1"]
    for text in (out, err, audit.read_text(), junit.read_text()):
        assert CANARY not in text
    assert "RECAP" in err


def test_a_check_run_that_changes_nothing_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"a ansible_connection=local remedy_lock_path={tmp_path}/a.lock\n")
    book = tmp_path / "book.yml"
    book.write_text(f"- hosts: all\n  tasks:\n    - mark: {{name: n, log: {tmp_path}/log, changed: false}}\n")
    code = main(["plan", str(book), "-i", str(inventory), "--audit-log", str(tmp_path / "a.jsonl")])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "would change nothing" in out


SCRIPT_BOOK = """
- hosts: all
  diagnose:
    - name: probe the state
      shell: |
        if [ -e LOG ]; then
          echo present
        else
          echo absent
        fi
      register: state
      changed_when: false
    - name: it is broken
      assert:
        that: state.stdout == "present"
        fail_msg: |
          the log is missing
          expected at LOG
  tasks:
    - name: repair it
      shell: |
        for word in one two; do
          echo "$word" >> LOG
        done
"""


def test_a_multi_line_script_keeps_its_line_breaks_in_diagnose_plan_and_verbose_output(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # wide enough for the long temporary paths: no line is cut
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"a ansible_connection=local remedy_lock_path={tmp_path}/a.lock\n")
    book = tmp_path / "book.yml"
    book.write_text(SCRIPT_BOOK.replace("LOG", str(tmp_path / "log")))
    common = [str(book), "-i", str(inventory), "--audit-log", str(tmp_path / "a.jsonl")]
    probe = f"[a] ok: probe the state - run if [ -e {tmp_path}/log ]; then\n      echo present\n    else\n"
    assert main(["diagnose", *common]) == 0
    out, _ = capsys.readouterr()
    assert f"  book: it is broken: the log is missing\n    expected at {tmp_path}/log\n" in out
    assert main(["diagnose", *common, "-v"]) == 0
    assert probe in capsys.readouterr().err
    assert main(["plan", *common]) == 0
    out, err = capsys.readouterr()
    # a probe that found nothing to report is one line of progress; -v above showed it whole
    assert probe.split("\n")[0] + "\n" in err and "echo present" not in err
    plan = [line.rstrip() for line in out.splitlines()]
    at = next(i for i, line in enumerate(plan) if "run for word in one two; do" in line)
    column = plan[at].index("run for word")
    assert plan[at + 1][column:].startswith('  echo "$word" >> /')  # the script's own indent kept
    assert plan[at + 2][column:] == "done"
    assert main(["run", *common, "-v"]) == 0
    _, err = capsys.readouterr()
    assert "    $ for word in one two; do\n" in err
    assert f'\n    >   echo "$word" >> {tmp_path}/log\n    > done  (rc=0)\n' in err


def test_an_unwritable_audit_log_refuses_to_run(tmp_path: Path, setup: tuple[Path, Path],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    inventory, book = setup
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["run", str(book), "-i", str(inventory), "--audit-log", str(blocker / "audit.jsonl")])
    assert code == 4
    assert "audit log" in capsys.readouterr().err
    assert not (tmp_path / "log").exists()


def recap_run() -> Run:
    def host(name: str, *states: Status) -> HostResult:
        results = tuple(TaskResult(name, f"book:t{i}", f"t{i}", state) for i, state in enumerate(states))
        return HostResult(name, results, states[-1])

    return Run("r", (host("web-frontend-01.example.internal", Status.OK, Status.CHANGED, Status.OK),
                     host("db01", Status.OK, Status.SKIPPED, Status.NOT_RUN)))


def test_the_recap_fits_100_columns_with_zeros_blank_and_rare_states_only_when_present() -> None:
    lines = render_recap(recap_run()).splitlines()
    assert max(len(line) for line in lines) <= 100
    assert lines[1].split() == ["host", "result", "ok", "changed", "failed", "skipped", "not_run", "total"]
    web = lines[3]
    assert web.split() == ["web-frontend-01.example.internal", "ok", "2", "1", "3"]  # failed, skipped blank
    assert "unreachable" not in lines[1] and "timed_out" not in lines[1]


def test_the_full_recap_with_v_and_in_json_has_every_state(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = render_recap(recap_run(), verbose=True).splitlines()
    assert lines[1].split() == ["host", "result", *(str(s) for s in Status), "total"]
    assert lines[3].split()[2:] == ["2", "1"] + ["0"] * (len(Status) - 2) + ["3"]
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"a ansible_connection=local remedy_lock_path={tmp_path}/a.lock\n")
    book = tmp_path / "book.yml"
    book.write_text(f"- hosts: all\n  tasks:\n    - mark: {{name: n, log: {tmp_path}/log}}\n")
    common = [str(book), "-i", str(inventory), "--audit-log", str(tmp_path / "a.jsonl")]
    assert main(["run", *common, "-v", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert "indeterminate" in err.split("RECAP", 1)[1].splitlines()[1]
    assert json.loads(out)["hosts"][0]["counts"] == {str(s): int(s is Status.CHANGED) for s in Status}


def test_tables_count_wide_characters_as_two_columns() -> None:
    text = table([["主机一", "changed", 3], ["h2", "失败", 12]], ["host", "result", "n"])
    lines = text.splitlines()
    # every row's second column starts at the same terminal column
    starts = {cell_width(line[:line.index(cell)]) for line, cell in
              zip(lines[2:], ["changed", "失败"], strict=True)}
    assert starts == {cell_width(lines[0][:lines[0].index("result")])}
    assert cell_width("主机é́") == 5


def test_a_table_does_not_load_wcwidth() -> None:
    probe = ("import sys; from runner.output.tables import table; table([['主机', 1]], ['h', 'n']); "
             "print('wcwidth' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_version_is_printed_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("remedy ")


def test_start_up_is_frozen_and_the_collector_back_on_before_hosts_run() -> None:
    frozen = gc.get_freeze_count()
    _settle_start_up([])  # an in-process caller's collector stays as it was
    assert gc.isenabled() and gc.get_freeze_count() == frozen
    gc.disable()  # as ``cli.entry`` leaves it
    try:
        _settle_start_up([])
        assert gc.isenabled()
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()
        gc.enable()


def test_a_diagnosis_that_found_its_fault_is_never_shown_as_ok() -> None:
    found = TaskResult("h1", "book:probe", "the sandbox is healthy", Status.OK, "fault found: mode 0666",
                       data={FAULT_FOUND: True}, phase="diagnose")
    clean = TaskResult("h1", "book:probe", "the sandbox is healthy", Status.OK, "All assertions passed",
                       phase="diagnose")
    assert render_result_line(found) == "[h1] fault: the sandbox is healthy - fault found: mode 0666"
    assert render_result_line(clean).startswith("[h1] ok: the sandbox is healthy")


def test_check_mode_progress_says_will_change_or_effect_unknown_never_changed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"a ansible_connection=local remedy_lock_path={tmp_path}/a.lock\n")
    book = tmp_path / "book.yml"
    book.write_text(f"""
- hosts: all
  tasks:
    - {{name: make the directory, file: {{path: {tmp_path}/made, state: directory}}}}
    - {{name: run a script, shell: "true"}}
""")
    assert main(["plan", str(book), "-i", str(inventory), "--audit-log", str(tmp_path / "a.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "[a] will change: make the directory" in err
    assert "[a] will run, effect unknown: run a script" in err
    assert "] changed:" not in err and "will change (" not in err
