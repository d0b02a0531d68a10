"""Task keywords on a real local host: when, loop, register, retries/until, verdicts, blocks, tags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runner.events import NullListener
from runner.load.inputs import load_inputs
from runner.plan.hosts import RunOptions
from runner.results import Run, TaskResult
from runner.run.executor import execute


def run(tmp_path: Path, body: str, *, inventory_text: str = "local ansible_connection=local\n",
        inventory_name: str = "hosts.ini", **options: Any) -> Run:
    inventory = tmp_path / inventory_name
    inventory.write_text(inventory_text)
    book = tmp_path / "book.yml"
    book.write_text(body.replace("TMP", str(tmp_path)))
    inputs = load_inputs([str(book)], [str(inventory)])
    options.setdefault("lock_path", str(tmp_path / "lock"))
    return execute(inputs, RunOptions(**options), NullListener())


def results(run_: Run) -> dict[str, TaskResult]:
    return {r.task.split(":", 1)[1]: r for r in run_.all_results()}


def test_when_register_and_loop_work_together(tmp_path: Path) -> None:
    run_ = run(tmp_path, """
- hosts: all
  tasks:
    - {id: list, command: "printf 'a\\nb\\n'", register: out, changed_when: false}
    - id: each
      shell: "echo {{ item | quote }} >> TMP/items"
      loop: "{{ out.stdout_lines }}"
    - {id: never, command: "touch TMP/never", when: out.rc != 0}
""")
    got = results(run_)
    assert [str(got[k].status) for k in ("list", "each", "never")] == ["ok", "changed", "skipped"]
    assert (tmp_path / "items").read_text() == "a\nb\n"
    assert not (tmp_path / "never").exists()
    assert [r["item"] for r in got["each"].data["results"]] == ["a", "b"]


def test_until_retries_until_the_condition_holds(tmp_path: Path) -> None:
    run_ = run(tmp_path, """
- hosts: all
  tasks:
    - id: count
      shell: "echo x >> TMP/tries; wc -l < TMP/tries"
      register: tries
      until: tries.stdout | int >= 3
      retries: 5
      delay: 0
""")
    count = results(run_)["count"]
    assert str(count.status) == "changed"
    assert count.data["attempts"] == 3
    assert (tmp_path / "tries").read_text().count("x") == 3


def test_until_gives_up_after_its_retries(tmp_path: Path) -> None:
    run_ = run(tmp_path, """
- hosts: all
  tasks:
    - {id: never, command: "false", register: r, until: r.rc == 0, retries: 2, delay: 0, ignore_errors: false}
""")
    never = results(run_)["never"]
    assert str(never.status) == "failed"
    assert never.data["attempts"] == 3


def test_failed_when_changed_when_and_ignore_errors(tmp_path: Path) -> None:
    run_ = run(tmp_path, """
- hosts: all
  tasks:
    - {id: grep, command: "grep -q nothing /dev/null", register: g,
       failed_when: g.rc > 1, changed_when: false}
    - {id: bad, command: "false", ignore_errors: true}
    - {id: after, command: "true", changed_when: false}
""")
    got = results(run_)
    assert [str(got[k].status) for k in ("grep", "bad", "after")] == ["ok", "ok", "ok"]
    assert "ignored" in got["bad"].message
    assert run_.exit_code == 0


def test_rescue_clears_a_block_failure_and_always_runs(tmp_path: Path) -> None:
    run_ = run(tmp_path, """
- hosts: all
  tasks:
    - id: guarded
      block:
        - command: "false"
        - command: "touch TMP/not-reached"
      rescue:
        - command: "touch TMP/rescued"
      always:
        - command: "touch TMP/always"
""")
    guarded = results(run_)["guarded"]
    assert str(guarded.status) == "changed"
    assert guarded.data["rescued"] is True
    assert (tmp_path / "rescued").exists() and (tmp_path / "always").exists()
    assert not (tmp_path / "not-reached").exists()


def test_set_fact_values_are_data_for_later_tasks(tmp_path: Path) -> None:
    run_ = run(tmp_path, """
- hosts: all
  tasks:
    - {id: fact, set_fact: {greeting: "hello {{ inventory_hostname }}"}}
    - {id: use, shell: "echo {{ greeting | quote }} > TMP/greeting"}
""")
    assert run_.exit_code == 0
    assert (tmp_path / "greeting").read_text() == "hello local\n"


def test_tags_select_tasks_and_always_runs(tmp_path: Path) -> None:
    run_ = run(tmp_path, """
- hosts: all
  tasks:
    - {id: a, command: "touch TMP/a", tags: [fix], requires: []}
    - {id: b, command: "touch TMP/b", tags: [other], requires: []}
    - {id: c, command: "touch TMP/c", tags: [always], requires: []}
""", tags=frozenset({"fix"}))
    got = results(run_)
    assert [str(got[k].status) for k in "abc"] == ["changed", "skipped", "changed"]


def test_a_command_past_its_timeout_is_timed_out_and_its_dependents_skipped(tmp_path: Path) -> None:
    run_ = run(tmp_path, """
- hosts: all
  tasks:
    - {id: slow, command: "sleep 30", timeout: 0.5}
    - {id: next, command: "touch TMP/next"}
""")
    got = results(run_)
    assert str(got["slow"].status) == "timed_out"
    assert str(got["next"].status) == "skipped"
    assert run_.exit_code == 2


def test_yaml_inventory_no_is_false_in_when_and_0750_is_a_mode(tmp_path: Path) -> None:
    run_ = run(tmp_path, """
- hosts: all
  tasks:
    - {id: clean, command: "touch TMP/cleaned", when: cleanup}
    - {id: dir, requires: [], file: {path: TMP/made, state: directory, mode: "{{ dir_mode }}"}}
""", inventory_name="hosts.yml", inventory_text="all:\n  hosts:\n    local:\n"
        "      ansible_connection: local\n      cleanup: no\n      dir_mode: 0750\n")
    got = results(run_)
    assert str(got["clean"].status) == "skipped"
    assert not (tmp_path / "cleaned").exists()
    assert str(got["dir"].status) == "changed", got["dir"].message
    assert (tmp_path / "made").stat().st_mode & 0o7777 == 0o750


def test_a_variable_undefined_on_one_host_fails_the_task_there_naming_it(tmp_path: Path) -> None:
    run_ = run(tmp_path, """
- hosts: local
  tasks:
    - {id: t, command: "echo {{ missing_var }}"}
""", inventory_text="local ansible_connection=local\nother ansible_connection=local missing_var=1\n")
    task = results(run_)["t"]
    assert task.host == "local"
    assert str(task.status) == "failed"
    assert "missing_var" in task.message


@pytest.mark.parametrize("payload", ["$(touch TMP/pwned)", "`touch TMP/pwned`", "x; touch TMP/pwned",
                                     "{{ lookup }}", "a'b\"c"])
def test_host_output_is_data_and_quoting_keeps_it_inert(tmp_path: Path, payload: str) -> None:
    (tmp_path / "payload").write_text(payload.replace("TMP", str(tmp_path)))
    run_ = run(tmp_path, """
- hosts: all
  tasks:
    - {id: read, command: "cat TMP/payload", register: p, changed_when: false}
    - {id: echo, shell: "printf %s {{ p.stdout | quote }} > TMP/echoed"}
""")
    assert run_.exit_code == 0
    assert (tmp_path / "echoed").read_text() == payload.replace("TMP", str(tmp_path))
    assert not (tmp_path / "pwned").exists()
