"""Secret values and the mask applied to every output.

Services layer. A ``Redactor`` holds secret strings (passwords, secret
variables, secret module arguments) with their shell-quoted, base64 and
URL-encoded forms, and replaces each with ``********`` in any text or nested
value. ``Redactor.result`` is what a task's result looks like to every output:
a ``no_log`` result is concealed (``conceal``) and every secret is masked in
the rest, once, when the result is recorded; the console, the JSON document,
JUnit, saved plans and the audit log then pass through the same redactor.
``secret_values`` finds the secrets among a host's variables: values tagged
``!secret`` and those of the variables ``remedy_secret_vars`` names.
"""

from __future__ import annotations

import base64
import shlex
import threading
import urllib.parse
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from runner.results import CommandResult, Diff, TaskResult

MASK = "********"
MIN_SECRET_LENGTH = 4
#: What a ``no_log`` task's message becomes in every output.
NO_LOG_MESSAGE = "(hidden by no_log)"


class Redactor:
    """Masks registered secrets; thread-safe."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._forms: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if not secret or len(secret) < MIN_SECRET_LENGTH:
            return
        forms = {secret, shlex.quote(secret), urllib.parse.quote(secret),
                 urllib.parse.quote_plus(secret), base64.b64encode(secret.encode()).decode()}
        with self._lock:
            self._forms = sorted(set(self._forms) | forms, key=len, reverse=True)

    def text(self, value: str) -> str:
        return _mask(value, self._forms)

    def value(self, value: Any) -> Any:
        """Mask secrets inside strings of any nested structure (a copy; ``value`` itself if none)."""
        return _masked(value, self._forms) if self._forms else value

    def result(self, result: TaskResult) -> TaskResult:
        """``result`` as every output shows it: concealed if ``no_log``, every secret masked."""
        result = conceal(result)
        forms = self._forms
        if not forms:
            return result
        return replace(
            result, name=_mask(result.name, forms), message=_mask(result.message, forms),
            diffs=tuple(Diff(_mask(d.path, forms), _mask(d.before, forms), _mask(d.after, forms))
                        for d in result.diffs),
            commands=tuple(_masked_command(c, forms) for c in result.commands),
            data=_masked(dict(result.data), forms))


def conceal(result: TaskResult) -> TaskResult:
    """A ``no_log`` result without what its task ran, printed, changed or registered.

    Its message becomes ``NO_LOG_MESSAGE``; of its data only the flags
    (``changed``, ``failed``, ...) stay. Other results are returned as they are.
    """
    if not result.no_log:
        return result
    return replace(result, message=NO_LOG_MESSAGE if result.message else "", diffs=(), commands=(),
                   data={k: v for k, v in result.data.items() if isinstance(v, bool)})


def _masked_command(command: CommandResult, forms: list[str]) -> CommandResult:
    return replace(command, command=_mask(command.command, forms), stdout=_mask(command.stdout, forms),
                   stderr=_mask(command.stderr, forms))


def _mask(text: str, forms: list[str]) -> str:
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    return text


def _masked(value: Any, forms: list[str]) -> Any:
    if isinstance(value, str):
        return _mask(value, forms)
    if isinstance(value, dict):
        return {_masked(k, forms): _masked(v, forms) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v, forms) for v in value]
    return value
