"""Plain-text tables that fit a terminal: tabulate's "simple" format, wide characters counted as two.

Output stage, below every renderer that prints a table.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import Any

from runner.imports import import_without


def table(rows: list[list[Any]], headers: list[str]) -> str:
    """``rows`` under ``headers`` in tabulate's "simple" format, wide (CJK) characters counted as two."""
    text: str = _tabulate()(rows, headers=headers, tablefmt="simple")
    return text


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
