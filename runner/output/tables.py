"""Plain text that fits a terminal: tables in tabulate's "simple" format, wrapped lines, short paths.

Output stage, below every renderer that prints a table. ``terminal_width``
is how wide the text may be (``COLUMNS``, else the terminal, else 100);
``table`` wraps the cells of the columns it may narrow, paths shortened in the
middle first (``…/etc/coze/config.yaml``), and never cuts a value; ``wrap``
does the same for a line of free text; ``text_lines`` keeps the line breaks of
a text shown in a table cell or a progress line. Wide characters count as two
columns.
"""

from __future__ import annotations

import functools
import os
import re
import textwrap
import unicodedata
from collections.abc import Sequence
from typing import Any, TextIO

from runner.errors import printable
from runner.imports import import_without

#: How wide output is when neither ``COLUMNS`` nor a terminal says (a pipe, a file).
DEFAULT_WIDTH = 100
_NARROWEST = 12  # a wrapped column is never narrower than this
_PATH = re.compile(r"(?<![\w.~])/[^\s:;,()'\"/]+(?:/[^\s:;,()'\"/]+){3,}")


def terminal_width(stream: TextIO | None = None) -> int:
    """Columns the output may use: ``COLUMNS``, else the terminal of ``stream``, else 100."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if stream is not None and stream.isatty():
            return os.get_terminal_size(stream.fileno()).columns or DEFAULT_WIDTH
    except (OSError, ValueError):
        pass
    return DEFAULT_WIDTH


def short_paths(text: str) -> str:
    """``text`` with every path of more than three parts shortened to its last three: ``…/a/b/c``."""
    return _PATH.sub(lambda m: "…/" + "/".join(m.group(0).rsplit("/", 3)[1:]), text)


def wrap(text: str, width: int, *, indent: str = "", hang: str = "    ") -> list[str]:
    """``text`` as lines of at most ``width`` columns (``indent`` first, ``hang`` after); nothing cut.

    A path too long for a line of its own is shortened in the middle.
    """
    room = width - len(indent + hang)
    words = [short_paths(w) if cell_width(w) > room else w for w in text.split()]
    return textwrap.wrap(" ".join(words), width, initial_indent=indent, subsequent_indent=indent + hang,
                         break_on_hyphens=False, break_long_words=False) or [indent]


def table(rows: list[list[Any]], headers: list[str], *, width: int | None = None,
          narrow: Sequence[int] = ()) -> str:
    """``rows`` under ``headers`` in tabulate's "simple" format, wide (CJK) characters counted as two.

    With ``width``, the columns numbered in ``narrow`` share what the others
    leave of it: their cells are wrapped (paths shortened in the middle first).
    """
    if width is not None and narrow:
        rows = _fitted(rows, headers, width, list(narrow))
    text: str = _tabulate()(rows, headers=headers, tablefmt="simple")
    return text


def _fitted(rows: list[list[Any]], headers: list[str], width: int, narrow: list[int]) -> list[list[Any]]:
    """``rows`` with the cells of the ``narrow`` columns wrapped so the table fits ``width``."""
    natural = [max(_widest(str(cell)) for cell in [headers[i], *(r[i] for r in rows)])
               for i in range(len(headers))]
    room = width - 2 * (len(headers) - 1) - sum(w for i, w in enumerate(natural) if i not in narrow)
    if sum(natural[i] for i in narrow) <= room:
        return rows
    widths, left = {}, sorted(narrow, key=lambda i: natural[i])
    while left:  # the narrowest columns keep their width; the rest share what is left equally
        share = max(_NARROWEST, room // len(left))
        index = left.pop(0)
        widths[index] = min(natural[index], share)
        room -= widths[index]
    fitted = []
    for row in rows:
        fitted.append([_cell(str(cell), widths[i]) if i in widths else cell for i, cell in enumerate(row)])
    return fitted


def _widest(text: str) -> int:
    return max((cell_width(line) for line in text.splitlines()), default=0)


def _cell(text: str, width: int) -> str:
    """``text`` wrapped to ``width``, its own line breaks kept."""
    lines = []
    for line in text.splitlines() or [text]:
        if cell_width(line) <= width:
            lines.append(line)
            continue
        line = short_paths(line)
        lines.extend(textwrap.wrap(line, width, break_on_hyphens=False) or [line])
    return "\n".join(lines)


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
