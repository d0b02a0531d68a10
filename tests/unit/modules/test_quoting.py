"""Quoting and mode arithmetic checked against the real thing: a local sh and chmod."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.modules.attributes import mode_after, normalized
from runner.modules.base import operand, quote

# Text a POSIX argv can carry: anything but NUL.
ARG_TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=60)


@settings(max_examples=150, deadline=None)
@given(ARG_TEXT)
def test_quote_round_trips_through_a_real_sh(text: str) -> None:
    printed = subprocess.run(["sh", "-c", f"printf %s {quote(text)}"], capture_output=True, check=True)
    assert printed.stdout == text.encode("utf-8", "surrogateescape")


@settings(max_examples=50, deadline=None)
@given(ARG_TEXT.filter(lambda t: t and "\n" not in t and t not in (".", "..")))
def test_operand_names_the_same_file_even_with_a_leading_dash(name: str) -> None:
    printed = subprocess.run(["sh", "-c", f"printf %s {operand(name)}"], capture_output=True, check=True)
    shown = printed.stdout.decode("utf-8", "surrogateescape")
    assert shown == name or (name.startswith("-") and shown == f"./{name}")


CLAUSE = st.builds(
    lambda who, actions: who + "".join(actions),
    st.sampled_from(["", "u", "g", "o", "a", "ug", "go", "uo", "ugo"]),
    st.lists(
        st.builds(
            lambda op, perms: op + perms,
            st.sampled_from("+-="),
            st.one_of(st.sampled_from(["u", "g", "o"]), st.text("rwxXst", max_size=4)),
        ),
        min_size=1,
        max_size=3,
    ),
)
SYMBOLIC = st.lists(CLAUSE, min_size=1, max_size=3).map(",".join)


def _real_chmod(path: Path, start: int, mode: str) -> int:
    os.chmod(path, start)
    subprocess.run(["chmod", "--", mode, str(path)], check=True, capture_output=True)
    return stat.S_IMODE(path.stat().st_mode)


@settings(max_examples=300, deadline=None)
@given(start=st.integers(0, 0o7777), mode=SYMBOLIC)
def test_symbolic_mode_of_a_file_matches_chmod(
    tmp_path_factory: pytest.TempPathFactory, start: int, mode: str
) -> None:
    path = tmp_path_factory.mktemp("m") / "f"
    path.write_text("")
    expected = _real_chmod(path, start, normalized(mode))
    assert mode_after(start, mode, is_dir=False) == expected, (oct(start), mode)


@settings(max_examples=300, deadline=None)
@given(start=st.integers(0, 0o7777), mode=SYMBOLIC)
def test_symbolic_mode_of_a_directory_matches_chmod(
    tmp_path_factory: pytest.TempPathFactory, start: int, mode: str
) -> None:
    path = tmp_path_factory.mktemp("m") / "d"
    path.mkdir()
    expected = _real_chmod(path, start, normalized(mode))
    os.chmod(path, 0o700)  # let pytest clean up
    assert mode_after(start, mode, is_dir=True) == expected, (oct(start), mode)


@settings(max_examples=100, deadline=None)
@given(start=st.integers(0, 0o7777), target=st.integers(0, 0o7777))
def test_five_digit_octal_sets_exactly_that_mode_even_on_directories(
    tmp_path_factory: pytest.TempPathFactory, start: int, target: int
) -> None:
    path = tmp_path_factory.mktemp("m") / "d"
    path.mkdir()
    got = _real_chmod(path, start, f"{target:05o}")
    os.chmod(path, 0o700)
    assert got == target
