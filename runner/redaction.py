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
import re
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


# --- secrets by key name: config files and environments ------------------------------------

#: Words that make a key's value secret (case-insensitive, anywhere in the key):
#: ``db_password``, ``API_TOKEN``, ``client-secret``, ``private_key``, ``sentry_dsn``.
SECRET_KEY_WORDS = ("password", "passwd", "token", "secret", "key", "dsn", "credential")
_WORDS = "|".join(SECRET_KEY_WORDS)
#: A line ``key: value``, ``key = value``, ``KEY=value``, ``"key": "value",``, ``export KEY=v``,
#: ``# key: v`` or ``- key: v``.
_KEY_LINE = re.compile(r"(?P<head>\s*(?:#\s*)?(?:export\s+|-\s+)?[\"']?(?P<key>[A-Za-z0-9_.\-]+)[\"']?"
                       r"\s*[:=]\s*)(?P<value>.*?)(?P<tail>\s*,?\s*)")
#: ``key=value`` or ``"key": "value"`` inside a line (command lines, one-line JSON).
_KEY_INLINE = re.compile(rf"(?P<head>[\"']?[A-Za-z0-9_.\-]*(?:{_WORDS})[A-Za-z0-9_.\-]*[\"']?\s*[=:]\s*)"
                         r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;&}\"']+)", re.IGNORECASE)
#: The password of ``scheme://user:password@host`` (a DSN, a Redis or PostgreSQL URL).
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@]*:)(?P<value>[^\s/@]+)(?=@)")
#: A value that opens a block: the lines indented below the key are its value.
_BLOCK_OPENERS = ("", "|", ">", "|-", ">-", "|+", ">+", "[", "{")


def secret_key(name: str) -> bool:
    """Whether a key named ``name`` holds a secret (one of ``SECRET_KEY_WORDS`` is in it)."""
    lowered = name.lower()
    return any(word in lowered for word in SECRET_KEY_WORDS)


def mask_secret_keys(text: str) -> tuple[str, list[str]]:
    """``text`` (a config file, ``KEY=value`` lines) with the value of every secret key masked.

    A key is secret when ``secret_key`` says so; its value is masked on its line,
    and a key without a value on its line (a YAML mapping or list, a block
    scalar) has every more-indented line below it masked. Passwords in URLs
    (``postgresql://user:pw@host``) are masked anywhere. Returns the masked
    text and the values masked, unquoted, for a ``Redactor`` to mask elsewhere.
    """
    found: list[str] = []
    lines = text.split("\n")
    block: int | None = None  # indentation of the secret key whose block we are in
    for index, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if block is not None and (not line.strip() or indent > block):
            lines[index] = _mask_block_line(line, found)
            continue
        block = None
        match = _KEY_LINE.fullmatch(line)
        if match and secret_key(match["key"]):
            if match["value"].strip() in _BLOCK_OPENERS:
                block = indent
            else:
                lines[index] = match["head"] + _masked_value(match["value"], found) + match["tail"]
            continue
        lines[index] = _KEY_INLINE.sub(lambda m: m["head"] + _masked_value(m["value"], found), lines[index])
    masked, in_urls = mask_url_passwords("\n".join(lines))
    return masked, found + in_urls


def mask_url_passwords(text: str) -> tuple[str, list[str]]:
    """``text`` with the password of every ``scheme://user:password@host`` masked, and those passwords."""
    found: list[str] = []
    return _URL_PASSWORD.sub(lambda m: m["head"] + _masked_value(m["value"], found), text), found


def _mask_block_line(line: str, found: list[str]) -> str:
    """A line inside a secret key's block: keep its indentation and any ``- `` or ``key:``, mask the rest."""
    match = _KEY_LINE.fullmatch(line)
    if match and match["value"].strip():
        return match["head"] + _masked_value(match["value"], found) + match["tail"]
    stripped = line.lstrip()
    if not stripped or match:
        return line
    head = line[: len(line) - len(stripped)]
    if stripped.startswith("- "):
        head, stripped = head + "- ", stripped[2:]
    return head + _masked_value(stripped, found)


def _masked_value(value: str, found: list[str]) -> str:
    bare = value.strip().strip("\"'")
    if not bare or bare == MASK:
        return value
    found.append(bare)
    return MASK
