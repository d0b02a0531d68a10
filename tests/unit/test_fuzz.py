"""Fuzzing the input path: any bytes give a value or an ``InputError``, never a crash.

Three sources of inputs: arbitrary bytes; YAML-ish text from a small grammar
(keys, scalars, block and flow collections, anchors, aliases, tags, comments,
broken indentation); and playbook-shaped documents with wrong types, dumped
by PyYAML and then mutated. Each goes through ``load_bytes``,
``load_playbook`` and ``remedy validate`` with a per-example deadline.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from runner.cli.program import main
from runner.errors import InputError, Location, ProblemCollector, TemplateError
from runner.load import templating
from runner.load.playbook import PLAY_KEYS, load_playbook
from runner.load.taskread import TASK_KEYS
from runner.load.yamlfile import load_bytes
from runner.model import Playbook

FUZZ = settings(max_examples=250, deadline=2000, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MODULE_NAMES = ["command", "shell", "debug", "assert", "file", "copy", "set_fact", "service", "stat"]
ARG_NAMES = ["cmd", "msg", "that", "path", "mode", "state", "dest", "content", "name", "src", "var"]

# --- the grammar -------------------------------------------------------------------

TRICKY_SCALARS = [
    "true", "false", "yes", "no", "on", "off", "null", "~", "0644", "644", "08", "0", "-0",
    "12:30", "3.10", ".inf", "-.inf", ".nan", "0x1F", "0o17", "0b1", "1e3", "1_000", "0x_", "1_",
    "''", '""', "'it''s'", '"esc \\x41 \\u263a"', "'unclosed", '"unclosed', "{{ x }}",
    '"{{ x.__class__ }}"', "\"{{ '{0.__class__}'.format(1) }}\"", "'{{ cycler.__init__ }}'",
    '"{% for i in x %}{{ i }}{% endfor %}"', "'{{ x '", "*a", "*missing", "&a v", "!!str 1",
    "!!int nine", "!!float 1", "!!bool yes", "!!null x", "!unsafe '{{ x }}'",
    "!!python/object/apply:os.system ['true']", "!!binary aGk=", "!foo x", "!!set {a}",
    "- x", "[", "]", "{", "}", ":", "? x", "#c", "%YAML 1.1", "---", "...", "a: b", "@x", "`x",
    "|", ">-", "\t", " ", "\u00e9", "\u202e", "\x1b[31m", "\\", "rm -rf /{{ dir }}",
]
KEYS = sorted(PLAY_KEYS | TASK_KEYS) + MODULE_NAMES + ARG_NAMES + ["<<", "? k", "'q'", "k k", "1", "-"]

scalars = st.one_of(
    st.sampled_from(TRICKY_SCALARS),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
keys = st.one_of(st.sampled_from(KEYS), st.from_regex(r"[a-z_]{1,8}", fullmatch=True))
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(st.tuples(keys, children), max_size=4),
    ),
    max_leaves=25,
)


@st.composite
def yamlish_text(draw: st.DrawFn) -> str:
    """A tree rendered as YAML-ish text with random styles, anchors, tags and slips."""

    def render(node: Any, indent: int) -> str:
        pad = " " * indent
        prefix = draw(st.sampled_from(["", "", "", "&a ", "!!str ", "!unsafe ", "!!map ", "!x "]))
        if isinstance(node, str):
            return prefix + node
        if draw(st.booleans()):  # flow style
            if node and isinstance(node[0], tuple):
                inner = ", ".join(f"{k}: {render(v, 0)}" for k, v in node)
                return prefix + "{" + inner + "}"
            return prefix + "[" + ", ".join(render(v, 0) if not isinstance(v, tuple) else v[0]
                                            for v in node) + "]"
        step = draw(st.sampled_from([2, 2, 2, 1, 4, 0]))
        lines = []
        for item in node:
            if isinstance(item, tuple):
                lines.append(f"{pad}{item[0]}:" + ("\n" + render(item[1], indent + step)
                                                   if isinstance(item[1], list) and item[1]
                                                   else " " + render(item[1], 0)))
            else:
                lines.append(f"{pad}- " + (render(item, indent + 2).lstrip()
                                           if isinstance(item, list) else render(item, 0)))
        if not lines:
            return prefix + "[]"
        return prefix.strip() + ("\n" if prefix.strip() else "") + "\n".join(lines)

    text = render(draw(trees), 0)
    if draw(st.booleans()):
        text = draw(st.sampled_from(["---\n", "# c\n", "\ufeff", "%YAML 1.2\n---\n", ""])) + text
    if draw(st.booleans()):
        text += draw(st.sampled_from(["\n---\n- x\n", "\n...\n", "\n\t- tab\n", "\n  bad: indent\n", ""]))
    return text


# --- playbook-shaped documents ------------------------------------------------------

values = st.one_of(
    st.sampled_from([None, True, False, 0, 644, 3.1, -1, "", "yes", "0644", "{{ x }}", "12:30",
                     "{{ ''.__class__ }}", "echo hi", [], {}, ["a"], {"a": 1}]),
    st.text(max_size=8),
    st.integers(),
)


@st.composite
def playbook_documents(draw: st.DrawFn) -> Any:
    def task() -> dict[str, Any]:
        result: dict[str, Any] = {}
        module = draw(st.sampled_from(MODULE_NAMES + ["comand", "block"]))
        if module == "block":
            result["block"] = [task() for _ in range(draw(st.integers(0, 2)))]
        else:
            result[module] = draw(st.one_of(values, st.dictionaries(st.sampled_from(ARG_NAMES), values,
                                                                     max_size=3)))
        for key in draw(st.lists(st.sampled_from(sorted(TASK_KEYS - {"block", "rescue", "always"})),
                                 max_size=4, unique=True)):
            result[key] = draw(values)
        return result

    plays = []
    for _ in range(draw(st.integers(0, 3))):
        play: dict[str, Any] = {"hosts": draw(st.sampled_from(["all", "all", "all", "web:&db", 5, ["a"]]))}
        for section in draw(st.lists(st.sampled_from(["tasks", "handlers", "diagnose", "verify"]),
                                     max_size=2, unique=True)):
            play[section] = [task() for _ in range(draw(st.integers(0, 3)))]
        for key in draw(st.lists(st.sampled_from(sorted(PLAY_KEYS)), max_size=2, unique=True)):
            play.setdefault(key, draw(values))
        plays.append(play)
    return draw(st.one_of(st.just(plays), values)) if draw(st.integers(0, 9)) == 0 else plays


@st.composite
def mutated_playbooks(draw: st.DrawFn) -> bytes:
    data = yaml.safe_dump(draw(playbook_documents()), sort_keys=False).encode()
    for _ in range(draw(st.integers(0, 3))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["delete", "insert", "replace"]))
        byte = draw(st.sampled_from([b" ", b"\t", b":", b"-", b"'", b'"', b"{", b"[", b"*", b"&",
                                     b"!", b"\n", b"0", b"\x00", b"\xff", b"#"]))
        if kind == "delete":
            data = data[:at] + data[at + 1:]
        elif kind == "insert":
            data = data[:at] + byte + data[at:]
        else:
            data = data[:at] + byte + data[at + 1:]
    return data


# --- the properties ------------------------------------------------------------------

def load_or_input_error(data: bytes) -> None:
    try:
        load_bytes(data, "fuzz.yml")
    except InputError as error:
        assert error.problems
        assert error.render()


def playbook_or_input_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "fuzz.yml"
        path.write_bytes(data)
        try:
            book = load_playbook(path)
        except InputError as error:
            assert error.problems
            assert error.render()
        else:
            assert isinstance(book, Playbook)


def validate_exit_code(data: bytes) -> int:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "fuzz.yml"
        path.write_bytes(data)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["validate", str(path)])
        assert "Traceback" not in err.getvalue()
        assert "internal error" not in err.getvalue(), err.getvalue()
        return code


@FUZZ
@given(st.binary(max_size=512))
def test_arbitrary_bytes_load_or_raise_an_input_error(data: bytes) -> None:
    load_or_input_error(data)


@FUZZ
@given(yamlish_text())
def test_yamlish_text_loads_or_raises_an_input_error(text: str) -> None:
    load_or_input_error(text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(yamlish_text())
def test_yamlish_text_is_a_playbook_or_an_input_error(text: str) -> None:
    playbook_or_input_error(text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(mutated_playbooks())
def test_playbook_shaped_documents_are_a_playbook_or_an_input_error(data: bytes) -> None:
    playbook_or_input_error(data)


@FUZZ
@given(st.one_of(mutated_playbooks(), yamlish_text().map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_validate_exits_0_or_4_only(data: bytes) -> None:
    assert validate_exit_code(data) in (0, 4)


@settings(max_examples=40, deadline=2000, derandomize=True)
@given(st.integers(2, 12), st.integers(2, 12))
def test_nested_aliases_stay_within_time_and_memory(width: int, depth: int) -> None:
    lines = ["a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    for level in range(1, depth):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    tracemalloc.start()
    try:
        load_or_input_error("\n".join(lines).encode())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024


# --- templates -----------------------------------------------------------------------

TEMPLATE_TOKENS = [
    "{{", "}}", "{%", "%}", "{#", "#}", " ", "x", "r", "r.rc", "1", "'s'", '"q"', "(", ")", "[", "]",
    ",", ".", "|", "default(1)", "quote", "int", "from_json", "attr('__class__')", "__class__",
    "format", "'{0.__class__}'.format(x)", "cycler", "range(10)", "+", "-", "*", "/", "//", "%",
    "==", "and", "not", "is", "defined", "in", "if", "else", "for i in x", "endfor", "endif",
    "set y = 1", "raw", "endraw", "include 'f'", "x['k']", "lipsum", "namespace()", "~",
]
templates = st.lists(st.sampled_from(TEMPLATE_TOKENS), max_size=16).map("".join)


@FUZZ
@given(templates)
def test_template_text_is_checked_and_rendered_or_a_template_error(text: str) -> None:
    problems = ProblemCollector()
    templating.check_syntax(text, Location("fuzz.yml", 1, 1), problems)
    templating.check_expression(text, Location("fuzz.yml", 1, 1), problems)
    templating.undeclared(text)
    assume("range(" not in text or "*" not in text)  # a playbook author may ask for a big list
    scope = templating.Scope([({"x": [1, "a"], "r": {"rc": 0}}, True)])
    try:
        templating.render(text, scope)
    except TemplateError as error:
        assert error.problems
