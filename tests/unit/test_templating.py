"""Sandboxed templating: one render, native types, lazy scopes, data never rendered."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import Location, ProblemCollector, TemplateError
from runner.load import templating
from runner.load.templating import Scope, evaluate, render
from runner.load.yamlfile import UnsafeText, load_text


def scope(values: dict[str, object], data: dict[str, object] | None = None) -> Scope:
    """Play-like templated values, with optional registered data on top."""
    layers: list[tuple[dict[str, object], bool]] = [(values, True)]
    if data is not None:
        layers.append((data, False))
    return Scope(layers)  # type: ignore[arg-type]


def syntax_problems(text: str) -> list[str]:
    problems = ProblemCollector()
    templating.check_syntax(text, Location("p.yml", 3, 7), problems)
    return [p.message for p in problems.problems]


# --- native types and plain text ----------------------------------------------

def test_single_expression_keeps_its_native_type() -> None:
    values = {"n": 3, "items": [1, 2], "m": {"k": "v"}, "flag": False}
    assert render("{{ n }}", scope(values)) == 3
    assert render("{{ items }}", scope(values)) == [1, 2]
    assert render("{{ m }}", scope(values)) == {"k": "v"}
    assert render("{{ flag }}", scope(values)) is False
    assert render("{{ n + 1 }}", scope(values)) == 4


def test_single_expression_with_surrounding_spaces_keeps_its_native_type() -> None:
    assert render("  {{ n }} ", scope({"n": 3})) == 3


def test_text_around_an_expression_gives_a_string() -> None:
    assert render("port {{ n }}", scope({"n": 3})) == "port 3"
    assert render("{{ a }}{{ b }}", scope({"a": 1, "b": 2})) == "12"


def test_statements_give_a_string() -> None:
    assert render("{% for i in items %}{{ i }},{% endfor %}", scope({"items": [1, 2]})) == "1,2,"


def test_strings_without_template_markers_are_returned_unchanged() -> None:
    assert render("just text { not } a template", scope({})) == "just text { not } a template"


def test_render_walks_lists_and_mappings() -> None:
    value = {"a": ["{{ x }}", "x={{ x }}"], "b": 5}
    assert render(value, scope({"x": 1})) == {"a": [1, "x=1"], "b": 5}


def test_trailing_newline_is_kept() -> None:
    assert render("line {{ x }}\n", scope({"x": 1})) == "line 1\n"


# --- undefined variables -------------------------------------------------------

def test_undefined_variable_error_names_the_variable_and_the_location() -> None:
    with pytest.raises(TemplateError) as caught:
        render("rm -rf /{{ dir }}", scope({}), Location("p.yml", 4, 9))
    text = caught.value.render()
    assert "p.yml:4:9" in text
    assert "'dir' is undefined" in text
    assert "default(" in text


def test_undefined_variable_in_a_single_expression_is_an_error() -> None:
    with pytest.raises(TemplateError, match="'missing' is undefined"):
        render("{{ missing }}", scope({}))


def test_undefined_attribute_names_the_attribute() -> None:
    with pytest.raises(TemplateError, match="no attribute 'nope'"):
        render("{{ r.nope }}", scope({"r": {"rc": 0}}))


def test_default_filter_guards_an_undefined_variable() -> None:
    assert render("{{ missing | default('x') }}", scope({})) == "x"


def test_mandatory_filter_fails_on_undefined() -> None:
    with pytest.raises(TemplateError, match="'missing' is undefined"):
        render("{{ missing | mandatory }}", scope({}))


def test_undefined_is_a_template_error_with_exit_code_4() -> None:
    with pytest.raises(TemplateError) as caught:
        render("{{ x }}", scope({}))
    assert caught.value.exit_code == 4


# --- quote ---------------------------------------------------------------------

@pytest.mark.parametrize(("value", "quoted"), [
    ("plain", "plain"),
    ("a b", "'a b'"),
    ("x; reboot", "'x; reboot'"),
    ("$(id)", "'$(id)'"),
    ("it's", "'it'\"'\"'s'"),
    ("", "''"),
    (7, "7"),
])
def test_quote_filter_quotes_one_word_for_sh(value: object, quoted: str) -> None:
    assert render("{{ v | quote }}", scope({"v": value})) == quoted


def test_quote_filter_quotes_each_item_of_a_list() -> None:
    assert render("rm -- {{ v | quote }}", scope({"v": ["a b", "c", "$(x)"]})) == "rm -- 'a b' c '$(x)'"


def test_quote_filter_of_an_empty_list_is_empty() -> None:
    assert render("x{{ v | quote }}", scope({"v": []})) == "x"


# --- lazy scope ----------------------------------------------------------------

def test_variables_referencing_variables_resolve_lazily() -> None:
    values = {"base": "/srv", "app": "{{ base }}/app", "log": "{{ app }}/log"}
    assert render("{{ log }}", scope(values)) == "/srv/app/log"


def test_a_variable_is_rendered_once_and_cached() -> None:
    calls: list[int] = []

    class Counting(dict[str, object]):
        def __getitem__(self, key: str) -> object:
            calls.append(1)
            return super().__getitem__(key)

    s = Scope([(Counting({"a": "{{ 1 + 1 }}"}), True)])
    assert render("{{ a }}-{{ a }}", s) == "2-2"
    assert s["a"] == 2
    assert len(calls) == 1


def test_unused_broken_variable_does_not_fail_the_render() -> None:
    assert render("{{ ok }}", scope({"ok": 1, "broken": "{{ missing }}"})) == 1


def test_self_reference_is_a_cycle_error() -> None:
    with pytest.raises(TemplateError, match=r"variable 'a' refers to itself: a -> a"):
        render("{{ a }}", scope({"a": "{{ a }}"}))


def test_mutual_reference_error_shows_the_cycle() -> None:
    with pytest.raises(TemplateError, match=r"a -> b -> a"):
        render("{{ a }}", scope({"a": "{{ b }}", "b": "x{{ a }}"}))


def test_higher_layer_wins() -> None:
    s = Scope([({"x": 1}, True), ({"x": 2}, True)])
    assert render("{{ x }}", s) == 2


def test_child_scope_sees_its_values_on_top() -> None:
    parent = scope({"x": 1, "y": "{{ x }}"})
    child = parent.child({"item": "a"})
    assert render("{{ item }}{{ x }}", child) == "a1"
    assert "item" not in parent


def test_scope_is_a_mapping_of_every_visible_name() -> None:
    s = Scope([({"a": 1, "b": 2}, True), ({"b": 3, "c": 4}, False)])
    assert sorted(s) == ["a", "b", "c"]
    assert len(s) == 3
    assert "c" in s
    assert "zzz" not in s
    with pytest.raises(KeyError):
        s["zzz"]


# --- data is never rendered ------------------------------------------------------

def test_registered_data_is_never_rendered(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    evil = "{{ cycler.__init__.__globals__.os.popen('touch " + str(canary) + "').read() }}"
    s = scope({"secret": "s3cret"}, data={"result": {"stdout": "{{ secret }} " + evil}})
    assert render("{{ result.stdout }}", s) == "{{ secret }} " + evil
    assert render("out: {{ result.stdout }}", s) == "out: {{ secret }} " + evil
    assert not canary.exists()


def test_registered_data_inside_a_list_stays_literal() -> None:
    s = scope({}, data={"r": {"lines": ["{{ x }}", "{% raw %}"]}})
    assert render("{{ r.lines }}", s) == ["{{ x }}", "{% raw %}"]


def test_unsafe_text_is_used_literally() -> None:
    value = load_text("a: !unsafe '{{ not_a_var }}'\n", "p.yml")["a"]
    assert isinstance(value, UnsafeText)
    assert not templating.is_template(value)
    assert render(value, scope({})) == "{{ not_a_var }}"


def test_unsafe_variable_value_is_not_rendered_when_referenced() -> None:
    s = scope({"v": UnsafeText("{{ boom }}")})
    assert render("{{ v }}", s) == "{{ boom }}"


# --- sandbox -------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "{{ '{0.__class__}'.format(1) }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ ''.__class__.__mro__ }}",
    "{{ x | attr('__class__') }}",
    "{{ x['__class__'] }}",
])
def test_sandbox_violation_is_a_template_error(text: str, tmp_path: Path) -> None:
    with pytest.raises(TemplateError) as caught:
        render(text, scope({"x": 1}), Location("p.yml", 2, 3))
    assert "unsafe template operation" in caught.value.render()
    assert "p.yml:2:3" in caught.value.render()


def test_sandbox_violation_computed_at_run_time_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="unsafe template operation"):
        render("{{ x | attr(name) }}", scope({"x": 1, "name": "__class__"}))


@pytest.mark.parametrize("text", [
    "{{ '{0.__class__}'.format(1) }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ x | attr('__class__') }}",
    "{{ x['__dict__'] }}",
    "{{ '{0[_x]}'.format(d) }}",
])
def test_syntax_check_reports_what_the_sandbox_always_refuses(text: str) -> None:
    problems = syntax_problems(text)
    assert len(problems) == 1
    assert problems[0].startswith("unsafe template operation")


@pytest.mark.parametrize("text", [
    "{{ my_var }}", "{{ a.b_c }}", "{{ '{0}'.format(a_b) }}", "{{ x['key_1'] }}",
    "{{ x | default('_') }}",
])
def test_syntax_check_accepts_underscores_in_ordinary_names(text: str) -> None:
    assert syntax_problems(text) == []


def test_syntax_check_reports_unbalanced_braces() -> None:
    assert syntax_problems("{{ x ")[0].startswith("template syntax error")


def test_expression_check_reports_syntax_and_sandbox_problems() -> None:
    problems = ProblemCollector()
    templating.check_expression("x ==", Location("p.yml", 1, 1), problems)
    templating.check_expression("x.__class__", Location("p.yml", 2, 1), problems)
    templating.check_expression("x == 1 and y is defined", Location("p.yml", 3, 1), problems)
    messages = [p.message for p in problems.problems]
    assert len(messages) == 2
    assert messages[0].startswith("expression syntax error")
    assert messages[1].startswith("unsafe template operation")


# --- expressions and helpers ------------------------------------------------------

def test_evaluate_returns_the_native_value() -> None:
    s = scope({}, data={"r": {"rc": 0, "stdout": "ready"}})
    assert evaluate("r.rc == 0", s) is True
    assert evaluate("'ready' in r.stdout", s) is True
    assert evaluate("r.rc", s) == 0


def test_evaluate_of_undefined_names_the_variable() -> None:
    with pytest.raises(TemplateError, match="'nope' is undefined"):
        evaluate("nope", scope({}))


def test_result_tests_read_registered_data() -> None:
    s = scope({}, data={"ok": {"failed": False, "changed": True}, "bad": {"failed": True}})
    assert evaluate("ok is succeeded and ok is changed", s) is True
    assert evaluate("bad is failed", s) is True


def test_bool_filter_reads_ansible_words() -> None:
    assert render("{{ 'yes' | bool }}", scope({})) is True
    assert render("{{ 'off' | bool }}", scope({})) is False


def test_failing_filter_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="template error"):
        render("{{ 'x' | from_json }}", scope({}))


def test_is_template_recognizes_expressions_and_statements() -> None:
    assert templating.is_template("a {{ b }}")
    assert templating.is_template("{% if x %}y{% endif %}")
    assert not templating.is_template("a { b }")
    assert not templating.is_template(7)
    assert not templating.is_template(UnsafeText("{{ b }}"))


def test_undeclared_lists_the_variables_a_template_reads() -> None:
    assert templating.undeclared("{{ a }} {{ b.c }} {% for i in d %}{{ i }}{% endfor %}") == {
        "a", "b", "d"}
    assert templating.undeclared("x == y", expression=True) == {"x", "y"}


@pytest.mark.parametrize("text", [
    "{{ " + "(" * 1000 + "1" + ")" * 1000 + " }}",
    "{{ x" + " | default(1)" * 300 + " }}",
    "{{ a" + ".b" * 300 + " }}",
])
def test_deeply_nested_template_is_a_problem_not_a_crash(text: str) -> None:
    assert syntax_problems(text) == ["template nested too deeply"]
    with pytest.raises(TemplateError):
        render(text, scope({"x": 1, "a": {}}))


@pytest.mark.parametrize(("text", "tag"), [
    ('{% include "/etc/passwd" %}', "include"),
    ('{% extends "base" %}', "extends"),
    ('{% import "m" as m %}', "import"),
])
def test_templates_cannot_load_other_files(text: str, tag: str) -> None:
    assert syntax_problems(text) == [
        f"'{{% {tag} %}}' is not available: templates cannot load other files"]


def test_sandbox_escape_in_a_playbook_value_runs_nothing(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    value = "{{ cycler.__init__.__globals__.os.popen('touch " + str(canary) + "').read() }}"
    for text in (value, "echo " + value):
        with pytest.raises(TemplateError, match="unsafe template operation"):
            render(text, scope({}))
    s = scope({"evil": value})
    with pytest.raises(TemplateError, match="unsafe template operation"):
        render("{{ evil }}", s)
    assert not canary.exists()
