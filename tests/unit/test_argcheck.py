"""Typed checks of keyword and module argument values."""

from __future__ import annotations

import math
from typing import Any

import pytest

from runner.errors import ProblemCollector
from runner.load.argcheck import Checker, check_value
from runner.load.templating import to_bool
from runner.load.yamlfile import MarkedDict, load_text
from runner.modules.base import Arg, Module


def mapping(text: str) -> MarkedDict:
    data = load_text(text, "p.yml")
    assert isinstance(data, MarkedDict)
    return data


def checker() -> tuple[Checker, ProblemCollector]:
    problems = ProblemCollector()
    return Checker(problems), problems


def messages(problems: ProblemCollector) -> list[str]:
    return [f"{p.location}: {p.message}" for p in problems.problems]


# --- to_bool -------------------------------------------------------------------

@pytest.mark.parametrize("value", [True, 1, "yes", "on", "true", "y", "1", " YES ", "True"])
def test_to_bool_reads_ansible_true_words(value: Any) -> None:
    assert to_bool(value) is True


@pytest.mark.parametrize("value", [False, 0, "no", "off", "false", "n", "0", "NO", "Off"])
def test_to_bool_reads_ansible_false_words(value: Any) -> None:
    assert to_bool(value) is False


@pytest.mark.parametrize("value", ["maybe", "", 2, -1, 1.5, None, [], {}])
def test_to_bool_of_anything_else_is_none(value: Any) -> None:
    assert to_bool(value) is None


# --- check_value per type ----------------------------------------------------------

@pytest.mark.parametrize(("kind", "value", "expected"), [
    ("str", "text", "text"),
    ("str", 3, "3"),
    ("path", "/etc/coze/config.yaml", "/etc/coze/config.yaml"),
    ("int", 5, 5),
    ("int", "5", 5),
    ("int", 5.0, 5),
    ("float", "1.5", 1.5),
    ("float", 2, 2),
    ("bool", "yes", True),
    ("bool", "off", False),
    ("bool", True, True),
    ("list", ["a"], ["a"]),
    ("list", "a", ["a"]),
    ("dict", {"a": 1}, {"a": 1}),
    ("any", object, object),
    ("mode", "0644", "0644"),
])
def test_check_value_accepts_and_coerces_fitting_values(kind: str, value: Any, expected: Any) -> None:
    checked, problem = check_value(Arg(kind), value)
    assert problem is None
    assert checked == expected


def test_check_value_accepts_none_for_every_type() -> None:
    for kind in ("str", "int", "bool", "mode", "list", "dict", "path"):
        assert check_value(Arg(kind), None) == (None, None)


@pytest.mark.parametrize(("kind", "value", "problem"), [
    ("int", "ten", "must be a number, not the string 'ten'"),
    ("int", True, "must be a number, not the boolean true"),
    ("int", 3.5, "must be a whole number, not 3.5"),
    ("int", math.inf, "must be a finite number"),
    ("float", math.nan, "must be a finite number"),
    ("float", [1], "must be a number, not a list"),
    ("bool", "maybe", "must be a boolean, not the string 'maybe'"),
    ("bool", 2, "must be a boolean"),
    ("str", True, "must be a string, not the boolean true"),
    ("str", {"a": 1}, "must be a string, not a mapping"),
    ("str", 3.1, "is the number 3.1, not a string"),
    ("path", "a\nb", "must not contain NUL or newline characters"),
    ("path", "a\x00b", "must not contain NUL or newline characters"),
    ("list", {"a": 1}, "must be a list"),
    ("dict", [1], "must be a mapping"),
])
def test_check_value_explains_a_mismatch(kind: str, value: Any, problem: str) -> None:
    _, found = check_value(Arg(kind), value)
    assert found is not None
    assert problem in found[0]


def test_version_like_float_in_a_string_argument_asks_for_quotes() -> None:
    _, found = check_value(Arg("str"), 3.1)
    assert found is not None
    assert "3.10" in found[0]
    assert "quote the value" in found[1]


def test_string_may_contain_newlines() -> None:
    assert check_value(Arg("str"), "a\nb") == ("a\nb", None)


def test_choices_are_enforced_with_a_suggestion() -> None:
    _, found = check_value(Arg("str", choices=("started", "stopped")), "startd")
    assert found is not None
    assert "must be one of started, stopped, not 'startd' (did you mean 'started'?)" in found[0]


def test_yaml11_boolean_word_in_a_choice_argument_is_refused() -> None:
    _, found = check_value(Arg("str", choices=("present", "absent")), "no")
    assert found is not None
    assert "not 'no'" in found[0]


# --- modes -----------------------------------------------------------------------

@pytest.mark.parametrize("mode", [
    "0644", "644", "0755", "1777", "4755", "00644", "u+rwx", "u=rwX,g=rX,o=", "go-w", "a+x",
    "u+s", "o=", "g=u",
])
def test_mode_strings_are_accepted(mode: str) -> None:
    assert check_value(Arg("mode"), mode) == (mode, None)


@pytest.mark.parametrize("mode", ["0999", "rwx", "64", "0o644", "u+q", "0644 ", "u+rwx;", ""])
def test_bad_mode_strings_are_refused(mode: str) -> None:
    _, found = check_value(Arg("mode"), mode)
    assert found is not None
    assert "is not a file mode" in found[0]


def test_mode_as_a_yaml_number_is_refused_with_the_quoted_fix() -> None:
    _, found = check_value(Arg("mode"), 644)
    assert found == ("is the number 644, not a mode string",
                     'modes must be quoted strings: mode: "0644"')


def test_mode_as_a_boolean_is_refused() -> None:
    _, found = check_value(Arg("mode"), True)
    assert found is not None
    assert "is the boolean true, not a mode string" in found[0]


# --- Checker keywords ----------------------------------------------------------------

def test_checker_string_reports_a_non_string_at_the_value() -> None:
    check, problems = checker()
    assert check.string(mapping("name: 5\n"), "name") == "5"
    assert messages(problems) == ["p.yml:1:7: 'name' must be a string, not the number 5"]


def test_checker_number_reports_words_and_ranges() -> None:
    check, problems = checker()
    raw = mapping("timeout: ten\ndelay: -1\nretries: 3\n")
    assert check.number(raw, "timeout", 0.001, 100) is None
    assert check.number(raw, "delay", 0, 100) is None
    assert check.integer(raw, "retries", 0, 100) == 3
    assert messages(problems) == [
        "p.yml:1:10: 'timeout' must be a number, not the string 'ten'",
        "p.yml:2:8: 'delay' must be between 0 and 100",
    ]


def test_checker_integer_refuses_fractions() -> None:
    check, problems = checker()
    check.integer(mapping("retries: 2.5\n"), "retries", 0, 10)
    assert "'retries' must be a whole number" in messages(problems)[0]


def test_checker_boolean_accepts_ansible_words_and_refuses_others() -> None:
    check, problems = checker()
    raw = mapping("become: yes\nno_log: maybe\n")
    assert check.boolean(raw, "become") is True
    assert check.boolean(raw, "no_log") is None
    assert messages(problems) == ["p.yml:2:9: 'no_log' must be a boolean, not the string 'maybe'"]


def test_checker_string_list_accepts_a_string_or_a_list() -> None:
    check, problems = checker()
    raw = mapping("a: one\nb: [x, y]\ntags: 'p, q'\nc: {k: v}\n")
    assert check.string_list(raw, "a") == ("one",)
    assert check.string_list(raw, "b") == ("x", "y")
    assert check.string_list(raw, "tags") == ("p", "q")
    assert check.string_list(raw, "c") == ()
    assert messages(problems) == ["p.yml:4:4: 'c' must be a string or a list of strings, not a mapping"]


def test_checker_mapping_refuses_a_list_and_checks_templates_inside() -> None:
    check, problems = checker()
    raw = mapping("vars: [a]\nenvironment:\n  A: \"{{ x.__class__ }}\"\n")
    assert check.mapping(raw, "vars") == {}
    check.mapping(raw, "environment")
    found = messages(problems)
    assert found[0] == "p.yml:1:7: 'vars' must be a mapping, not a list"
    assert found[1].startswith("p.yml:3:6: unsafe template operation")


def test_checker_variable_names_must_be_identifiers() -> None:
    check, problems = checker()
    check.variable_names(mapping("vars:\n  ok_1: 1\n  bad-name: 2\n  9lives: 3\n"), "vars")
    assert [p.location.line for p in problems.problems] == [3, 4]


def test_conditions_refuse_braces_and_check_syntax() -> None:
    check, problems = checker()
    raw = mapping('when: "{{ x }}"\nuntil: [r.rc == 0, "r.rc =="]\nfailed_when: false\n')
    check.conditions(raw, "when")
    check.conditions(raw, "until")
    assert check.conditions(raw, "failed_when") == (False,)
    found = messages(problems)
    assert "'when' is already an expression; remove the {{ }}" in found[0]
    assert found[1].startswith("p.yml:2:20: expression syntax error")
    assert len(found) == 2


def test_conditions_refuse_a_mapping() -> None:
    check, problems = checker()
    check.conditions(mapping("when: {a: 1}\n"), "when")
    assert "'when' must be an expression, a boolean or a list" in messages(problems)[0]


# --- module arguments ---------------------------------------------------------------

class Sample(Module):
    name = "sample"
    args = {
        "path": Arg("path", required=True, aliases=("dest",)),
        "mode": Arg("mode"),
        "state": Arg("str", choices=("present", "absent")),
        "src": Arg("str"),
        "content": Arg("str"),
        "that": Arg("expr"),
    }
    free_form = "path"
    mutually_exclusive = (("src", "content"),)


def module_args(text: str) -> tuple[dict[str, Any], list[str]]:
    check, problems = checker()
    args = check.module_args(Sample, mapping(text), "sample")
    return args, messages(problems)


def test_module_args_accept_free_form_and_mapping_forms() -> None:
    assert module_args("sample: /etc/x\n") == ({"path": "/etc/x"}, [])
    assert module_args("sample: {path: /etc/x, state: absent}\n")[0] == {
        "path": "/etc/x", "state": "absent"}


def test_module_args_resolve_aliases() -> None:
    assert module_args("sample: {dest: /x}\n") == ({"path": "/x"}, [])


def test_module_args_merge_the_args_keyword() -> None:
    args, found = module_args("sample: /x\nargs: {mode: '0600'}\n")
    assert args == {"path": "/x", "mode": "0600"}
    assert found == []


def test_unknown_argument_suggests_the_closest() -> None:
    _, found = module_args("sample: {path: /x, stat: absent}\n")
    assert found == ["p.yml:1:20: unknown argument 'stat' for module 'sample' (did you mean 'state'?)"]


def test_missing_required_argument_is_reported() -> None:
    _, found = module_args("sample: {state: absent}\n")
    assert found == ["p.yml:1:1: module 'sample' requires argument 'path'"]


def test_mutually_exclusive_arguments_are_reported() -> None:
    _, found = module_args("sample: {path: /x, src: a, content: b}\n")
    assert "arguments src and content are mutually exclusive" in found[0]


def test_template_argument_is_checked_for_syntax_only() -> None:
    args, found = module_args("sample: {path: /x, mode: '{{ m }}'}\n")
    assert args["mode"] == "{{ m }}"
    assert found == []
    _, found = module_args("sample: {path: /x, mode: '{{ m '}\n")
    assert "template syntax error" in found[0]


def test_expression_argument_is_checked_as_an_expression() -> None:
    _, found = module_args("sample: {path: /x, that: 'a =='}\n")
    assert "expression syntax error" in found[0]


def test_sandbox_escape_in_a_free_form_argument_is_reported() -> None:
    _, found = module_args("sample: \"{{ '{0.__class__}'.format(1) }}\"\n")
    assert "unsafe template operation" in found[0]


def test_module_arguments_as_a_list_are_refused() -> None:
    _, found = module_args("sample: [a, b]\n")
    assert found == ["p.yml:1:9: arguments of 'sample' must be 'sample: <path>' or a mapping"]


def test_mode_number_in_module_args_names_the_argument_and_the_fix() -> None:
    _, found = module_args("sample: {path: /x, mode: 644}\n")
    assert found == ["p.yml:1:20: argument 'mode' of 'sample' is the number 644, not a mode string"]
