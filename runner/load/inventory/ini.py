"""Ansible INI inventory files: sections, host lines, ``key=value`` vars.

Load stage, one of the two file parsers that ``sources`` calls: it reads
``[group]``, ``[group:vars]`` and ``[group:children]`` sections into the
``builder``, types values as Ansible does (a Python literal, or else the text),
and reports groups that are referenced but never defined.
"""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from dataclasses import dataclass, field
from typing import Any

from runner.errors import Location, suggest
from runner.load.inventory.builder import Builder, expand_entry

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUP_LINE = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")


@dataclass
class _IniState:
    """Where an INI parse is: the section, and the groups referenced before definition."""

    path: str
    group: str = "ungrouped"
    kind: str = "hosts"
    pending: dict[str, tuple[str, Location, list[str]]] = field(default_factory=dict)


def parse_ini(builder: Builder, path: str, lines: list[str]) -> None:
    state = _IniState(path)
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        location = Location(path, number)
        section = _SECTION.match(line)
        if section:
            _ini_section(builder, state, section.group(1), section.group(2) or "hosts", location)
        elif line.startswith("[") and line.endswith("]"):
            builder.problems.add(
                location,
                f"invalid section header {line}",
                "a section is [group], [group:vars] or [group:children], no spaces",
            )
            state.kind = "skip"
        elif state.kind == "hosts":
            _ini_host_line(builder, state, line, location)
        elif state.kind == "vars":
            _ini_var_line(builder, state, line, location)
        elif state.kind == "children":
            _ini_child_line(builder, state, line, location)
    for name, (kind, location, parents) in state.pending.items():
        known = suggest(name, builder.groups)
        if kind == "vars":
            builder.problems.add(
                location,
                f"section [{name}:vars] is for group {name!r}, which is not defined{known}",
                f"define it with a [{name}] section",
            )
        else:
            builder.problems.add(
                location,
                f"section [{parents[-1]}:children] names group {name!r}, which is not defined{known}",
                f"define it with a [{name}] section",
            )


def _ini_section(builder: Builder, state: _IniState, name: str, kind: str, location: Location) -> None:
    if kind not in ("hosts", "children", "vars"):
        builder.problems.add(
            location,
            f"unknown section kind [{name}:{kind}]" + suggest(kind, ["children", "vars"]),
            "sections are [group], [group:vars] and [group:children]",
        )
        state.kind = "skip"
        return
    state.group, state.kind = name, kind
    if name not in builder.groups and kind == "vars" and name not in state.pending:
        state.pending[name] = ("vars", location, [])
    builder.add_group(name, location)
    if name in state.pending and kind != "vars":
        pending_kind, _, parents = state.pending.pop(name)
        for parent in parents if pending_kind == "children" else []:
            builder.add_child(parent, name, location)


def _ini_host_line(builder: Builder, state: _IniState, line: str, location: Location) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as error:
        builder.problems.add(location, f"cannot parse host line: {error}", "close the quote")
        return
    entry = tokens[0] if tokens else ""
    names = expand_entry(builder, entry, location)
    if names is None:
        return
    if entry.endswith(":") and names[1] is None:
        builder.problems.add(location, f"host {entry!r} ends with ':'", "write host:port, e.g. web1:2222")
        return
    if entry == "---":
        builder.problems.add(location, "'---' in an INI inventory", "is this YAML? name the file .yml")
        return
    values: dict[str, Any] = {}
    for token in tokens[1:]:
        key, equals, text = token.partition("=")
        if not equals:
            builder.problems.add(
                location,
                f"expected key=value after the host name, got {token!r}",
                "quote values that contain spaces: key='a b'",
            )
            return
        values[key] = _ini_value(builder, text, location)
    for name in names[0]:
        host = builder.add_host(name, state.group, names[1], location, state.path)
        for key, value in values.items():
            builder.set_var(host, key, value, location)


def _ini_var_line(builder: Builder, state: _IniState, line: str, location: Location) -> None:
    key, equals, text = line.partition("=")
    if not equals:
        builder.problems.add(location, f"expected key=value in [{state.group}:vars], got {line!r}")
        return
    group = builder.groups[state.group]
    builder.set_var(group, key.strip(), _ini_value(builder, text.strip(), location), location)


def _ini_child_line(builder: Builder, state: _IniState, line: str, location: Location) -> None:
    match = _GROUP_LINE.match(line)
    if not match:
        builder.problems.add(location, f"expected a group name in [{state.group}:children], got {line!r}")
        return
    child = match.group(1)
    if child in builder.groups:
        builder.add_child(state.group, child, location)
    elif child in state.pending:
        state.pending[child][2].append(state.group)
    else:
        state.pending[child] = ("children", location, [state.group])


def _ini_value(builder: Builder, text: str, location: Location) -> Any:
    """Ansible's INI typing: a Python literal (1, 1.0, True, None, [1, 2], {'a': 1}) or else the text."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    except (TypeError, MemoryError, RecursionError):
        builder.problems.add(location, f"cannot read the value {text[:40]!r}", "quote it")
        return text
    return _ini_coerce(value)


def _ini_coerce(value: Any) -> Any:
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_ini_coerce(v) for v in value]
    if isinstance(value, dict):
        return {_ini_coerce(k): _ini_coerce(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if value is Ellipsis or isinstance(value, complex):
        return "..." if value is Ellipsis else str(value)
    return value
