"""YAML (and JSON) inventory files: nested ``hosts``, ``children`` and ``vars``.

Load stage, one of the two file parsers that ``sources`` calls: it walks the
``MarkedDict`` that ``runner.load.yamlfile`` returns and adds its groups, hosts and
variables to the ``builder``, each problem at the line of its key. Inventory
plugin configurations are refused.
"""

from __future__ import annotations

from typing import Any

from runner.errors import Location, suggest
from runner.load.inventory.builder import Builder, expand_entry
from runner.load.marked import MarkedDict

_GROUP_KEYS = ("hosts", "children", "vars")


def parse_yaml(builder: Builder, path: str, data: Any) -> None:
    if not isinstance(data, MarkedDict):
        builder.problems.add(
            Location(path, 1),
            "a YAML inventory must be a mapping of groups",
            "start with 'all:' and put hosts, children and vars under it",
        )
        return
    if "plugin" in data:
        builder.problems.add(
            data.key_loc("plugin"),
            "inventory plugin configurations are not supported",
            "export the plugin's hosts with 'ansible-inventory --list' first",
        )
        return
    for name in data:
        _yaml_group(builder, path, name, data[name], data.key_loc(name))


def _yaml_group(builder: Builder, path: str, name: Any, body: Any, location: Location) -> str | None:
    if not isinstance(name, str) or not name:
        builder.problems.add(location, f"group name {name!r} must be a non-empty string")
        return None
    if body is not None and not isinstance(body, MarkedDict):
        builder.problems.add(
            location,
            f"group {name!r} must be a mapping of hosts, children and vars, not {_kind(body)}",
            "indent its entries under it",
        )
        return None
    group = builder.add_group(name, location)
    for key in body or {}:
        assert isinstance(body, MarkedDict)
        value, where = body[key], body.key_loc(key)
        if key not in _GROUP_KEYS:
            builder.problems.add(
                where,
                f"unknown key {key!r} in group {name!r}" + suggest(str(key), _GROUP_KEYS),
                "a group has hosts, children and vars",
            )
            continue
        if isinstance(value, str):
            value = {value: None}
        if value is None:
            continue
        if not isinstance(value, dict):
            builder.problems.add(
                where,
                f"'{key}' of group {name!r} must be a mapping, not {_kind(value)}",
                f"write '{key}:' with 'name:' entries under it",
            )
            continue
        marked = value if isinstance(value, MarkedDict) else None
        for item in value:
            at = marked.key_loc(item) if marked else where
            if key == "vars":
                builder.set_var(group, item, value[item], at)
            elif key == "children":
                child = _yaml_group(builder, path, item, value[item], at)
                if child is not None:
                    builder.add_child(name, child, at)
            else:
                _yaml_host(builder, path, name, item, value[item], at)
    return name


def _yaml_host(builder: Builder, path: str, group: str, entry: Any, body: Any, location: Location) -> None:
    if not isinstance(entry, str):
        builder.problems.add(location, f"host name {entry!r} must be a string", f'quote it: "{entry}"')
        return
    if body and not isinstance(body, dict):
        builder.problems.add(
            location,
            f"vars of host {entry!r} must be a mapping, not {_kind(body)}",
            "write 'name: value' pairs under the host",
        )
        return
    names = expand_entry(builder, entry, location)
    if names is None:
        return
    marked = body if isinstance(body, MarkedDict) else None
    for name in names[0]:
        host = builder.add_host(name, group, names[1], location, path)
        for key, value in (body or {}).items():
            builder.set_var(host, key, value, marked.key_loc(key) if marked else location)


def _kind(value: Any) -> str:
    """How a value's type reads in a message."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return f"the value {value!r}"
