"""Playbook validation: the closed schema, task fields, and every problem at once."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.errors import InputError, LoadError, PlaybookError
from runner.load.playbook import load_playbook, walk_tasks
from runner.model import Playbook

pytestmark = pytest.mark.usefixtures("probe_module")

Write = Callable[..., Path]


def load(write: Write, text: str, name: str = "site.yml") -> Playbook:
    return load_playbook(write(name, text))


def problems(write: Write, text: str) -> list[str]:
    with pytest.raises(PlaybookError) as caught:
        load(write, text)
    return [f"{p.location.line}:{p.location.column}: {p.message}" for p in caught.value.problems]


def one_task(write: Write, body: str) -> object:
    lines = textwrap.dedent(body).strip().splitlines()
    text = "- hosts: all\n  tasks:\n    - " + "\n      ".join(lines) + "\n"
    return load(write, text).plays[0].tasks[0]


# --- the model ---------------------------------------------------------------------

def test_playbook_is_named_after_its_file_and_keeps_its_header(write: Write) -> None:
    book = load(write, "# Free a port.\n#\n# Variables: port.\n---\n- hosts: web\n  tasks: []\n",
                name="port_conflict.yml")
    assert book.name == "port_conflict"
    assert book.header == "Free a port.\n\nVariables: port."
    assert book.plays[0].hosts == "web"


def test_play_fields_are_read(write: Write) -> None:
    text = """
    - name: fix
      hosts: [web, db]
      vars: {port: 8080}
      serial: [1, "50%"]
      max_fail_percentage: 10
      become: yes
      become_user: root
      tags: fix, port
      environment: {LANG: C}
      tasks: []
    """
    play = load(write, text).plays[0]
    assert play.name == "fix"
    assert play.hosts == "web:db"
    assert play.vars == {"port": 8080}
    assert play.serial == (1, "50%")
    assert play.max_fail_percentage == 10
    assert play.become is True
    assert play.become_user == "root"
    assert play.tags == ("fix", "port")
    assert play.environment == {"LANG": "C"}


def test_task_fields_are_read(write: Write) -> None:
    task = one_task(write, """
        name: check
        id: check_port
        probe: {msg: hi, count: "3"}
        when: [port is defined, port > 0]
        register: result
        notify: [restart]
        loop: [1, 2]
        loop_control: {loop_var: n, label: "{{ n }}"}
        retries: 3
        until: result.rc == 0
        delay: 0
        timeout: 30
        become: false
        ignore_errors: on
        changed_when: false
        failed_when: result.rc > 1
        tags: [t]
        no_log: true
        vars: {x: 1}
        requires: []
    """.replace("notify: [restart]", "notify: ['{{ handler }}']"))
    assert task.id == "check_port"  # type: ignore[attr-defined]
    assert task.explicit_id is True  # type: ignore[attr-defined]
    assert task.module == "probe"  # type: ignore[attr-defined]
    assert task.args == {"msg": "hi", "count": 3}  # type: ignore[attr-defined]
    assert task.when == ("port is defined", "port > 0")  # type: ignore[attr-defined]
    assert task.register == "result"  # type: ignore[attr-defined]
    assert task.loop == [1, 2]  # type: ignore[attr-defined]
    assert task.loop_var == "n"  # type: ignore[attr-defined]
    assert task.loop_label == "{{ n }}"  # type: ignore[attr-defined]
    assert task.retries == 3  # type: ignore[attr-defined]
    assert task.until == ("result.rc == 0",)  # type: ignore[attr-defined]
    assert task.delay == 0  # type: ignore[attr-defined]
    assert task.timeout == 30  # type: ignore[attr-defined]
    assert task.become is False  # type: ignore[attr-defined]
    assert task.ignore_errors is True  # type: ignore[attr-defined]
    assert task.changed_when == (False,)  # type: ignore[attr-defined]
    assert task.no_log is True  # type: ignore[attr-defined]
    assert task.requires == ()  # type: ignore[attr-defined]


def test_absent_requires_is_none_and_empty_requires_is_empty(write: Write) -> None:
    book = load(write, "- hosts: all\n  tasks:\n    - probe: a\n    - {probe: b, requires: []}\n")
    assert book.plays[0].tasks[0].requires is None
    assert book.plays[0].tasks[1].requires == ()


def test_free_form_argument_and_args_keyword_combine(write: Write) -> None:
    task = one_task(write, "probe: hello\nargs: {count: 2}")
    assert task.args == {"msg": "hello", "count": 2}  # type: ignore[attr-defined]


def test_yaml11_words_in_string_fields_stay_strings(write: Write) -> None:
    task = one_task(write, "name: no\nprobe: off")
    assert task.name == "no"  # type: ignore[attr-defined]
    assert task.args == {"msg": "off"}  # type: ignore[attr-defined]


def test_ansible_boolean_words_are_accepted_for_boolean_keywords(write: Write) -> None:
    task = one_task(write, "probe: x\nbecome: yes\nno_log: off\nignore_errors: 'true'")
    assert task.become is True  # type: ignore[attr-defined]
    assert task.no_log is False  # type: ignore[attr-defined]
    assert task.ignore_errors is True  # type: ignore[attr-defined]


def test_block_children_get_ids_under_the_block(write: Write) -> None:
    text = """
    - hosts: all
      tasks:
        - id: fix
          block: [{probe: a}, {probe: b}]
          rescue: [{probe: c}]
          always: [{id: done, probe: d}]
    """
    block = load(write, text).plays[0].tasks[0]
    assert block.is_block
    assert [t.id for t in block.block] == ["fix.block[1]", "fix.block[2]"]
    assert [t.id for t in block.rescue] == ["fix.rescue[1]"]
    assert [t.id for t in block.always] == ["done"]
    assert [t.id for t in walk_tasks((block,))] == [
        "fix", "fix.block[1]", "fix.block[2]", "fix.rescue[1]", "done"]


def test_handlers_may_listen_to_topics(write: Write) -> None:
    text = """
    - hosts: all
      tasks: [{probe: a, notify: config changed}]
      handlers: [{name: restart, probe: r, listen: config changed}]
    """
    play = load(write, text).plays[0]
    assert play.handlers[0].listen == ("config changed",)


def test_vars_files_are_merged_under_play_vars(write: Write) -> None:
    write("vars/common.yml", "port: 80\nhost: a\n")
    book = load(write, "- hosts: all\n  vars_files: [vars/common.yml]\n  vars: {port: 8080}\n  tasks: []\n")
    assert book.plays[0].vars == {"port": 8080, "host": "a"}


def test_playbook_without_plays_is_an_error(write: Write) -> None:
    assert problems(write, "[]\n") == ["1:1: the playbook has no plays"]


def test_a_mapping_instead_of_a_list_of_plays_is_an_error(write: Write) -> None:
    assert problems(write, "hosts: all\n") == ["1:1: a playbook must be a list of plays"]


def test_load_errors_come_from_the_loader(write: Write) -> None:
    with pytest.raises(LoadError):
        load(write, "- hosts: all\n  hosts: web\n")


# --- schema problems ------------------------------------------------------------------

def test_every_problem_of_a_file_is_reported_at_once(write: Write) -> None:
    found = problems(write, """
    - hosts: 5
      taks: []
      tasks:
        - probe: x
          timeout: ten
        - prbe: y
    """)
    assert found == [
        "1:10: 'hosts' must be a pattern string or a list, not the number 5",
        "2:3: unknown play key 'taks' (did you mean 'tasks'?)",
        "5:16: 'timeout' must be a number, not the string 'ten'",
        "6:7: unknown module or task key 'prbe' (did you mean 'probe'?)",
    ]


def test_play_without_hosts_is_an_error(write: Write) -> None:
    assert problems(write, "- tasks: []\n") == ["1:3: play has no 'hosts'"]


def test_play_that_is_not_a_mapping_is_an_error(write: Write) -> None:
    assert problems(write, "- just a string\n") == ["1:3: a play must be a mapping"]


def test_task_that_is_not_a_mapping_is_an_error(write: Write) -> None:
    assert problems(write, "- hosts: all\n  tasks: [probe]\n") == ["2:11: a task must be a mapping"]


def test_task_without_a_module_is_an_error(write: Write) -> None:
    assert problems(write, "- hosts: all\n  tasks: [{name: x}]\n") == ["2:11: task has no module"]


def test_task_with_two_modules_is_an_error(write: Write) -> None:
    found = problems(write, "- hosts: all\n  tasks:\n    - probe: a\n      debug: {msg: b}\n")
    assert found == ["4:7: task has more than one module: probe, debug"]


def test_block_with_a_module_key_is_an_error(write: Write) -> None:
    found = problems(write, "- hosts: all\n  tasks:\n    - probe: a\n      block: [{probe: b}]\n")
    assert found == ["3:7: a block cannot also run a module ('probe')"]


def test_rescue_outside_a_block_is_an_error(write: Write) -> None:
    found = problems(write, "- hosts: all\n  tasks:\n    - probe: a\n      rescue: [{probe: b}]\n")
    assert found == ["4:7: 'rescue' is only valid in a block"]


def test_listen_outside_handlers_is_an_error(write: Write) -> None:
    found = problems(write, "- hosts: all\n  tasks:\n    - probe: a\n      listen: x\n")
    assert found == ["4:7: 'listen' is only valid in handlers"]


@pytest.mark.parametrize("key", ["delegate_to", "local_action", "roles", "async"])
def test_unsupported_ansible_keys_are_refused_with_advice(write: Write, key: str) -> None:
    found = problems(write, f"- hosts: all\n  tasks:\n    - probe: a\n      {key}: x\n")
    assert found == [f"4:7: '{key}' is not supported"]


def test_notify_of_an_unknown_handler_suggests_the_closest(write: Write) -> None:
    found = problems(write, """
    - hosts: all
      tasks: [{probe: a, notify: restart cose}]
      handlers: [{name: restart coze, probe: r}]
    """)
    assert found == ["2:11: notify 'restart cose' matches no handler (did you mean 'restart coze'?)"]


def test_duplicate_explicit_ids_are_an_error_across_plays(write: Write) -> None:
    found = problems(write, """
    - hosts: all
      tasks: [{id: x, probe: a}]
    - hosts: all
      tasks: [{id: x, probe: b}]
    """)
    assert found == ["4:11: duplicate task id 'x' (first defined at line 2)"]


@pytest.mark.parametrize("value", ["1st", "a b", "'x:y'", "[a]"])
def test_invalid_task_ids_are_refused(write: Write, value: str) -> None:
    found = problems(write, f"- hosts: all\n  tasks:\n    - id: {value}\n      probe: a\n")
    assert len(found) == 1
    assert "invalid task id" in found[0]


def test_invalid_register_name_is_refused(write: Write) -> None:
    found = problems(write, "- hosts: all\n  tasks:\n    - {probe: a, register: my-result}\n")
    assert "invalid variable name 'my-result'" in found[0]


def test_invalid_variable_names_in_vars_are_refused(write: Write) -> None:
    found = problems(write, "- hosts: all\n  vars: {ok: 1, not-ok: 2}\n  tasks: []\n")
    assert "invalid variable name 'not-ok'" in found[0]


@pytest.mark.parametrize(("serial", "ok"), [("1", True), ('"25%"', True), ("[1, 5, '100%']", True),
                                             ("0", False), ("-1", False), ("many", False)])
def test_serial_is_a_count_or_a_percentage(write: Write, serial: str, ok: bool) -> None:
    text = f"- hosts: all\n  serial: {serial}\n  tasks: []\n"
    if ok:
        load(write, text)
    else:
        assert "must be a positive count or a percentage" in problems(write, text)[0]


def test_max_fail_percentage_is_range_checked(write: Write) -> None:
    found = problems(write, "- hosts: all\n  max_fail_percentage: 150\n  tasks: []\n")
    assert found == ["2:24: 'max_fail_percentage' must be between 0 and 100"]


def test_loop_must_be_a_list_or_a_template(write: Write) -> None:
    found = problems(write, "- hosts: all\n  tasks:\n    - {probe: a, loop: 5}\n")
    assert found == ["3:24: 'loop' must be a list or a template string, not the number 5"]


def test_loop_and_with_items_together_are_an_error(write: Write) -> None:
    found = problems(write, "- hosts: all\n  tasks:\n    - {probe: a, loop: [1], with_items: [2]}\n")
    assert "use either 'loop' or 'with_items'" in found[0]


def test_unknown_loop_control_key_suggests_the_closest(write: Write) -> None:
    found = problems(write, "- hosts: all\n  tasks:\n    - {probe: a, loop: [1], loop_control: {lable: x}}\n")
    assert "unknown loop_control key 'lable' (did you mean 'label'?)" in found[0]


def test_when_with_braces_is_an_error(write: Write) -> None:
    found = problems(write, '- hosts: all\n  tasks:\n    - {probe: a, when: "{{ x }}"}\n')
    assert "'when' is already an expression; remove the {{ }}" in found[0]


def test_template_errors_in_vars_and_loops_are_found(write: Write) -> None:
    found = problems(write, """
    - hosts: all
      vars:
        a: "{{ x.__class__ }}"
        b: ["{{ y "]
      tasks:
        - probe: a
          loop: ["{{ ok }}", "{{ ''.__class__ }}"]
    """)
    assert [f.split(": ", 1)[0] for f in found] == ["3:8", "4:9", "7:26"]


def test_mode_as_a_yaml_number_is_an_error_naming_the_argument(write: Write) -> None:
    found = problems(write, "- hosts: all\n  tasks:\n    - probe: {mode: 644}\n")
    assert found == ["3:15: argument 'mode' of 'probe' is the number 644, not a mode string"]


def test_vars_file_problems_point_into_the_vars_file(write: Write, tmp_path: Path) -> None:
    write("vars/bad.yml", "a: 1\na: 2\n")
    write("vars/list.yml", "- 1\n")
    with pytest.raises(InputError) as caught:
        load(write, "- hosts: all\n  vars_files: [vars/missing.yml, vars/bad.yml, vars/list.yml]\n"
                    "  tasks: []\n")
    found = [(Path(p.location.file).name, p.location.line, p.message) for p in caught.value.problems]
    assert ("bad.yml", 2, "duplicate key 'a' (first defined at line 1)") in found
    assert ("site.yml", 2, "vars file vars/list.yml must hold a mapping") in found
    assert any(f[0] == "site.yml" and f[2].startswith("cannot load vars file vars/missing.yml")
               for f in found)
