"""Check ``-e`` variables against what the run's playbooks declare (their play ``vars``).

Load stage, called by ``inputs.load_inputs`` before any host is contacted. A
play's ``vars`` are the variables it documents, with their defaults. An extra
variable whose value contradicts the type of a declared default (an integer
default given ``abc``, a boolean one given ``maybe``) is an input error (exit
4). One that no play declares and no template of the run reads is most likely
a typo: it gives a warning naming the closest declared variable, and the run
goes on (an inventory variable, ``ansible_*`` and ``remedy_*`` settings and
remedy's own names are known without a declaration).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runner.errors import InputError, Location, Problem, suggest
from runner.load import templating
from runner.model import Playbook

_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
_SETTINGS = ("ansible_", "remedy_")


def check_extra_vars(
    books: Sequence[Playbook], extra: Mapping[str, Any], known: Iterable[str]
) -> tuple[str, ...]:
    """Warnings for undeclared extra variables.

    ``known``: the names defined or read elsewhere (inventory, remedy's own, templates).

    Raises:
        InputError: a value contradicts the type of a declared default (one problem per variable).
    """
    declared = {name: (book, play) for book in books for play in book.plays for name in play.vars}
    problems = [p for name, value in extra.items() if name in declared
                for p in _contradictions(name, value, books)]
    if problems:
        raise InputError(problems)
    skip = set(known) | set(declared)
    return tuple(
        f"-e {name}: no playbook of the run declares or reads it, so it changes nothing"
        + suggest(name, declared)
        for name in extra if name not in skip and not name.startswith(_SETTINGS))


def _contradictions(name: str, value: Any, books: Sequence[Playbook]) -> list[Problem]:
    """One problem for ``value`` if it contradicts the type of a play's default for ``name``."""
    for book in books:
        for play in book.plays:
            if name not in play.vars:
                continue
            default = play.vars[name]
            kind = _mismatch(default, value)
            if kind:
                return [Problem(Location(f"-e {name}={value}"),
                                f"{value!r} is not {kind}, as {book.name} declares {name} "
                                f"(default {default!r}, {play.location})",
                                f"give {kind} ({_example(default)}), or leave -e {name} out for the default")]
    return []


def _mismatch(default: Any, value: Any) -> str:
    """The kind ``value`` should be, when it contradicts ``default``'s type; "" when it fits."""
    if isinstance(value, str) and templating.is_template(value):
        return ""  # rendered on the host: its type is known only then
    if isinstance(default, bool):
        return "" if templating.to_bool(value) is not None else "a boolean"
    if isinstance(default, int):
        fits = isinstance(value, int) and not isinstance(value, bool) or \
            isinstance(value, str) and _INT.fullmatch(value.strip()) is not None
        return "" if fits else "an integer"
    if isinstance(default, float):
        fits = isinstance(value, (int, float)) and not isinstance(value, bool) or \
            isinstance(value, str) and _FLOAT.fullmatch(value.strip()) is not None
        return "" if fits else "a number"
    return ""


def _example(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    return f"e.g. {default}"

