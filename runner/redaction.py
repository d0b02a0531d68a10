"""Secret values and the mask applied to every output.

Services layer. A ``Redactor`` holds secret strings (passwords, ``no_log``
data, secret module arguments) with their shell-quoted, base64 and
URL-encoded forms, and replaces each with ``********`` in any text or nested
value. The console, the JSON document, JUnit and the audit log all pass
through one redactor.
"""

from __future__ import annotations

import base64
import shlex
import threading
import urllib.parse
from collections.abc import Iterable
from typing import Any

MASK = "********"
MIN_SECRET_LENGTH = 4


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
