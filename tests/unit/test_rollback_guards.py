"""Rollback tasks undo only what their fix changed, and a failed task reports what it changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import GraphError
from runner.load.inputs import load_inputs
from tests.unit.test_executor import logged, mark_module, run, statuses  # noqa: F401 - fixtures

BOOK = """
- hosts: h0
  tasks:
    - {id: fix, mark: {name: fix, log: LOG, changed: FIX_CHANGES}}
    - {id: other, requires: [], mark: {name: other, log: LOG}}
  verify:
    - {id: check, assert: {that: false, fail_msg: still broken}}
  rollback:
    - {id: undo_fix, undoes: fix, mark: {name: undo_fix, log: LOG}}
    - {id: undo_any, undoes: [fix, other], requires: [], mark: {name: undo_any, log: LOG}}
    - {id: plain, requires: [], mark: {name: plain, log: LOG}}
"""


@pytest.fixture
def hosts(tmp_path: Path) -> Path:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("h0 ansible_connection=local\n")
    return inventory


def test_an_undo_task_is_skipped_when_its_fix_changed_nothing(tmp_path: Path, hosts: Path) -> None:
    result, _, _ = run(tmp_path, hosts, BOOK.replace("FIX_CHANGES", "false"))
    states = statuses(result)
    assert states["undo_fix"] == "skipped"
    assert states["undo_any"] == "changed"  # 'other' changed the host
    assert logged(tmp_path) == ["other", "undo_any", "plain"]
    skipped = next(r for r in result.all_results() if r.task.endswith(":undo_fix"))
    assert skipped.message == "nothing to undo: fix changed nothing"
    assert result.hosts[0].status.value == "rolled_back"


def test_an_undo_task_runs_when_its_fix_changed_the_host(tmp_path: Path, hosts: Path) -> None:
    result, _, _ = run(tmp_path, hosts, BOOK.replace("FIX_CHANGES", "true"))
    assert statuses(result)["undo_fix"] == "changed"
    assert logged(tmp_path) == ["fix", "other", "undo_fix", "undo_any", "plain"]


@pytest.mark.parametrize(("section", "ref", "message"), [
    ("verify", "fix", "'undoes' is only valid on a rollback task, not in 'verify'"),
    ("rollback", "fxi", "undoes 'fxi': no task with id 'fxi' among the play's tasks and handlers "
                        "(did you mean 'fix'?)"),
    ("rollback", "probe", "undoes 'probe': no task with id 'probe'"),
])
def test_undoes_must_name_a_fix_task_of_the_play(tmp_path: Path, section: str, ref: str,
                                                 message: str) -> None:
    book = tmp_path / "book.yml"
    book.write_text(f"""
- hosts: all
  diagnose:
    - {{id: probe, command: "true"}}
  tasks:
    - {{id: fix, command: "true"}}
  {section}:
    - {{id: undo, undoes: {ref}, command: "true"}}
""")
    with pytest.raises(GraphError) as error:
        load_inputs([str(book)])
    assert message in str(error.value)
    assert f"{book}:" in str(error.value)


def test_a_failed_task_that_changed_nothing_is_not_reported_changed(tmp_path: Path, hosts: Path) -> None:
    blocker = tmp_path / "plain-file"
    blocker.write_text("a file where a directory is wanted\n")
    result, _, _ = run(tmp_path, hosts, f"""
- hosts: h0
  tasks:
    - {{id: mkdir, file: {{path: "{blocker}/sub", state: directory, mode: "0755"}}}}
""")
    failed = next(r for r in result.all_results() if r.task.endswith(":mkdir"))
    assert failed.status.value == "failed"
    assert failed.changed is False
    assert failed.data["changed"] is False


def test_a_failed_task_that_changed_part_of_the_host_is_reported_changed(tmp_path: Path,
                                                                         hosts: Path) -> None:
    target = tmp_path / "made"
    result, _, _ = run(tmp_path, hosts, f"""
- hosts: h0
  tasks:
    - id: partial
      shell: mkdir {target} && exit 3
      args: {{creates: "{target}"}}
""")
    failed = next(r for r in result.all_results() if r.task.endswith(":partial"))
    assert failed.status.value == "failed"
    assert target.is_dir()
    assert failed.changed is True
