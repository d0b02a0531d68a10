"""The strict YAML loader: values, locations, and every construct it refuses."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from runner.errors import InputError, LoadError, Location
from runner.load import yamlfile
from runner.load.yamlfile import (
    ALIAS_BUDGET,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MarkedDict,
    MarkedList,
    SecretText,
    UnsafeText,
    load_bytes,
    load_file,
    load_text,
    location_of,
)


def load(text: str) -> Any:
    return load_text(text, "f.yml")


def problem_of(text: str | bytes) -> str:
    with pytest.raises(LoadError) as caught:
        if isinstance(text, bytes):
            load_bytes(text, "f.yml")
        else:
            load(text)
    return caught.value.render()


# --- locations ---------------------------------------------------------------

def test_mapping_knows_the_location_of_each_key_and_value() -> None:
    data = load("a: 1\nbb:\n  - x\n")
    assert isinstance(data, MarkedDict)
    assert data.loc == Location("f.yml", 1, 1)
    assert data.key_loc("a") == Location("f.yml", 1, 1)
    assert data.value_loc("a") == Location("f.yml", 1, 4)
    assert data.key_loc("bb") == Location("f.yml", 2, 1)
    assert data.value_loc("bb") == Location("f.yml", 3, 3)


def test_sequence_knows_the_location_of_each_item() -> None:
    data = load("- one\n-   two\n- {k: v}\n")
    assert isinstance(data, MarkedList)
    assert [data.item_loc(i).line for i in range(3)] == [1, 2, 3]
    assert data.item_loc(1).column == 5
    assert isinstance(data[2], MarkedDict)
    assert data[2].loc == Location("f.yml", 3, 3)


def test_unknown_key_location_falls_back_to_the_mapping() -> None:
    data = load("a: 1\n")
    assert isinstance(data, MarkedDict)
    assert data.key_loc("missing") == data.loc
    assert data.value_loc("missing") == data.loc


def test_item_location_out_of_range_falls_back_to_the_list() -> None:
    data = load("- a\n")
    assert isinstance(data, MarkedList)
    assert data.item_loc(5) == data.loc
    assert data.item_loc(-1) == data.loc


def test_location_of_a_plain_value_is_the_default() -> None:
    default = Location("x", 9, 9)
    assert location_of("text", default) is default
    assert location_of(load("[1]"), default) == Location("f.yml", 1, 1)


def test_marked_containers_are_plain_dicts_and_lists() -> None:
    data = load("a: [1, {b: c}]\n")
    assert data == {"a": [1, {"b": "c"}]}


# --- merge keys and anchors ----------------------------------------------------

def test_merge_key_copies_the_anchored_mapping() -> None:
    data = load("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n")
    assert data["use"] == {"x": 1, "y": 3}


def test_merge_of_a_list_of_mappings_keeps_the_first_source_for_each_key() -> None:
    data = load("a: &a {x: 1}\nb: &b {x: 2, y: 2}\nc:\n  <<: [*a, *b]\n")
    assert data["c"] == {"x": 1, "y": 2}


def test_merge_of_a_scalar_is_an_error() -> None:
    assert "a << merge needs a mapping" in problem_of("a: &a 1\nb:\n  <<: *a\n")


def test_quoted_merge_key_is_an_ordinary_key() -> None:
    assert load('a: {"<<": 1}\n') == {"a": {"<<": 1}}


def test_aliases_within_the_budget_are_expanded() -> None:
    data = load("a: &a [1, 2]\nb: [*a, *a]\n")
    assert data["b"] == [[1, 2], [1, 2]]


def test_undefined_alias_is_a_syntax_error_with_a_hint() -> None:
    text = problem_of("a: *nothing\n")
    assert "f.yml:1:4" in text
    assert "define the anchor" in text


# --- scalars -------------------------------------------------------------------

@pytest.mark.parametrize("word", ["true", "True", "TRUE"])
def test_true_spellings_are_booleans(word: str) -> None:
    assert load(f"a: {word}") == {"a": True}


@pytest.mark.parametrize("word", ["false", "False", "FALSE"])
def test_false_spellings_are_booleans(word: str) -> None:
    assert load(f"a: {word}") == {"a": False}


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "n", "NO", "Yes", "ON"])
def test_yaml11_boolean_words_stay_strings(word: str) -> None:
    assert load(f"a: {word}") == {"a": word}


@pytest.mark.parametrize("text", ["a:", "a: ~", "a: null", "a: Null", "a: NULL"])
def test_null_spellings_are_none(text: str) -> None:
    assert load(text) == {"a": None}


@pytest.mark.parametrize(("text", "value"), [
    ("0", 0), ("-0", 0), ("+7", 7), ("42", 42), ("1_000", 1000), ("0x1F", 31), ("0o17", 15),
    ("-12", -12),
])
def test_integers_follow_the_core_schema(text: str, value: int) -> None:
    result = load(f"a: {text}")["a"]
    assert result == value
    assert type(result) is int


@pytest.mark.parametrize(("text", "value"), [
    ("1.5", 1.5), ("3.10", 3.1), ("-0.5", -0.5), (".5", 0.5), ("1e3", 1000.0), ("1.", 1.0),
    (".inf", math.inf), ("-.inf", -math.inf), ("+.Inf", math.inf),
])
def test_floats_follow_the_core_schema(text: str, value: float) -> None:
    result = load(f"a: {text}")["a"]
    assert result == value
    assert type(result) is float


def test_nan_is_a_float() -> None:
    assert math.isnan(load("a: .nan")["a"])


@pytest.mark.parametrize("text", ["12:30", "1:20:30", "0b101", "0x_", "1.2.3", "v1", "1e", "- 1"])
def test_other_numberlike_words_stay_strings(text: str) -> None:
    assert load(f"a: '{text}'") == load(f'a: "{text}"')
    if text != "- 1":
        assert load(f"a: {text}") == {"a": text}


def test_quoted_scalars_are_always_strings() -> None:
    assert load("a: '1'\nb: \"true\"\nc: 'null'\nd: '0644'\n") == {
        "a": "1", "b": "true", "c": "null", "d": "0644"}


def test_explicit_str_tag_keeps_a_plain_scalar_a_string() -> None:
    assert load("a: !!str 3.10\nb: !!str 0644\nc: !!str true\n") == {
        "a": "3.10", "b": "0644", "c": "true"}


def test_explicit_int_and_float_tags_convert() -> None:
    assert load("a: !!int '7'\nb: !!float 2\n") == {"a": 7, "b": 2.0}


def test_explicit_tag_that_does_not_fit_the_value_is_an_error() -> None:
    text = problem_of("a: !!int nine\n")
    assert "f.yml:1:4" in text
    assert "'nine' is not a valid int" in text


def test_block_scalars_keep_their_text() -> None:
    assert load("a: |\n  line 1\n  line 2\nb: >\n  folded\n  text\n") == {
        "a": "line 1\nline 2\n", "b": "folded text\n"}


# --- leading zeros -------------------------------------------------------------

def test_unquoted_octal_looking_number_is_an_error_that_shows_the_quoted_fix() -> None:
    text = problem_of("mode: 0644\n")
    assert "f.yml:1:7: unquoted number 0644 with a leading zero is ambiguous" in text
    assert "octal, the number 420" in text
    assert 'quote it: "0644"' in text


def test_leading_zero_that_is_not_octal_is_an_error_without_an_octal_reading() -> None:
    text = problem_of("port: 08080\n")
    assert "unquoted number 08080 with a leading zero is ambiguous" in text
    assert "octal" not in text


def test_a_lone_zero_and_a_decimal_below_one_are_fine() -> None:
    assert load("a: 0\nb: 0.25\n") == {"a": 0, "b": 0.25}


# --- unsafe --------------------------------------------------------------------

def test_unsafe_tag_gives_unsafe_text() -> None:
    value = load("a: !unsafe '{{ not_rendered }}'\n")["a"]
    assert isinstance(value, UnsafeText)
    assert value == "{{ not_rendered }}"


def test_unsafe_tag_on_a_plain_number_stays_text() -> None:
    value = load("a: !unsafe 0644\n")["a"]
    assert isinstance(value, UnsafeText)
    assert value == "0644"


def test_secret_tag_gives_secret_text_used_literally() -> None:
    loaded = load("a: !secret 'p{{w}}d'\nb: !secret 0042\nc: plain\n")
    assert isinstance(loaded["a"], SecretText) and isinstance(loaded["a"], UnsafeText)
    assert (loaded["a"], loaded["b"]) == ("p{{w}}d", "0042")
    assert not isinstance(loaded["c"], SecretText)


def test_secret_tag_on_a_mapping_or_a_list_is_refused() -> None:
    text = problem_of("a: !secret {x: 1}\nb: !secret [1]\n")
    assert "f.yml:1:4: the tag !secret marks a single value" in text
    assert "f.yml:2:4: the tag !secret marks a single value" in text
    assert "key: !secret value" in text


def test_tags_other_than_unsafe_and_secret_stay_refused() -> None:
    assert "the tag !vault is not allowed" in problem_of("a: !vault xyz\n")


# --- refused constructs ----------------------------------------------------------

def test_duplicate_key_names_both_lines() -> None:
    text = problem_of("a: 1\nb: 2\na: 3\n")
    assert "f.yml:3:1: duplicate key 'a' (first defined at line 1)" in text


def test_duplicate_key_through_a_merge_is_not_an_error() -> None:
    assert load("x: &x {a: 1}\ny:\n  <<: *x\n  a: 2\n")["y"] == {"a": 2}


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    with pytest.raises(LoadError) as caught:
        load("a: 1\na: 2\nb: 0644\nc: !foo x\n")
    assert len(caught.value.problems) == 3


@pytest.mark.parametrize("tag", [
    "!!python/object/apply:os.system", "!!python/name:os.system", "!!binary", "!!timestamp",
    "!!set", "!custom",
])
def test_non_data_tags_are_refused(tag: str) -> None:
    text = problem_of(f"a: {tag} x\n")
    assert "is not allowed" in text
    assert "f.yml:1:4" in text


def test_python_tag_constructs_nothing(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    with pytest.raises(LoadError):
        load(f"- !!python/object/apply:os.system ['touch {canary}']\n")
    assert not canary.exists()


def test_complex_mapping_key_is_refused() -> None:
    assert "a mapping key must be a scalar" in problem_of("? [a, b]\n: 1\n")


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    text = problem_of("\n".join(lines) + "\n")  # counted, not expanded (60 million nodes would be)
    assert "f.yml:5:4: aliases in this value expand to 66,430 nodes" in text
    assert "more than the 10,000 allowed" in text


def test_many_small_aliases_beyond_the_budget_are_refused() -> None:
    text = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\nb: [" + ",".join(["*a"] * 2000) + "]\n"
    assert "more than the 10,000 allowed" in problem_of(text)


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: [1, *a]}\n"])
def test_alias_inside_its_own_anchor_is_refused(text: str) -> None:
    assert "f.yml:1:4: an alias refers to its own anchor here" in problem_of(text)


def test_alias_expansion_just_inside_the_budget_is_accepted() -> None:
    item_count = ALIAS_BUDGET // 10
    text = "a: &a [" + ",".join(["1"] * 9) + "]\nb: [" + ",".join(["*a"] * (item_count - 1)) + "]\n"
    assert len(load(text)["b"]) == item_count - 1


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 5000])
def test_nesting_deeper_than_the_cap_is_refused(depth: int) -> None:
    text = problem_of("[" * depth + "]" * depth)
    assert f"nesting deeper than {MAX_DEPTH} levels" in text


def test_nesting_at_the_cap_is_accepted() -> None:
    value = load("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    for _ in range(MAX_DEPTH - 1):
        value = value[0]
    assert value == []


def test_deep_block_mappings_are_refused() -> None:
    text = "".join(" " * i + f"k{i}:\n" for i in range(200))
    assert "nesting deeper than" in problem_of(text)


def test_file_larger_than_the_cap_is_refused_before_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "big.yml"
    path.write_bytes(b"a: [" + b"1," * (MAX_FILE_BYTES // 2) + b"1]\n")

    def parsed(*_: object) -> None:
        raise AssertionError("the file was parsed")

    monkeypatch.setattr(yamlfile, "load_text", parsed)
    with pytest.raises(LoadError) as caught:
        load_file(path)
    assert f"file is larger than {MAX_FILE_BYTES // 1024} KiB" in caught.value.render()


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as caught:
        load_file(tmp_path / "absent.yml")
    assert "cannot read file" in caught.value.render()


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "--- ~\n"])
def test_empty_documents_are_refused(text: str) -> None:
    assert "file is empty" in problem_of(text)


def test_empty_quoted_string_is_a_document() -> None:
    assert load("''") == ""


def test_multiple_documents_are_refused_at_the_second_marker() -> None:
    text = problem_of("a: 1\n---\nb: 2\n")
    assert "f.yml:2:1: more than one YAML document" in text


# --- syntax errors -------------------------------------------------------------

def test_tab_indentation_points_at_the_tab() -> None:
    text = problem_of("a:\n\t- b\n")
    assert "f.yml:2:1" in text
    assert "indent with spaces, not tabs" in text


def test_unclosed_quote_points_at_the_opening_quote() -> None:
    text = problem_of('a: 1\nb: "never closed\nc: 3\n')
    assert "f.yml:2:4: unclosed quote" in text
    assert 'add the closing "' in text


def test_mapping_value_in_a_plain_scalar_has_a_hint() -> None:
    assert "quote a value that contains ': '" in problem_of("a: b: c\n")


def test_unclosed_flow_sequence_is_a_syntax_error_with_location() -> None:
    text = problem_of("a: [1, 2\nb: 3\n")
    assert "YAML syntax error" in text
    assert "f.yml:2:" in text


# --- encoding ------------------------------------------------------------------

def test_utf8_bom_is_accepted() -> None:
    assert load_bytes(b"\xef\xbb\xbfa: 1\n", "f.yml") == {"a": 1}


def test_utf8_text_is_accepted() -> None:
    assert load_bytes("a: caf\u00e9 \u2713\n".encode(), "f.yml") == {"a": "caf\u00e9 \u2713"}


def test_invalid_utf8_names_the_byte_and_its_position() -> None:
    text = problem_of(b"a: 1\nb: caf\xe9\n")
    assert "f.yml:2:7: invalid UTF-8 byte 0xe9" in text
    assert "save the file as UTF-8" in text


def test_utf16_file_is_refused() -> None:
    assert "invalid UTF-8 byte" in problem_of("a: 1\n".encode("utf-16"))


def test_nul_byte_is_refused_with_its_position() -> None:
    assert "f.yml:1:5: NUL byte in file" in problem_of(b"a: x\x00y\n")


def test_control_characters_are_refused_with_their_position() -> None:
    assert "f.yml:1:5: control character U+0007" in problem_of("a: x\x07y\n")
    assert "f.yml:2:4: control character U+001B" in problem_of("a: 1\nb: \x1b[31mred\n")


def test_escaped_control_characters_in_double_quotes_are_data() -> None:
    assert load('a: "\\x1b[31m"\n') == {"a": "\x1b[31m"}


def test_load_errors_are_input_errors_with_exit_code_4() -> None:
    with pytest.raises(InputError) as caught:
        load("a: 1\na: 2\n")
    assert caught.value.exit_code == 4
