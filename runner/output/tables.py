"""Plain-text tables that fit a terminal: tabulate's "simple" format, wide characters counted as two.

Output stage, below every renderer that prints a table; with ``text_lines``,
which keeps the line breaks of a text shown in a table cell or a progress line.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import Any

from runner.errors import printable
from runner.imports import import_without


def table(rows: list[list[Any]], headers: list[str]) -> str:
    """``rows`` under ``headers`` in tabulate's "simple" format, wide (CJK) characters counted as two."""
    text: str = _tabulate()(rows, headers=headers, tablefmt="simple")
    return text


def text_lines(text: str, *, width: int = 300, most: int = 20) -> list[str]:
    """``text`` as lines to show: its line breaks kept, control characters escaped.

    Blank lines at either end are dropped, each line is cut at ``width``
    characters and the whole after ``most`` lines (0: never), saying how many
    more there were.
    """
    lines = [printable(line.expandtabs(4).rstrip()) for line in text.strip("\n").splitlines()] or [""]
    lines = [line if len(line) <= width else line[: width - 3] + "..." for line in lines]
    if most and len(lines) > most:
        lines = [*lines[: most - 1], f"... ({len(lines) - most + 1} more lines)"]
    return lines


@functools.cache
def _tabulate() -> Any:
    """tabulate, with ``cell_width`` in place of the wcwidth package.

    tabulate measures wide characters with wcwidth when that is installed;
    importing wcwidth's tables costs ~20 ms, a tenth of a one-host run.
    ``unicodedata`` (built in, already loaded) answers the same question for
    what a table cell holds. The two attributes are set on the tabulate module
    itself, so other users of tabulate in this process measure the same way.
    """
    tabulate: Any = import_without("tabulate", "wcwidth")
    tabulate.wcwidth = _CellWidth  # the one module attribute tabulate measures with
    tabulate.WIDE_CHARS_MODE = True
    return tabulate.tabulate


def cell_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: 2 for wide and full-width characters, 0 for combining ones."""
    if text.isascii():
        return len(text)
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


class _CellWidth:
    """The one function tabulate calls on its ``wcwidth`` module."""

    wcswidth = staticmethod(cell_width)
