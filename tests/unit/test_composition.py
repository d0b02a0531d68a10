"""Several playbooks on one host: diagnose all, fix in fault order, verify each, roll back only one's own."""

from __future__ import annotations

import fcntl
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from runner.cli.program import main
from runner.errors import GraphError, InputError
from runner.load.inputs import load_inputs
from runner.plan.hosts import RunOptions
from runner.results import FaultState, Status
from runner.run.executor import execute
from tests.unit.test_executor import Collect, Recording, mark_module  # noqa: F401 - fixture


def books(tmp_path: Path, **texts: str) -> list[str]:
    paths = []
    for name, text in texts.items():
        path = tmp_path / f"{name}.yml"
        path.write_text(textwrap.dedent(text).replace("LOG", str(tmp_path / "log")))
        paths.append(str(path))
    return paths


def run(tmp_path: Path, paths: list[str], **options: Any) -> Any:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("h0 ansible_connection=local\n")
    inputs = load_inputs(paths, [str(inventory)])
    options.setdefault("lock_path", str(tmp_path / "remedy.lock"))
    return execute(inputs, RunOptions(**options), Collect(), connect=lambda p: Recording(p, []))


def logged(tmp_path: Path) -> list[str]:
    log = tmp_path / "log"
    return log.read_text().split() if log.exists() else []


def faults(result: Any) -> list[tuple[str, str]]:
    return [(f.playbook, str(f.state)) for f in result.hosts[0].faults]


FIRST = """
- hosts: all
  diagnose:
    - {assert: {that: false, fail_msg: first broken}}
  tasks:
    - {id: fix, mark: {name: first_fix, log: LOG}, notify: restart}
  handlers:
    - {name: restart, id: restart, mark: {name: restart, log: LOG}}
  verify:
    - {assert: {that: FIRST_OK, fail_msg: first still broken}}
  rollback:
    - {id: undo, undoes: [fix], mark: {name: first_undo, log: LOG}}
"""
SECOND = """
- hosts: all
  after: [first]
  diagnose:
    - {assert: {that: false, fail_msg: second broken}}
  tasks:
    - {id: fix, mark: {name: second_fix, log: LOG}, notify: restart}
  handlers:
    - {name: restart, id: restart, mark: {name: restart, log: LOG}}
  verify:
    - {assert: {that: SECOND_OK, fail_msg: second still broken}}
  rollback:
    - {id: undo, undoes: [fix], mark: {name: second_undo, log: LOG}}
"""


def pair(tmp_path: Path, first_ok: bool = True, second_ok: bool = True) -> list[str]:
    # the second file is given first: 'after' decides the order, not the command line
    return books(tmp_path, second=SECOND.replace("SECOND_OK", str(second_ok).lower()),
                 first=FIRST.replace("FIRST_OK", str(first_ok).lower()))


def test_faults_are_fixed_in_the_declared_order_and_a_shared_handler_runs_once(tmp_path: Path) -> None:
    result = run(tmp_path, pair(tmp_path))
    assert logged(tmp_path) == ["first_fix", "second_fix", "restart"]
    assert faults(result) == [("first", "fixed"), ("second", "fixed")]
    handler = next(r for r in result.all_results() if r.task == "second:restart")
    assert handler.status is Status.SKIPPED
    assert handler.message == "ran once for the host, as first:restart (changed)"
    assert result.hosts[0].status is Status.CHANGED and result.exit_code == 0


def test_only_the_playbook_whose_own_verification_failed_is_rolled_back(tmp_path: Path) -> None:
    result = run(tmp_path, pair(tmp_path, first_ok=True, second_ok=False))
    assert logged(tmp_path) == ["first_fix", "second_fix", "restart", "second_undo"]
    assert faults(result) == [("first", "fixed"), ("second", "rolled_back")]
    assert result.hosts[0].status is Status.ROLLED_BACK and result.exit_code == 2


def test_rollbacks_run_in_reverse_order_of_the_fixes(tmp_path: Path) -> None:
    result = run(tmp_path, pair(tmp_path, first_ok=False, second_ok=False))
    assert logged(tmp_path)[-2:] == ["second_undo", "first_undo"]
    assert faults(result) == [("first", "rolled_back"), ("second", "rolled_back")]


def test_check_mode_diagnoses_all_and_predicts_in_order(tmp_path: Path) -> None:
    result = run(tmp_path, pair(tmp_path), check=True)
    assert logged(tmp_path) == []
    assert faults(result) == [("first", "found"), ("second", "found")]
    predicted = [r.task for r in result.all_results() if r.predicted == "change"]
    assert predicted == ["first:fix", "second:fix", "first:restart"]


BLOCKER = """
- hosts: all
  diagnose:
    - {assert: {that: "not ('BLOCKER' in lookup_log)", fail_msg: data damaged}}
  tasks:
    - {id: fix, mark: {name: blocker_fix, log: LOG}}
"""
BLOCKED = """
- hosts: all
  diagnose:
    - name: the data is intact
      blocked_by: blocker
      shell: "! grep -qs blocker_fix LOG && exit 1 || true"
      changed_when: false
    - {assert: {that: false, fail_msg: cache stale}}
  tasks:
    - {id: fix, mark: {name: blocked_fix, log: LOG}}
"""


def test_a_blocked_playbook_alone_reports_blocked_and_changes_nothing(tmp_path: Path) -> None:
    result = run(tmp_path, books(tmp_path, cache=BLOCKED.replace("blocker", "restore_from_backup")))
    host = result.hosts[0]
    assert host.status is Status.BLOCKED and result.exit_code == 2
    assert host.faults[0].state is FaultState.BLOCKED
    assert host.faults[0].blocked_by == "restore_from_backup"
    assert "run restore_from_backup first" in host.faults[0].detail
    assert logged(tmp_path) == []
    assert {str(r.status) for r in host.results if r.phase == "tasks"} == {"blocked"}


def test_diagnose_reports_a_blocked_playbook_whose_blocker_is_found_as_a_finding(tmp_path: Path) -> None:
    blocker = BLOCKER.replace("not ('BLOCKER' in lookup_log)", "false")
    paths = books(tmp_path, cache=BLOCKED.replace("blocker", "data"),
                  data=blocker.replace("blocker_fix", "data_fix"))
    result = run(tmp_path, paths, check=True, diagnose_only=True)
    assert faults(result) == [("data", "found"), ("cache", "blocked")]
    assert result.hosts[0].status is Status.OK and result.exit_code == 0


def test_a_blocked_playbook_runs_after_its_blocker_if_its_fault_is_still_present(tmp_path: Path) -> None:
    blocker = BLOCKER.replace("not ('BLOCKER' in lookup_log)", "false")
    result = run(tmp_path, books(tmp_path, cache=BLOCKED.replace("blocker", "data"),
                                 data=blocker.replace("blocker_fix", "data_fix")))
    assert logged(tmp_path) == ["data_fix", "blocked_fix"]
    assert faults(result) == [("data", "fixed"), ("cache", "fixed")]


def test_a_failed_rollback_is_its_own_verdict_in_text_json_and_junit(tmp_path: Path, capsys: Any) -> None:
    (path,) = books(tmp_path, broken="""
        - hosts: all
          diagnose:
            - {assert: {that: false, fail_msg: broken}}
          tasks:
            - {id: fix, command: "true"}
          verify:
            - {assert: {that: false, fail_msg: still broken}}
          rollback:
            - {id: undo, undoes: [fix], command: "false", ignore_errors: true}
            - {id: after_undo, command: "true"}
        """)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"h0 ansible_connection=local remedy_lock_path={tmp_path / 'lock'}\n")
    junit = tmp_path / "junit.xml"
    code = main(["run", path, "-i", str(inventory), "--format", "json", "--junit", str(junit),
                 "--audit-log", str(tmp_path / "audit.jsonl")])
    out, err = capsys.readouterr()
    assert code == 6
    document = json.loads(out)
    assert document["exit_code"] == 6
    host = document["hosts"][0]
    assert host["status"] == "rollback_failed"
    assert host["faults"][0]["state"] == "rollback_failed"
    assert "the rollback failed at 'command undo': command exited 1" in host["faults"][0]["detail"]
    undo = next(t for t in host["tasks"] if t["task"] == "broken:undo")
    assert undo["status"] == "failed"  # ignore_errors lets the rollback go on, it never hides a failure
    assert next(t for t in host["tasks"] if t["task"] == "broken:after_undo")["status"] == "changed"
    assert "rollback_failed" in err and "ROLLBACK FAILED" in err
    assert 'type="rollback_failed"' in junit.read_text()


@pytest.mark.parametrize(("text", "message"), [
    ("after: [nosuch]", "after 'nosuch': no playbook of that name"),
    ("after: [cach_flush]", "(did you mean 'cache_flush'?)"),
])
def test_after_must_name_a_known_playbook(tmp_path: Path, text: str, message: str) -> None:
    (path,) = books(tmp_path, one=f"""
        - hosts: all
          {text}
          tasks:
            - command: "true"
        """)
    with pytest.raises(InputError) as error:
        load_inputs([path])
    assert message in str(error.value)


def test_playbooks_that_must_each_run_after_the_other_are_an_input_error(tmp_path: Path) -> None:
    paths = books(tmp_path, a="- hosts: all\n  after: [b]\n  tasks: [{command: 'true'}]\n",
                  b="- hosts: all\n  after: [a]\n  tasks: [{command: 'true'}]\n")
    with pytest.raises(GraphError) as error:
        load_inputs(paths)
    assert "has after a" in str(error.value) and "has after b" in str(error.value)


def test_diagnose_prints_the_faults_per_host_and_the_command_that_fixes_them(
        tmp_path: Path, capsys: Any) -> None:
    paths = pair(tmp_path)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("h0 ansible_connection=local\n")
    audit = ["--audit-log", str(tmp_path / "audit.jsonl")]
    assert main(["diagnose", *paths, "-i", str(inventory), *audit]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:3] == ["h0: 2 faults", "  first: assert diagnose[1]: first broken",
                                    "  second: assert diagnose[1]: second broken"]
    assert f"  remedy run {paths[1]} {paths[0]} -i {inventory} -l h0" in out  # in the fault order
    assert "RECAP" not in out
    assert main(["diagnose", *paths, "-i", str(inventory), "--detailed-exitcode", *audit]) == 10
    assert main(["plan", *paths, "-i", str(inventory), "--detailed-exitcode", *audit]) == 10
    calm = "- hosts: all\n  diagnose: [{assert: {that: true}}]\n  tasks: [{command: 'true'}]\n"
    healthy = books(tmp_path, calm=calm)
    assert main(["plan", *healthy, "-i", str(inventory), "--detailed-exitcode", *audit]) == 0
    assert main(["diagnose", *healthy, "-i", str(inventory), "--detailed-exitcode", *audit]) == 0
    assert "healthy: h0" in capsys.readouterr().out


def test_a_locked_host_is_waited_for_once_not_once_per_playbook(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("h0 ansible_connection=local\n")
    inputs = load_inputs(pair(tmp_path), [str(inventory)])
    lock = tmp_path / "remedy.lock"
    holds: list[str] = []

    def connect(params: Any) -> Any:
        conn = Recording(params, [])
        conn.hold = lambda command: holds.append(command) or conn.inner.hold(command)
        return conn

    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another run holds the host's lock
        result = execute(inputs, RunOptions(lock_path=str(lock), lock_timeout=0), Collect(),
                         connect=connect)
    assert len(holds) == 1
    assert [str(f.state) for f in result.hosts[0].faults] == ["not_run", "not_run"]
    assert result.hosts[0].status is Status.NOT_RUN


def test_a_set_fact_in_diagnose_is_seen_by_the_later_diagnose_and_fix_tasks(tmp_path: Path) -> None:
    paths = books(tmp_path, facts="""
    - hosts: all
      diagnose:
        - {id: derive, set_fact: {wanted: [a, b]}}
        - {id: verdict, assert: {that: wanted | length == 0, fail_msg: "missing {{ wanted | join(',') }}"}}
      tasks:
        - {id: fix, mark: {name: "fix-{{ wanted | join('-') }}", log: LOG}}
    """)
    result = run(tmp_path, paths)
    assert faults(result) == [("facts", "fixed")]
    evidence = result.hosts[0].faults[0].evidence
    assert evidence and "missing a,b" in evidence[0], evidence
    assert logged(tmp_path) == ["fix-a-b"]
