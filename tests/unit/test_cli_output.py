"""What the person on call reads: the plan on stdout with its diffs and summary, fitted to the terminal."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest

from runner.cli.program import main
from runner.output.tables import DEFAULT_WIDTH, cell_width, short_paths, table, terminal_width

SECRET = "Sekrit-token-4242"
BOOK = """
- hosts: all
  vars:
    conf: "{root}/{{{{ inventory_hostname }}}}/etc/coze/config.yaml"
    token: !secret {secret}
  diagnose:
    - name: the port is free or held by the service itself
      assert:
        that: "inventory_hostname == 'b'"
        fail_msg: "port 8080 is held by pid 4242 (python3 -m http.server)"
  tasks:
    - id: move
      name: move the service to the fallback port in its config
      lineinfile: {{path: "{{{{ conf }}}}", regexp: "^port:", line: "port: 8081"}}
    - id: token
      name: write the service's token
      lineinfile: {{path: "{{{{ conf }}}}", regexp: "^token:", line: "token: {{{{ token }}}}"}}
    - id: hidden
      name: a change nobody may see
      no_log: true
      lineinfile: {{path: "{{{{ conf }}}}", regexp: "^hidden:", line: "hidden: HIDDEN-VALUE-9"}}
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Hosts a (its port is held: the fault) and b (healthy) on the local connection, at COLUMNS=100."""
    monkeypatch.setenv("COLUMNS", "100")
    root = tmp_path / "a-rather-long-directory-name-that-pushes-paths-wide" / "hosts"
    for host in ("a", "b"):
        conf = root / host / "etc" / "coze" / "config.yaml"
        conf.parent.mkdir(parents=True)
        conf.write_text("# config\nport: 8080\ntoken: old\nhidden: x\n")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("".join(f"{h} ansible_connection=local remedy_lock_path={tmp_path}/{h}.lock\n"
                              for h in ("a", "b")))
    book = tmp_path / "port_move.yml"
    book.write_text(BOOK.format(root=root, secret=SECRET))
    return inventory, book


def remedy(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--audit-log", str(tmp_path / "audit.jsonl")])
    out, err = capsys.readouterr()
    return code, out, err


def section(out: str, title: str) -> str:
    """The section of ``out`` that starts with the line ``title``, its lines joined by single spaces."""
    lines = out[out.index(title):].splitlines()
    end = next((i for i, line in enumerate(lines[1:], 1) if not line.startswith(" ")), len(lines))
    return " ".join(" ".join(lines[:end]).split())


def progress_of(err: str, host: str) -> str:
    """The progress lines of ``host`` in ``err``, wrapped lines joined, as one text."""
    lines, mine = [], False
    for line in err.splitlines():
        mine = line.startswith(f"[{host}]") or (mine and line.startswith("    "))
        lines += [line] * mine
    return " ".join(" ".join(lines).split())


def recap(out: str) -> dict[str, dict[str, str]]:
    """The recap table of ``out``: host -> column -> value; a blank cell (a zero) reads "0".

    Columns that are 0 everywhere may be left out. Cells are read at the
    positions of the ``----`` rule under the headers.
    """
    lines = out[out.index("RECAP"):].splitlines()
    spans = [m.span() for m in re.finditer(r"-+", lines[2])]
    headers = [lines[1][start:end].strip() for start, end in spans]
    rows = {}
    for line in lines[3:]:
        if not line.strip() or line.startswith(("Failures", "run ")):
            break
        cells = [line[start:end].strip() or "0" for start, end in spans]
        rows[cells[0]] = dict(zip(headers, cells, strict=True))
    return rows


def test_a_plan_prints_its_table_and_diffs_on_stdout_and_ends_with_a_summary(
        tmp_path: Path, site: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    inventory, book = site
    code, out, err = remedy(capsys, tmp_path, "plan", str(book), "-i", str(inventory))
    assert code == 0, err
    assert "-port: 8080" in out and "+port: 8081" in out
    assert "-port: 8080" not in err
    assert out.rstrip("\n").splitlines()[-1] == "Plan: 1 host will change (3 changes), 1 healthy, 0 unknown"
    assert "a: move the service to the fallback port in its config" in out
    assert "+token: ********" in out
    assert SECRET not in out + err
    assert "HIDDEN-VALUE-9" not in out + err
    quiet_code, quiet_out, quiet_err = remedy(capsys, tmp_path, "plan", str(book), "-i", str(inventory), "-q")
    assert quiet_code == 0 and "+port: 8081" in quiet_out and quiet_err == ""


def test_a_plan_that_changes_nothing_says_so_in_its_summary(
        tmp_path: Path, site: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    inventory, book = site
    code, out, _ = remedy(capsys, tmp_path, "plan", str(book), "-i", str(inventory), "-l", "b")
    assert code == 0
    assert "No changes: the plan would change nothing on any host." in out
    assert out.rstrip("\n").splitlines()[-1] == "Plan: 0 hosts will change (0 changes), 1 healthy, 0 unknown"


PROBED = """
- hosts: all
  vars:
    conf: "{root}/{{{{ inventory_hostname }}}}/config.yaml"
  diagnose:
    - {{id: read_port, name: read the port from the config file, command: "grep -E '^port:' {{{{ conf }}}}"}}
    - {{name: the port is free, assert: {{that: false, fail_msg: port 8080 is held}}}}
  tasks:
    - id: move
      name: move the service to the fallback port
      lineinfile: {{path: "{{{{ conf }}}}", regexp: "^port:", line: "port: 8081"}}
    - {{id: start, name: start the service, requires: [move], command: "true"}}
  verify:
    - {{name: the service listens, command: "true"}}
  rollback:
    - {{name: put the port back, command: "true"}}
"""


@pytest.fixture
def probed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Host a, which has no config file for the probe to read, and host b, which has one; COLUMNS=100."""
    monkeypatch.setenv("COLUMNS", "100")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.yaml").write_text("port: 8080\n")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("".join(f"{h} ansible_connection=local remedy_lock_path={tmp_path}/{h}.lock\n"
                              for h in ("a", "b")))
    book = tmp_path / "port.yml"
    book.write_text(PROBED.format(root=tmp_path))
    return inventory, book


def test_a_failed_probe_is_one_failure_and_the_tasks_after_it_are_skipped_because_of_it(
        tmp_path: Path, probed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    inventory, book = probed
    junit = tmp_path / "junit.xml"
    code, out, err = remedy(capsys, tmp_path, "run", str(book), "-i", str(inventory), "--junit", str(junit))
    assert code == 2, err
    assert progress_of(err, "a") == (
        f"[a] FAILED: read the port from the config file - command exited 2: grep: {tmp_path}/a/config.yaml: "
        "No such file or directory")
    row = recap(out)["a"]
    assert (row["result"], row["failed"], row["skipped"], row["total"]) == ("failed", "1", "5", "6")
    failures = section(out, "Failures (one root cause per host):")
    assert failures == (f"Failures (one root cause per host): a: FAILED at 'read the port from the "
                               f"config file': command exited 2: grep: {tmp_path}/a/config.yaml: No such "
                               "file or directory fix: see the failing task's commands and output, fix the "
                               f"cause, then run again: remedy run {book} -i {inventory} -l a -v")
    suites = {s.get("name"): s for s in ElementTree.parse(junit).getroot()}
    assert (suites["a"].get("failures"), suites["a"].get("skipped")) == ("1", "5")
    code, out, _ = remedy(capsys, tmp_path, "run", str(book), "-i", str(inventory), "-l", "a",
                          "--format", "json")
    [host] = json.loads(out)["hosts"]
    assert [t["status"] for t in host["tasks"]] == ["failed"] + ["skipped"] * 5
    because = "skipped because 'read the port from the config file' failed"
    assert {t["message"] for t in host["tasks"][1:]} == {because}


def test_a_bundled_playbook_that_fails_points_at_the_diagnosis_of_every_bundled_playbook(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The config file is missing: port_conflict cannot read its port, and the hint says that
    another fault may be the cause (config_error's), with the command that names it."""
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"a ansible_connection=local coze_config={tmp_path}/missing.yaml "
                         f"remedy_lock_path={tmp_path}/a.lock\n")
    code, out, err = remedy(capsys, tmp_path, "run", "port_conflict", "-i", str(inventory))
    assert code == 2, err
    failures = section(out, "Failures (one root cause per host):")
    assert f"fix: see the failing task's commands and output, fix the cause, then run again: " \
           f"remedy run port_conflict -i {inventory} -l a -v another fault may be the cause: every " \
           f"bundled playbook's diagnosis of the host says which: remedy diagnose -i {inventory} -l a" \
           in failures, failures
    # (a playbook file of the user's own gets no such line: the exact section in the test above)


FAULTY = """
- hosts: all
  diagnose:
    - {{name: look for the {name} fault, assert: {{that: false, fail_msg: {name} is broken}}}}
  tasks:
    - {{name: fix {name}, command: "true"}}
    - {{name: restart after {name}, command: "true"}}
  verify:
    - {{name: {name} works, command: "true"}}
"""


def test_a_locked_host_is_one_not_run_record_and_one_failure_with_the_lock_hint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from runner.connection import ConnectionParams, open_connection

    monkeypatch.setenv("COLUMNS", "100")
    lock = tmp_path / "remedy.lock"
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"a ansible_connection=local remedy_lock_path={lock}\n")
    books = []
    for name in ("first", "second"):
        books.append(tmp_path / f"{name}.yml")
        books[-1].write_text(FAULTY.format(name=name))
    holder = open_connection(ConnectionParams(name="holder", address="holder", kind="local"))
    held = holder.hold(f"exec 9>>{lock}; flock -n 9 && echo LOCKED && cat")
    try:
        assert held.readline(timeout=10) == "LOCKED"
        code, out, err = remedy(capsys, tmp_path, "run", *map(str, books), "-i", str(inventory))
    finally:
        held.close()
        holder.close()
    assert code == 2, err
    shown = [line for line in err.splitlines() if line.startswith("[a]")]
    assert len(shown) == 3 and shown[2].startswith("[a] not run: fix first - locked: "), shown
    row = recap(out)["a"]
    assert (row["result"], row["ok"], row["skipped"], row["not_run"], row["total"]) == \
        ("not_run", "2", "5", "1", "8")
    failures = section(out, "Failures (one root cause per host):")
    assert failures.startswith("Failures (one root cause per host): a: NOT RUN: locked: ")
    assert failures.endswith(" fix: another remedy run holds the host's lock: wait for it, "
                             "or pass --lock-timeout SECONDS")


def test_the_plan_and_the_diagnosis_fit_100_columns_with_paths_shortened_in_the_middle_and_nothing_cut(
        tmp_path: Path, site: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    inventory, book = site
    conf = tmp_path / "a-rather-long-directory-name-that-pushes-paths-wide/hosts/a/etc/coze/config.yaml"
    book.write_text(book.read_text().replace(
        '"port 8080 is held by pid 4242 (python3 -m http.server)"',
        f'"{conf}: port 8080 is held by pid 4242 (python3 -m http.server --bind 127.0.0.1 8080), mode 0600"'))
    code, out, err = remedy(capsys, tmp_path, "plan", str(book), "-i", str(inventory))
    assert code == 0, err
    diff_body = [line for line in out.splitlines() if line.startswith(("     ", "    -", "    +", "    @"))]
    assert f"    --- {conf} (before)" in diff_body  # a diff names the whole path
    assert "    +port: 8081" in diff_body
    for line in out.splitlines() + err.splitlines():
        assert cell_width(line) <= 100 or line in diff_body, line
    table = out.split("\n\n")[0]
    assert "line replaced in …/etc/coze/config.yaml" in table
    progress = " ".join(err.split())
    assert "[a] will change: move the service to the fallback port in its config - line replaced in " \
           "…/etc/coze/config.yaml [a]" in progress  # a change is wrapped, never cut
    code, out, err = remedy(capsys, tmp_path, "diagnose", str(book), "-i", str(inventory))
    assert code == 0, err
    prose = [line for line in out.splitlines() if not line.startswith("  remedy run ")]  # a command is whole
    assert max(cell_width(line) for line in prose) <= 100
    flat = " ".join(out.split())
    assert "…/etc/coze/config.yaml: port 8080 is held by pid 4242 (python3 -m http.server --bind 127.0.0.1 " \
        "8080), mode 0600" in flat


def test_output_is_100_columns_wide_in_a_pipe_and_follows_columns_when_set(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    with open(os.devnull, "w") as pipe:
        assert terminal_width(pipe) == DEFAULT_WIDTH == 100
        monkeypatch.setenv("COLUMNS", "132")
        assert terminal_width(pipe) == 132


def test_a_narrowed_table_wraps_its_cells_and_keeps_every_word() -> None:
    detail = "1 of 6 item(s): fix 1 of 1 entries of /srv/coze/lab/hosts/host03/etc/coze/config.yaml " \
             "(chown 1 to root:coze, chmod 0640)"
    text = table([["host03", "restore the declared owner, group and modes (snapshot first)", "will change",
                   detail]], ["host", "task", "plan", "detail"], width=80, narrow=(1, 3))
    assert max(cell_width(line) for line in text.splitlines()) <= 80
    words = " ".join(text.split())
    for word in short_paths(detail).split() + ["restore", "(snapshot", "first)"]:
        assert word in words
    assert "…/etc/coze/config.yaml" in words and "chmod 0640)" in words


ROLLED_BACK = """
- hosts: all
  diagnose:
    - {name: look for the fault, assert: {that: "inventory_hostname == 'b'", fail_msg: broken}}
  tasks:
    - {id: stop_stale, name: start the service, command: "true", changed_when: true}
    - {id: start, name: start the service, command: "true", changed_when: true}
  verify:
    - {id: works, name: the service works, command: "false"}
  rollback:
    - {id: undo, name: start the service, undoes: [stop_stale], command: "true", changed_when: true}
"""


@pytest.fixture
def rolled_back(tmp_path: Path) -> tuple[Path, Path]:
    """Host a, whose fix of port_conflict is rolled back, and the healthy host b."""
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("".join(f"{h} ansible_connection=local remedy_lock_path={tmp_path}/{h}.lock\n"
                              for h in ("a", "b")))
    book = tmp_path / "port_conflict.yml"
    book.write_text(ROLLED_BACK)
    return inventory, book


def test_junit_names_each_task_by_its_id_under_host_and_playbook_and_shows_the_rollback(
        tmp_path: Path, rolled_back: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    inventory, book = rolled_back
    junit = tmp_path / "junit.xml"
    code, _, err = remedy(capsys, tmp_path, "run", str(book), "-i", str(inventory), "--junit", str(junit))
    assert code == 2, err
    root = ElementTree.parse(junit).getroot()
    suites = {s.get("name"): s for s in root}
    a, b = suites["a"], suites["b"]
    names = [case.get("name") for case in a]
    assert len(names) == len(set(names)), names  # three tasks named "start the service" stay apart
    assert names == ["port_conflict:diagnose[1]", "port_conflict:stop_stale", "port_conflict:start",
                     "port_conflict:works", "port_conflict:undo", "port_conflict:rollback",
                     "port_conflict: rolled_back"]
    assert {case.get("classname") for case in a} == {"a.port_conflict"}
    rollback = a.find("testcase[@name='port_conflict:rollback']")
    assert rollback is not None and rollback.find("failure") is None
    assert "port_conflict:undo (start the service): changed" in (rollback.findtext("system-out") or "")
    verdict = a.find("testcase[@name='port_conflict: rolled_back']/failure")
    assert verdict is not None and verdict.get("type") == "rolled_back"
    assert (a.get("tests"), a.get("failures"), a.get("skipped")) == ("7", "2", "0")
    assert (b.get("failures"), b.get("skipped")) == ("0", "0")  # healthy tasks pass
    assert root.get("tests") == str(int(a.get("tests", "")) + int(b.get("tests", "")))


def test_json_marks_the_changes_a_rollback_undid_and_predicts_only_with_a_documented_value(
        tmp_path: Path, rolled_back: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    inventory, book = rolled_back
    code, out, err = remedy(capsys, tmp_path, "run", str(book), "-i", str(inventory), "--format", "json")
    assert code == 2, err
    hosts = {h["host"]: h for h in json.loads(out)["hosts"]}
    undone = {t["task"]: (t["status"], t["rolled_back"]) for t in hosts["a"]["tasks"]}
    assert undone == {"port_conflict:diagnose[1]": ("ok", False),
                      "port_conflict:stop_stale": ("changed", True), "port_conflict:start": ("changed", True),
                      "port_conflict:works": ("failed", False), "port_conflict:undo": ("changed", False)}
    tasks = [t for h in hosts.values() for t in h["tasks"]]
    assert {t.get("predicted", "absent") for t in tasks} <= {"change", "no_change", "unknown", "absent"}
    assert not any(t["rolled_back"] for t in hosts["b"]["tasks"])


def test_health_after_the_run_wraps_its_reasons_and_keeps_the_next_command_on_a_line_of_its_own() -> None:
    from runner.output.verdicts import render_health
    from runner.results import HostResult, Run, Status

    reasons = ["data: bots.json: checksum mismatch",
               "cache_dir: bots.json: stale (differs from the data file)",
               "redis: coze:cache:bots.json: stale (differs from the data file)"]
    host = HostResult("host02", (), Status.CHANGED, health={"ok": False, "status": 503, "reasons": reasons,
                                                             "next": ["restore_from_backup", "cache_flush"]})
    lines = render_health(Run("r", (host,)), 100).splitlines()
    assert max(cell_width(line) for line in lines) <= 100
    assert lines[-1] == "    next: remedy run restore_from_backup cache_flush -l host02"
    assert " ".join(" ".join(lines[1:-1]).split()) == "host02: status 503: " + "; ".join(reasons)


def test_a_plan_names_the_failure_that_stopped_a_host_in_its_table_and_counts_the_host_unknown(
        tmp_path: Path, probed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    inventory, book = probed
    code, out, err = remedy(capsys, tmp_path, "plan", str(book), "-i", str(inventory))
    assert code == 2, err
    rows = [line for line in out.split("\n\n")[0].splitlines() if line.startswith("a ")]
    assert len(rows) == 1 and re.match(r"a +read the port from the config +failed +command exited 2: grep: ",
                                       rows[0]), out
    assert out.rstrip("\n").splitlines()[-1] == \
        "Plan: 1 host will change (1 change, 1 of unknown effect), 0 healthy, 1 unknown"
