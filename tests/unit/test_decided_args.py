"""Arguments that the variables alone decide are checked for every host before any host is contacted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.errors import InputError
from runner.load.inputs import load_inputs
from tests.unit.test_executor import mark_module, run, statuses  # noqa: F401 - fixtures

BOOK = """
- hosts: web
  vars:
    fix: last_good
    tpl: ""
  tasks:
    - name: probe
      id: probe
      command: echo last_good
      register: probe
      changed_when: false
    - name: write the config
      id: write
      config_file:
        path: CONFIG
        state: checked
        source: "{{ fix }}"
        template: "{{ tpl or none }}"
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    hosts = "".join(f"h{i} ansible_connection=local\n" for i in range(3))
    (tmp_path / "hosts.ini").write_text(f"[web]\n{hosts}")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "ok.j2").write_text("port: 1\n")
    (tmp_path / "config.yaml").write_text("port: 1\n")
    return tmp_path


def one_host(site: Path) -> Path:
    (site / "one.ini").write_text("[web]\nh0 ansible_connection=local\n")
    return site / "one.ini"


def load(site: Path, book: str = BOOK, *extra: str) -> None:
    (site / "book.yml").write_text(book.replace("CONFIG", str(site / "config.yaml")))
    load_inputs([str(site / "book.yml")], [str(site / "hosts.ini")], list(extra))


def test_a_choice_from_the_variables_that_is_not_offered_is_exit_4_naming_the_hosts(site: Path) -> None:
    with pytest.raises(InputError) as caught:
        load(site, BOOK, "fix=lastgood")
    problem = caught.value.problems[0]
    assert problem.location.line == 12  # the task
    assert problem.message == ("argument 'source' of 'config_file' in task 'write the config' is "
                               "'{{ fix }}', which must be one of last_good, template, default, "
                               "not 'lastgood' (did you mean 'last_good'?) (hosts h0, h1, h2)")
    assert problem.hint == "set fix (inventory, play vars or -e) to a valid value"


def test_only_the_hosts_whose_variables_are_bad_are_named(site: Path) -> None:
    (site / "host_vars").mkdir()
    (site / "host_vars" / "h1.yml").write_text("fix: newest\n")
    with pytest.raises(InputError) as caught:
        load(site)
    assert caught.value.problems[0].message.endswith("not 'newest' (host h1)")


def test_a_template_from_the_variables_that_is_not_beside_the_playbook_is_exit_4(site: Path) -> None:
    load(site, BOOK, "tpl=ok.j2")  # found in templates/
    with pytest.raises(InputError) as caught:
        load(site, BOOK, "tpl=missing.j2")
    assert "is '{{ tpl or none }}': file 'missing.j2' not found; looked in" in \
        caught.value.problems[0].message
    with pytest.raises(InputError) as caught:
        load(site, BOOK, json.dumps({"tpl": "../../etc/passwd"}))
    assert "'../../etc/passwd' is outside the playbook's directory" in caught.value.problems[0].message


def test_an_argument_that_reads_a_registered_result_is_checked_when_the_task_runs(site: Path) -> None:
    book = BOOK.replace('source: "{{ fix }}"', 'source: "{{ probe.stdout }}x"')
    load(site, book)  # the host decides: nothing to check before it is contacted
    result, _, _ = run(site, one_host(site), book.replace("CONFIG", str(site / "config.yaml")))
    assert statuses(result)["write"] == "failed"
    assert "argument 'source' must be one of last_good, template, default, not 'last_goodx'" in \
        next(r.message for r in result.hosts[0].results if r.task.endswith(":write"))


def test_a_template_argument_that_renders_to_none_is_left_out(site: Path) -> None:
    result, _, _ = run(site, one_host(site), BOOK.replace("CONFIG", str(site / "config.yaml")))
    assert statuses(result)["write"] == "ok", [r.message for h in result.hosts for r in h.results]
