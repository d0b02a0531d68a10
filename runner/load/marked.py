"""Marked values, and the strict schema that builds them from a composed YAML node tree.

Load stage, used by ``yamlfile``: ``load_text`` composes a document with
``Composer`` and turns its node tree into values with ``NodeBuilder``. Mappings
become ``MarkedDict`` and sequences ``MarkedList``, which remember where each
key and item came from (the stages import them to point errors at a line);
a string tagged ``!unsafe`` becomes ``UnsafeText``, which templating never renders,
and one tagged ``!secret`` becomes ``SecretText``, an ``UnsafeText`` that every
output masks.

The schema is YAML 1.2's core schema with YAML 1.1's traps closed: only
``true``/``false`` are booleans, sexagesimal numbers stay strings, and an
unquoted number with a leading zero is a problem that shows the quoted fix.
Inventories (and their ``group_vars``/``host_vars``) are read with
``yaml11=True``: plain scalars are typed as YAML 1.1 types them, as Ansible
does (``no`` is false, ``0644`` is the octal 420, ``12:30`` is 750, a date is
its ISO text, as ``ansible-inventory`` prints it).
The builder collects problems (forbidden tags, invalid tagged scalars,
duplicate or non-scalar keys, bad ``<<`` merges) rather than stopping at the
first, and aborts at once on nesting deeper than ``MAX_DEPTH`` or on alias
expansion beyond ``ALIAS_BUDGET``.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import yaml

from runner.errors import Location, Problem

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


class SecretText(UnsafeText):
    """A string marked ``!secret``: masked in every output, used literally like ``!unsafe``."""

    __slots__ = ()


class OctalInt(int):
    """An integer an inventory wrote in YAML 1.1 octal (``0750``): a ``mode`` takes it as that mode."""

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
NULL_WORDS = {"", "~", "null", "Null", "NULL"}
_STANDARD_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null", "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq", "!unsafe", "!secret", "tag:remedy:implicit",
}
#: Tags that mark a string scalar, and the type each makes of it.
_STRING_TAGS: dict[str, type[str]] = {"!unsafe": UnsafeText, "!secret": SecretText}
_PLAIN = "tag:yaml.org,2002:str"
#: The resolver's tag for a scalar without an explicit tag (``!!str`` keeps ``_PLAIN``).
_IMPLICIT = "tag:remedy:implicit"
#: YAML 1.1's resolver and constructors, which Ansible's inventory loader uses.
_YAML11_RESOLVER = yaml.resolver.Resolver()
_YAML11_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_YAML11_KINDS = ("bool", "int", "float", "null", "timestamp")
_SPECIAL_FLOATS = {".inf": float("inf"), ".Inf": float("inf"), ".INF": float("inf"),
                   ".nan": float("nan"), ".NaN": float("nan"), ".NAN": float("nan")}


class _Resolver(yaml.resolver.BaseResolver):
    """Tags every untagged scalar as ``_IMPLICIT``; ``NodeBuilder`` types them itself."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode:
            return _IMPLICIT
        if kind is yaml.SequenceNode:
            return "tag:yaml.org,2002:seq"
        return "tag:yaml.org,2002:map"


if _CParser is not None:

    class Composer(_CParser, _Resolver):  # type: ignore[misc]
        """libyaml's parser and composer with remedy's resolver."""

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            _Resolver.__init__(self)

else:  # pragma: no cover

    class Composer(  # type: ignore[no-redef]
        yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser,
        yaml.composer.Composer, _Resolver,
    ):
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)
            _Resolver.__init__(self)


class NodeBuilder:
    """Turns a composed node tree into marked Python values, collecting problems."""

    def __init__(self, file: str, node_count: int | None, *, yaml11: bool = False) -> None:
        self.file = file
        self.yaml11 = yaml11
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
            raise BuildAbort(Problem(
                self.loc(node), "alias expansion exceeds the budget (possible alias bomb)",
                "avoid deeply nested anchors and aliases; write the values out"))
        if depth >= MAX_DEPTH:  # the root is level 1
            raise BuildAbort(Problem(self.loc(node), f"nesting deeper than {MAX_DEPTH} levels",
                                 "flatten the structure"))
        tag = node.tag
        if tag not in _STANDARD_TAGS:
            shown = "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith("tag:yaml.org,2002:") \
                else tag
            self.problems.append(Problem(
                self.loc(node), f"the tag {shown} is not allowed",
                "remove the tag: remedy loads plain data and never constructs objects from YAML"))
            return None
        if tag == "!secret" and not isinstance(node, yaml.ScalarNode):
            self.problems.append(Problem(self.loc(node), "the tag !secret marks a single value",
                                         "tag each secret value on its own: key: !secret value"))
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
        if node.tag in _STRING_TAGS:
            return _STRING_TAGS[node.tag](value)
        if node.tag == _IMPLICIT:
            return value if getattr(node, "style", None) else self.plain_scalar(node, value)
        return self.tagged_scalar(node)

    def tagged_scalar(self, node: yaml.Node) -> Any:
        value: str = node.value
        tag = node.tag
        if tag == _PLAIN:
            return value
        if self.yaml11:
            return self.yaml11_scalar(node, tag)
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
        if tag == "tag:yaml.org,2002:null" and value in NULL_WORDS:
            return None
        return self.invalid(node, tag.rsplit(":", 1)[-1])

    def invalid(self, node: yaml.Node, kind: str) -> str:
        """Report a scalar that its explicit tag's type cannot read; it stays the text."""
        self.problems.append(Problem(self.loc(node), f"{node.value!r} is not a valid {kind} (tag !!{kind})",
                                     "remove the tag, or quote the value to keep it a string"))
        return str(node.value)

    def yaml11_scalar(self, node: yaml.Node, tag: str) -> Any:
        """A scalar as YAML 1.1 types it (``tag`` resolved or explicit); a date becomes its ISO text."""
        kind = tag.rsplit(":", 1)[-1]
        if kind not in _YAML11_KINDS:
            return node.value
        construct = _YAML11_CONSTRUCTOR.yaml_constructors[tag]
        try:
            value = construct(_YAML11_CONSTRUCTOR, yaml.ScalarNode(tag, node.value))
        except (ValueError, KeyError, TypeError, yaml.constructor.ConstructorError):
            return self.invalid(node, kind)
        if isinstance(value, datetime.date):
            return value.isoformat()
        if kind == "int" and _LEADING_ZERO.match(node.value):
            return OctalInt(value)
        return value

    def plain_scalar(self, node: yaml.Node, value: str) -> Any:
        if self.yaml11:
            tag: str = _YAML11_RESOLVER.resolve(  # type: ignore[no-untyped-call]
                yaml.ScalarNode, value, (True, False))
            return self.yaml11_scalar(node, tag)
        if value in NULL_WORDS:
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


class BuildAbort(Exception):  # noqa: N818 - internal control flow
    """Building stops at once (too deep, alias bomb); ``load_text`` turns it into a ``LoadError``."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(problem.message)
