"""Check mode plans a task from the state the earlier planned changes leave, on a real local host."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from runner.cli.demo import run_demo
from runner.cli.program import main
from runner.events import NullListener
from runner.load.inputs import load_inputs
from runner.modules.base import Change, PathEffect
from runner.modules.pathfact import PathInfo, path_fact
from runner.plan.hosts import RunOptions
from runner.results import Run, TaskResult
from runner.run.executor import execute
from runner.run.foresight import Foresight


def run(tmp_path: Path, body: str, *, check: bool) -> dict[str, TaskResult]:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("local ansible_connection=local\n")
    book = tmp_path / "book.yml"
    book.write_text(body.replace("TMP", str(tmp_path / "sandbox")))
    inputs = load_inputs([str(book)], [str(inventory)])
    done: Run = execute(inputs, RunOptions(check=check, lock_path=str(tmp_path / "lock")), NullListener())
    return {r.task.split(":", 1)[1]: r for r in done.all_results()}


def plan_then_run(tmp_path: Path, body: str) -> tuple[dict[str, TaskResult], dict[str, TaskResult]]:
    return run(tmp_path, body, check=True), run(tmp_path, body, check=False)


RECREATE = """
- hosts: all
  tasks:
    - {id: drop, file: {path: TMP/cache, state: absent}}
    - {id: make, file: {path: TMP/cache, state: directory, mode: "0750"}}
"""


def test_a_path_removed_earlier_in_the_plan_is_planned_as_created_again(tmp_path: Path) -> None:
    (tmp_path / "sandbox" / "cache").mkdir(parents=True)
    (tmp_path / "sandbox" / "cache").chmod(0o755)
    plan, done = plan_then_run(tmp_path, RECREATE)
    assert plan["make"].predicted == "change"
    assert plan["make"].message == done["make"].message == f"create directory {tmp_path}/sandbox/cache"
    assert [(d.before, d.after) for d in plan["make"].diffs] == [("state: absent\n",
                                                                  "state: directory\nmode: 0750\n")]
    assert plan["make"].diffs == done["make"].diffs


def test_a_file_written_into_a_directory_created_earlier_is_planned_exactly(tmp_path: Path) -> None:
    (tmp_path / "sandbox").mkdir()
    body = """
- hosts: all
  tasks:
    - {id: dir, file: {path: TMP/conf.d, state: directory}}
    - {id: conf, copy: {content: "port: 80\\n", dest: TMP/conf.d/app.conf, mode: "0640"}}
    - {id: edit, lineinfile: {path: TMP/conf.d/app.conf, line: "debug: off"}}
    - {id: again, copy: {content: "port: 80\\ndebug: off\\n", dest: TMP/conf.d/app.conf, mode: "0640"}}
"""
    plan, done = plan_then_run(tmp_path, body)
    assert [plan[t].predicted for t in ("dir", "conf", "edit", "again")] == \
        ["change", "change", "change", "no_change"]
    for task in ("conf", "edit", "again"):
        assert plan[task].message == done[task].message
        assert plan[task].diffs == done[task].diffs
    assert not done["again"].changed


def test_a_plan_reading_what_an_earlier_change_leaves_unknown_says_it_depends_on_it(tmp_path: Path) -> None:
    (tmp_path / "sandbox" / "state").mkdir(parents=True)
    body = """
- hosts: all
  tasks:
    - {id: wipe, name: wipe the state, shell: {cmd: rm -rf TMP/state, removes: TMP/state}}
    - {id: make, file: {path: TMP/state, state: directory, mode: "0700"}}
    - {id: other, file: {path: TMP/other, state: directory}}
"""
    plan = run(tmp_path, body, check=True)
    assert plan["make"].predicted == "unknown"
    assert plan["make"].message == "effect depends on an earlier change ('wipe the state')"
    assert plan["make"].diffs == ()
    assert plan["other"].predicted == "change"  # a path no earlier change touches is planned as probed


def test_a_module_without_effects_leaves_what_its_facts_read_unknown(tmp_path: Path) -> None:
    cache = tmp_path / "sandbox" / "cache"
    cache.mkdir(parents=True)
    (cache / "entry").write_text("stale")
    body = """
- hosts: all
  tasks:
    - {id: flush, name: flush the cache, cache_dir: {path: TMP/cache, state: emptied}}
    - {id: drop, file: {path: TMP/cache/entry, state: absent}}
"""
    plan = run(tmp_path, body, check=True)
    assert plan["flush"].predicted == "change"
    assert plan["drop"].predicted == "unknown"
    assert plan["drop"].message == "effect depends on an earlier change ('flush the cache')"


def test_remedy_demo_predicts_what_its_run_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_demo(main, root=str(tmp_path / "demo")) == 0
    err = capsys.readouterr().err
    planned, ran = err.split("== 2. run")[0], err.split("== 2. run")[1]
    line = "recreate the cache directory - create directory"
    assert f"[localhost] will change: {line}" in planned and f"[localhost] changed: {line}" in ran
    assert "[localhost] changed:" not in planned  # check mode: a prediction, never 'changed'
    assert "set mode of" not in planned.split("recreate the cache directory")[1].splitlines()[0]


# --- the adjustments, one by one ----------------------------------------------------------

def info(path: str, **fields: object) -> PathInfo:
    return PathInfo(path, **fields)  # type: ignore[arg-type]


def adjusted(foresight: Foresight, value: PathInfo) -> tuple[object, str]:
    facts, cause = foresight.adjust({"path": path_fact(value.path)}, {"path": value})
    return facts["path"], cause


def test_a_removed_tree_leaves_every_path_under_it_absent() -> None:
    foresight = Foresight()
    foresight.record("drop", Change(True, effects=(PathEffect("/a/", kind="absent", below="gone"),)), {}, {})
    child, cause = adjusted(foresight, info("/a/b", kind="file", raw_mode=0o100644, parent="directory"))
    assert child == PathInfo("/a/b", kind="absent", parent="absent") and cause == ""
    deeper, _ = adjusted(foresight, info("/a/b/c", kind="file", parent="directory"))
    assert deeper == PathInfo("/a/b/c", kind="absent", parent="absent")
    beside, _ = adjusted(foresight, info("/ab", kind="file", parent="directory"))
    assert beside == info("/ab", kind="file", parent="directory")


def test_attributes_and_content_apply_to_the_path_as_probed() -> None:
    foresight = Foresight()
    effect = PathEffect("/etc/app.conf", mode=0o640, owner="coze", group="0", content=b"x=1\n")
    foresight.record("write", Change(True, effects=(effect,)), {}, {})
    before = info("/etc/app.conf", kind="file", raw_mode=0o100666, uid=0, owner="root", gid=0, group="root",
                  size=3, checksum="0" * 64, content="old", parent="directory")
    after, cause = adjusted(foresight, before)
    assert isinstance(after, PathInfo) and cause == ""
    assert (after.mode, after.owner, after.uid, after.gid, after.group) == (0o640, "coze", None, 0, "")
    assert (after.content, after.size) == ("x=1\n", 4)
    assert after.checksum == hashlib.sha256(b"x=1\n").hexdigest()


def test_a_change_without_effects_leaves_the_paths_its_facts_read_unknown() -> None:
    foresight = Foresight()
    probe = path_fact("/srv/data")
    foresight.record("mystery", Change(True), {"path": probe}, {})
    value, cause = adjusted(foresight, info("/srv/data/x", kind="file", parent="directory"))
    assert cause == "mystery"
    assert value == info("/srv/data/x", kind="file", parent="directory")  # left as probed
    later = PathEffect("/srv/data", kind="absent", below="gone")
    foresight.record("drop", Change(True, effects=(later,)), {}, {})
    assert adjusted(foresight, info("/srv/data/x", kind="file"))[1] == ""  # known again


def test_pip_in_a_virtualenv_removed_earlier_in_the_plan_depends_on_that_change(tmp_path: Path) -> None:
    (tmp_path / "sandbox" / "venv" / "bin").mkdir(parents=True)
    body = """
- hosts: all
  tasks:
    - {id: drop, file: {path: TMP/venv, state: absent}}
    - {id: deps, pip: {name: [requests], virtualenv: TMP/venv}}
"""
    plan = run(tmp_path, body, check=True)
    assert plan["deps"].predicted == "unknown", plan["deps"]
    assert "effect depends on an earlier change ('file drop')" in plan["deps"].message, plan["deps"].message
