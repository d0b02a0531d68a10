"""File names in probe output: read back exactly, shown unambiguously.

Services layer, used by the probes that list names (``permissions``) or
print a link's target (``pathfact``). A name may hold any byte but NUL and
(within one component) ``/``: newlines, tabs, quotes, backslashes, bytes
that are not UTF-8. Such a probe lists names NUL-terminated and sends them
through ``base64`` (coreutils), so its output is ASCII whatever the names
hold; ``decoded`` gives back the text with every byte it has on the host
(undecodable bytes as surrogates, which ``raw`` turns back into bytes).
``shown`` writes a name for a message: as it is when plain, else quoted
with escapes.
"""

from __future__ import annotations

import base64

_SURROGATES = range(0xDC80, 0xDD00)
_SHOWN = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t"}


def decoded(text: str) -> str:
    """What a probe sent through ``base64``, as text (bytes that are not UTF-8 as surrogates).

    Raises:
        ValueError: ``text`` is not base64 (``binascii.Error``).
    """
    return base64.b64decode("".join(text.split()), validate=True).decode("utf-8", "surrogateescape")


def raw(name: str) -> bytes:
    """The bytes of a name that ``decoded`` read back."""
    return name.encode("utf-8", "surrogateescape")


def shown(name: str) -> str:
    """A name for a message: as it is if plain, else in double quotes with C-like escapes.

    Plain: printable, no backslash or double quote, no space at either end.
    Quoted: backslash, quote, newline and tab escaped as in C; bytes that are
    not UTF-8 as ``\\xNN``; other control characters as Python writes them.
    """
    if name.isprintable() and not any(c in name for c in '\\"') and name == name.strip(" "):
        return name
    return '"' + "".join(_shown_char(c) for c in name) + '"'


def _shown_char(char: str) -> str:
    if char in _SHOWN:
        return _SHOWN[char]
    if ord(char) in _SURROGATES:
        return f"\\x{ord(char) - 0xDC00:02x}"
    return char if char.isprintable() or char == " " else repr(char)[1:-1]
