"""Strict YAML loading with a source location for every value.

Services layer: the first stage of the data flow. ``load_file`` returns plain
Python values, except that mappings are ``MarkedDict`` and sequences are
``MarkedList``, which remember where each key and item came from.

Rejected, each as a ``LoadError`` naming file, line and column: files larger
than ``MAX_FILE_BYTES``, non-UTF-8 bytes, NUL, empty or multi-document files,
syntax errors, any explicit tag except the standard ``!!str``-family and
``!unsafe``, duplicate keys, nesting deeper than ``MAX_DEPTH``, and alias
expansion beyond a budget (alias bombs). YAML 1.1 traps are closed: only
``true``/``false`` are booleans (``yes``/``no``/``on``/``off`` stay strings),
sexagesimal numbers (``12:30``) stay strings, and an unquoted number with a
leading zero (``mode: 0644``, which YAML 1.1 reads as 420) is an error that
shows the quoted fix.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from runner.errors import LoadError, Location, Problem

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
#: Alias expansion may add at most this many nodes beyond the document's own.
ALIAS_BUDGET = 10_000

#: libyaml's parser, when PyYAML was built with it.
_CParser: Any
try:
    from yaml import cyaml

    _CParser = getattr(cyaml, "CParser", None)
except ImportError:  # pragma: no cover - PyYAML without libyaml
    _CParser = None


class UnsafeText(str):
    """A string marked ``!unsafe``: used literally, never rendered as a template."""

    __slots__ = ()


class MarkedDict(dict[Any, Any]):
    """A mapping that knows the location of itself, its keys and its values."""

    __slots__ = ("loc", "_key_locs", "_value_locs")

    def __init__(self, loc: Location) -> None:
        super().__init__()
        self.loc = loc
        self._key_locs: dict[Any, Location] = {}
        self._value_locs: dict[Any, Location] = {}

    def key_loc(self, key: Any) -> Location:
        return self._key_locs.get(key, self.loc)

    def value_loc(self, key: Any) -> Location:
        return self._value_locs.get(key, self.key_loc(key))

    def set_marked(self, key: Any, value: Any, key_loc: Location, value_loc: Location) -> None:
        self[key] = value
        self._key_locs[key] = key_loc
        self._value_locs[key] = value_loc


class MarkedList(list[Any]):
    """A sequence that knows the location of itself and of each item."""

    __slots__ = ("loc", "_item_locs")

    def __init__(self, loc: Location) -> None:
        super().__init__()
        self.loc = loc
        self._item_locs: list[Location] = []

    def item_loc(self, index: int) -> Location:
        if 0 <= index < len(self._item_locs):
            return self._item_locs[index]
        return self.loc

    def append_marked(self, value: Any, loc: Location) -> None:
        self.append(value)
        self._item_locs.append(loc)


def location_of(value: Any, default: Location) -> Location:
    """The location of a marked container, or ``default``."""
    return getattr(value, "loc", default)


# --- resolver: YAML 1.2-like core schema -----------------------------------

_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9_]*|0x[0-9a-fA-F_]+|0o[0-7_]+)$")
_LEADING_ZERO = re.compile(r"^[-+]?0[0-9_]+$")
_FLOAT = re.compile(
    r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
    r"|[0-9][0-9_]*[eE][-+]?[0-9]+|\.(?:inf|Inf|INF)|[-+]\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_NULL = {"", "~", "null", "Null", "NULL"}
_STANDARD_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null", "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq", "!unsafe", "tag:remedy:implicit",
}
_PLAIN = "tag:yaml.org,2002:str"
#: The resolver's tag for a scalar without an explicit tag (``!!str`` keeps ``_PLAIN``).
_IMPLICIT = "tag:remedy:implicit"
_SPECIAL_FLOATS = {".inf": float("inf"), ".Inf": float("inf"), ".INF": float("inf"),
                   ".nan": float("nan"), ".NaN": float("nan"), ".NAN": float("nan")}


class _Resolver(yaml.resolver.BaseResolver):
    """Tags every untagged scalar as ``_IMPLICIT``; ``_Builder`` types them itself."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode:
            return _IMPLICIT
        if kind is yaml.SequenceNode:
            return "tag:yaml.org,2002:seq"
        return "tag:yaml.org,2002:map"


if _CParser is not None:

    class _Composer(_CParser, _Resolver):  # type: ignore[misc]
        """libyaml's parser and composer with remedy's resolver."""

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            _Resolver.__init__(self)

else:  # pragma: no cover

    class _Composer(  # type: ignore[no-redef]
        yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser,
        yaml.composer.Composer, _Resolver,
    ):
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)
            _Resolver.__init__(self)


class _Builder:
    """Turns a composed node tree into marked Python values, collecting problems."""

    def __init__(self, file: str, node_count: int | None) -> None:
        self.file = file
        self.problems: list[Problem] = []
        # Without aliases (node_count None) a document cannot grow while it is built.
        self.budget = float("inf") if node_count is None else node_count + ALIAS_BUDGET
        self.built = 0

    def loc(self, node: yaml.Node) -> Location:
        mark = node.start_mark
        return Location(self.file, mark.line + 1, mark.column + 1)

    def build(self, node: yaml.Node, depth: int = 0) -> Any:
        self.built += 1
        if self.built > self.budget:
            raise _Abort(Problem(
                self.loc(node), "alias expansion exceeds the budget (possible alias bomb)",
                "avoid deeply nested anchors and aliases; write the values out"))
        if depth >= MAX_DEPTH:  # the root is level 1
            raise _Abort(Problem(self.loc(node), f"nesting deeper than {MAX_DEPTH} levels",
                                 "flatten the structure"))
        tag = node.tag
        if tag not in _STANDARD_TAGS:
            shown = "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith("tag:yaml.org,2002:") \
                else tag
            self.problems.append(Problem(
                self.loc(node), f"the tag {shown} is not allowed",
                "remove the tag: remedy loads plain data and never constructs objects from YAML"))
            return None
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, depth)
        if isinstance(node, yaml.SequenceNode):
            result = MarkedList(self.loc(node))
            for item in node.value:
                result.append_marked(self.build(item, depth + 1), self.loc(item))
            return result
        return self.scalar(node)

    def scalar(self, node: yaml.Node) -> Any:
        value: str = node.value
        if node.tag == "!unsafe":
            return UnsafeText(value)
        if node.tag == _IMPLICIT:
            return value if getattr(node, "style", None) else self.plain_scalar(node, value)
        return self.tagged_scalar(node)

    def tagged_scalar(self, node: yaml.Node) -> Any:
        value: str = node.value
        tag = node.tag
        if tag == _PLAIN:
            return value
        if tag == "tag:yaml.org,2002:int" and _INT.match(value):
            number = _number(value)
            if isinstance(number, int):
                return number
        if tag == "tag:yaml.org,2002:float" and (_FLOAT.match(value) or _INT.match(value)):
            number = _number(value, as_float=True)
            if number is not None:
                return number
        if tag == "tag:yaml.org,2002:bool" and value in _BOOL:
            return _BOOL[value]
        if tag == "tag:yaml.org,2002:null" and value in _NULL:
            return None
        kind = tag.rsplit(":", 1)[-1]
        self.problems.append(Problem(self.loc(node), f"{value!r} is not a valid {kind} (tag !!{kind})",
                                     "remove the tag, or quote the value to keep it a string"))
        return value

    def plain_scalar(self, node: yaml.Node, value: str) -> Any:
        if value in _NULL:
            return None
        if value in _BOOL:
            return _BOOL[value]
        if _LEADING_ZERO.match(value):
            octal = set(value) <= set("+-01234567_")
            reading = f" (YAML 1.1 reads it as octal, the number {int(value.replace('_', ''), 8)})" \
                if octal else ""
            self.problems.append(Problem(
                self.loc(node),
                f"unquoted number {value} with a leading zero is ambiguous{reading}",
                f'quote it: "{value}"'))
            return value
        if _INT.match(value) or _FLOAT.match(value):
            number = _number(value)
            return value if number is None else number
        return value

    def mapping(self, node: yaml.MappingNode, depth: int) -> MarkedDict:
        result = MarkedDict(self.loc(node))
        for key_node, value_node in self.flatten_merges(node):
            key = self.build(key_node, depth)
            if isinstance(key, (MarkedDict, MarkedList)):
                self.problems.append(Problem(self.loc(key_node), "a mapping key must be a scalar"))
                continue
            if key in result:
                first = result.key_loc(key)
                self.problems.append(Problem(
                    self.loc(key_node), f"duplicate key {key!r} (first defined at line {first.line})",
                    "remove one of them; YAML would silently keep only the last"))
                continue
            result.set_marked(key, self.build(value_node, depth + 1),
                              self.loc(key_node), self.loc(value_node))
        return result

    def flatten_merges(self, node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node]]:
        """Apply ``<<`` merge keys: explicit keys win over merged ones."""
        own: list[tuple[yaml.Node, yaml.Node]] = []
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == "<<" and not key_node.style:
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for source in sources:
                    if not isinstance(source, yaml.MappingNode):
                        self.problems.append(Problem(self.loc(source), "a << merge needs a mapping"))
                        continue
                    merged.extend(self.flatten_merges(source))
            else:
                own.append((key_node, value_node))
        own_keys = {k.value for k, _ in own if isinstance(k, yaml.ScalarNode)}
        seen: set[str] = set()
        result = list(own)
        for key_node, value_node in merged:
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if name in own_keys or name in seen:
                continue
            if name is not None:
                seen.add(name)
            result.append((key_node, value_node))
        return result


def _number(text: str, *, as_float: bool = False) -> int | float | None:
    """The number a core-schema scalar denotes, or None when Python cannot read it (``0x_``)."""
    if text.lstrip("+-") in _SPECIAL_FLOATS:
        special = _SPECIAL_FLOATS[text.lstrip("+-")]
        return -special if text.startswith("-") else special
    digits = text.replace("_", "")
    try:
        if _INT.match(text):
            number = int(digits, 0)
            return float(number) if as_float else number
        return float(digits)
    except ValueError:
        return None


class _Abort(Exception):  # noqa: N818 - internal control flow
    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(problem.message)


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


def load_text(text: str, name: str) -> Any:
    """Load one YAML document from text."""
    composer = None
    try:
        composer = _Composer(text)  # the pure-Python reader checks characters here
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
    if node is None or (isinstance(node, yaml.ScalarNode) and node.value in _NULL and not node.style):
        raise LoadError.at(Location(name, 1, 1), "file is empty",
                           "a playbook is a list of plays; an inventory a mapping or INI")
    distinct = _check_aliases(node, name) if "*" in text else None  # no '*', no alias
    builder = _Builder(name, distinct)
    try:
        value = builder.build(node)
    except _Abort as abort:
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
