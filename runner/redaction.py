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
        for form in self._forms:
            if form in value:
                value = value.replace(form, MASK)
        return value

    def value(self, value: Any) -> Any:
        """Mask secrets inside strings of any nested structure."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value
