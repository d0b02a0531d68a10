"""Which values of a host's variables are secret: ``remedy_secret_vars`` patterns and ``!secret`` values.

Plan stage, used by ``hosts`` before any host is contacted: every secret a
host's variables, task variables and arguments hold is known before the run
starts, so the run's ``Redactor`` masks it in every output.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from runner.errors import InputError, Location, TemplateError
from runner.load import templating
from runner.load.marked import SecretText

#: The variable that names secret variables: a list of names and glob patterns.
SECRET_VARS = "remedy_secret_vars"  # noqa: S105 - the name of a variable, not a secret


#: Connection variables whose values are always secret.
ALWAYS_SECRET = ("ansible_password", "ansible_ssh_pass", "ansible_become_password",
                 "ansible_become_pass")


def secret_patterns(variables: Mapping[str, Any], where: Location) -> tuple[str, ...]:
    """The names and glob patterns of secret variables: ``ALWAYS_SECRET`` and ``remedy_secret_vars``.

    Raises:
        InputError: ``remedy_secret_vars`` is not a list of names, at ``where``.
    """
    value = variables.get(SECRET_VARS, [])
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise InputError.at(where, f"{SECRET_VARS} must be a list of variable names or glob patterns, "
                            f"not {value!r}"[:200], f'write it as {SECRET_VARS}: [db_password, "*_token"]')
    return (*ALWAYS_SECRET, *value)


def secret_values(variables: Mapping[str, Any], patterns: Iterable[str], *,
                  render: bool = False) -> Iterator[str]:
    """The secret values among ``variables``, as the redactor should mask them.

    Secret are every string tagged ``!secret`` and the whole value of each
    variable whose name matches one of ``patterns``. With ``render``, a
    matching value that is a template is also given as it renders from
    ``variables``, when it renders from them alone.
    """
    patterns = tuple(patterns)
    for name, value in variables.items():
        named = any(fnmatch.fnmatchcase(str(name), pattern) for pattern in patterns)
        yield from _strings(value, every=named)
        if named and render and any(templating.is_template(text) for text in _strings(value, every=True)):
            try:
                yield from _strings(templating.Scope([(variables, True)])[name], every=True)
            except TemplateError:
                pass  # it needs a task's result: its secret parts are registered on their own


def host_secrets(variables: Mapping[str, Any], where: Location) -> Iterator[str]:
    """The secret values of one host's merged ``variables``, templates rendered where they can be.

    Raises:
        InputError: ``remedy_secret_vars`` is not a list of names, at ``where``.
    """
    return secret_values(variables, secret_patterns(variables, where), render=True)


def _strings(value: Any, *, every: bool) -> Iterator[str]:
    """Strings (and numbers, as text) inside ``value``: all of them, or only those tagged ``!secret``."""
    if isinstance(value, SecretText) or (every and isinstance(value, str)):
        yield str(value)
    elif every and isinstance(value, (int, float)) and not isinstance(value, bool):
        yield str(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item, every=every)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item, every=every)
