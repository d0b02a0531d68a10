"""Strict YAML loading with a source location for every value.

Load stage: the first stage of the data flow. ``load_file`` returns plain
Python values, except that mappings are ``MarkedDict`` and sequences are
``MarkedList``, which remember where each key and item came from.

Rejected, each as a ``LoadError`` naming file, line and column: files larger
than ``MAX_FILE_BYTES``, non-UTF-8 bytes, NUL, empty or multi-document files,
syntax errors, any explicit tag except the standard ``!!str``-family,
``!unsafe`` and ``!secret`` (on a single value), duplicate keys, nesting deeper than ``MAX_DEPTH``, and alias
expansion beyond a budget (alias bombs). YAML 1.1 traps are closed: only
``true``/``false`` are booleans (``yes``/``no``/``on``/``off`` stay strings),
sexagesimal numbers (``12:30``) stay strings, and an unquoted number with a
leading zero (``mode: 0644``, which YAML 1.1 reads as 420) is an error that
shows the quoted fix. Inventories ask for ``yaml11``: there plain scalars
are typed as YAML 1.1 (and so ``ansible-inventory``) types them.

The schema, the node builder and the marked containers live in ``marked``;
this module reads and checks the input, refuses recursive aliases and alias
bombs before anything is built, and turns PyYAML's errors into ``LoadError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from runner.errors import LoadError, Location
from runner.load.marked import ALIAS_BUDGET as ALIAS_BUDGET
from runner.load.marked import MAX_DEPTH as MAX_DEPTH
from runner.load.marked import NULL_WORDS, BuildAbort, Composer, NodeBuilder
from runner.load.marked import MarkedDict as MarkedDict
from runner.load.marked import MarkedList as MarkedList
from runner.load.marked import SecretText as SecretText
from runner.load.marked import UnsafeText as UnsafeText
from runner.load.marked import location_of as location_of

MAX_FILE_BYTES = 4 * 1024 * 1024


def load_file(path: str | Path) -> Any:
    """Load one YAML document strictly from ``path``.

    Raises:
        LoadError: the file is missing, too large, not UTF-8, empty, multi-document,
            malformed, or uses a forbidden construct.
    """
    name = str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise LoadError.at(Location(name), f"cannot read file: {error.strerror or error}") from None
    return load_bytes(data, name)


def load_bytes(data: bytes, name: str) -> Any:
    """Load one YAML document from bytes; ``name`` is used in error locations."""
    if len(data) > MAX_FILE_BYTES:
        raise LoadError.at(Location(name, 1), f"file is larger than {MAX_FILE_BYTES // 1024} KiB",
                           "split it into several files")
    text = _decode(data, name)
    return load_text(text, name)


def _decode(data: bytes, name: str) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise LoadError.at(Location(name, line, column),
                           f"invalid UTF-8 byte 0x{data[error.start]:02x}",
                           "save the file as UTF-8") from None
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        column = nul - (text.rfind("\n", 0, nul) + 1) + 1
        raise LoadError.at(Location(name, line, column), "NUL byte in file",
                           "remove the NUL character; is this a binary file?")
    return text


def load_text(text: str, name: str, *, yaml11: bool = False) -> Any:
    """Load one YAML document from text; ``yaml11`` types plain scalars as YAML 1.1 (inventories)."""
    composer = None
    try:
        composer = Composer(text)  # the pure-Python reader checks characters here
        node = composer.get_single_node()
    except yaml.MarkedYAMLError as error:
        raise _syntax_error(error, name, text) from None
    except yaml.reader.ReaderError as error:
        raise _reader_error(error, name, text) from None
    except yaml.YAMLError as error:
        raise LoadError.at(Location(name), f"YAML error: {error}") from None
    except RecursionError:
        raise LoadError.at(Location(name), f"nesting deeper than {MAX_DEPTH} levels",
                           "flatten the structure") from None
    finally:
        if composer is not None:
            composer.dispose()
    if node is None or (isinstance(node, yaml.ScalarNode) and node.value in NULL_WORDS and not node.style):
        raise LoadError.at(Location(name, 1, 1), "file is empty",
                           "a playbook is a list of plays; an inventory a mapping or INI")
    distinct = _check_aliases(node, name) if "*" in text else None  # no '*', no alias
    builder = NodeBuilder(name, distinct, yaml11=yaml11)
    try:
        value = builder.build(node)
    except BuildAbort as abort:
        raise LoadError([abort.problem]) from None
    except RecursionError:
        raise LoadError.at(Location(name), f"nesting deeper than {MAX_DEPTH} levels") from None
    if builder.problems:
        raise LoadError(builder.problems)
    return value


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_aliases(root: yaml.Node, name: str) -> int:
    """The number of distinct nodes, after refusing recursive aliases and alias bombs.

    Sizes are computed per distinct node (post-order, iterative), so a billion-leaf
    alias bomb is measured without being expanded.

    Raises:
        LoadError: an alias inside its own anchor, or aliases expanding to more than
            ``ALIAS_BUDGET`` extra nodes (pointing at the first value that does).
    """
    size: dict[int, int] = {}
    uses: dict[int, int] = {}
    path: set[int] = set()
    culprit: yaml.Node | None = None
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            path.discard(key)
            children = _children(node)
            aliased = False
            for child in children:
                uses[id(child)] = uses.get(id(child), 0) + 1
                aliased = aliased or uses[id(child)] > 1
            size[key] = 1 + sum(size[id(child)] for child in children)
            if aliased and culprit is None and size[key] > ALIAS_BUDGET:
                culprit = node
            continue
        if key in size:
            continue
        if key in path:
            raise LoadError.at(_location(node, name), "an alias refers to its own anchor here "
                               "(the value would be infinitely deep)",
                               "an alias (*name) may only refer to a finished anchor (&name)")
        path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)
    if size[id(root)] > len(size) + ALIAS_BUDGET:
        where = culprit or root
        raise LoadError.at(_location(where, name),
                           f"aliases in this value expand to {size[id(where)]:,} nodes, more than "
                           f"the {ALIAS_BUDGET:,} allowed (an alias bomb?)",
                           "write the values out, or nest fewer aliases")
    return len(size)


def _location(node: yaml.Node, name: str) -> Location:
    return Location(name, node.start_mark.line + 1, node.start_mark.column + 1)


def _reader_error(error: yaml.reader.ReaderError, name: str, text: str) -> LoadError:
    """A character YAML does not accept (control characters such as ESC or BEL)."""
    position = error.position if 0 <= error.position <= len(text) else 0
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    code = error.character if isinstance(error.character, int) else ord(str(error.character)[:1] or " ")
    return LoadError.at(Location(name, line, column),
                        f"control character U+{code:04X} is not allowed in YAML",
                        'remove it, or write it as an escape in a double-quoted string ("\\x1b")')


def _syntax_error(error: yaml.MarkedYAMLError, name: str, text: str) -> LoadError:
    mark = error.problem_mark or error.context_mark
    location = Location(name, mark.line + 1, mark.column + 1) if mark else Location(name)
    problem = error.problem or "syntax error"
    hint = ""
    if "exceeded maximum nesting depth" in problem:  # libyaml's own cap (newer releases)
        return LoadError.at(location, f"nesting deeper than {MAX_DEPTH} levels", "flatten the structure")
    if "expected a single document" in str(error.context or "") or "but found another document" in problem:
        return LoadError.at(location, "more than one YAML document in the file",
                            "keep one document per file (remove the extra '---')")
    context_mark = error.context_mark
    if "while scanning a quoted scalar" in str(error.context or "") and context_mark is not None:
        start = Location(name, context_mark.line + 1, context_mark.column + 1)
        return LoadError.at(start, f"unclosed quote: the string starting here never ends ({problem})",
                            f"add the closing {text[context_mark.index:context_mark.index + 1] or 'quote'}"
                            " at the end of the value")
    if mark and mark.index < len(text) and text[mark.index] == "\t":
        return LoadError.at(location, "a tab character is not allowed here: YAML indents with spaces only",
                            "indent with spaces, not tabs")
    if "tab" in problem:
        hint = "indent with spaces, not tabs"
    elif "mapping values are not allowed" in problem:
        hint = "quote a value that contains ': ', or fix the indentation"
    elif "found undefined alias" in problem or "found undefined" in problem:
        hint = "define the anchor (&name) before using the alias (*name)"
    context = f" ({error.context})" if error.context else ""
    return LoadError.at(location, f"YAML syntax error: {problem}{context}", hint)
