"""Inventories: Ansible INI and YAML files, directories and ``host1,host2,`` lists.

Stages layer: ``load_inventory`` reads every ``-i`` source, with the
``group_vars/`` and ``host_vars/`` beside it, into a frozen ``Inventory`` whose
``to_ansible_json()`` equals ``ansible-inventory --list`` and whose
``host_vars(name)`` merges variables with Ansible's precedence (lowest first):
``all`` inventory vars, other groups' inventory vars (by depth, then
``ansible_group_priority``, then name), ``group_vars/all``, other
``group_vars/`` files (same order), the host's inline vars, ``host_vars/``.
``runner.patterns.select_hosts`` selects hosts from it.

Where Ansible warns or silently skips, this module reports every problem of
every file at once as one ``InventoryError``: unparsable lines, unknown
sections or keys, undefined groups, group cycles, bad ranges, empty files,
invalid variable names, and host names, users and ports that must not reach
ssh. A host named ``localhost``, ``127.0.0.1`` or ``::1`` that is not in the
inventory exists implicitly with ``ansible_connection: local``, as in Ansible.
"""

from __future__ import annotations

import ast
import copy
import ipaddress
import os
import re
import shlex
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

from runner.errors import InventoryError, LoadError, Location, Problem, ProblemCollector, suggest
from runner.loader import MAX_FILE_BYTES, MarkedDict, load_text
from runner.patterns import (
    LOCALHOST_NAMES,
    HostPatternError,
    check_host_name,
    check_user,
    expand_ranges,
    split_port,
)

#: Variables remedy sets itself; an inventory may not define them.
MAGIC_VARS = frozenset(
    {
        "inventory_hostname",
        "inventory_hostname_short",
        "group_names",
        "groups",
        "hostvars",
        "inventory_dir",
        "inventory_file",
        "playbook_dir",
        "omit",
    }
)
_HOST_KEYS = ("ansible_host", "ansible_ssh_host")
_USER_KEYS = ("ansible_user", "ansible_ssh_user", "ansible_become_user")
_PORT_KEYS = ("ansible_port", "ansible_ssh_port")
_VARS_EXTENSIONS = ("", ".yml", ".yaml", ".json")
_YAML_SUFFIXES = (".yml", ".yaml", ".json")
_NOT_VAR_NAMES = frozenset({"True", "False", "None", "true", "false", "none", "not"})
_GROUP_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_IGNORED = re.compile(
    r"^\.|^host_vars$|^group_vars$|^vars_plugins$|(\.pyc|\.pyo|\.swp|\.bak|~|\.rpm"
    r"|\.md|\.txt|\.rst|\.orig|\.cfg|\.retry)$"
)


@dataclass(frozen=True)
class Host:
    """A host: its groups (all of them, lowest variable precedence first) and own vars."""

    name: str
    groups: tuple[str, ...]
    vars: Mapping[str, Any]  # inline vars, then host_vars/ files over them
    location: Location
    source: str | None = None  # the inventory file it was first found in
    implicit: bool = False


@dataclass(frozen=True)
class Group:
    """A group: direct hosts and child groups in file order, and its inventory-file vars."""

    name: str
    hosts: tuple[str, ...]
    children: tuple[str, ...]
    vars: Mapping[str, Any]  # from inventory files; group_vars/ files are in Inventory.group_files
    location: Location
    depth: int = 0
    priority: int = 1


@dataclass(frozen=True)
class Inventory:
    """The resolved inventory; ``hosts`` and ``groups`` keep inventory order."""

    hosts: Mapping[str, Host]
    groups: Mapping[str, Group]
    #: per ``-i`` source, the vars of each ``group_vars/`` entry, in source order
    group_files: tuple[Mapping[str, Mapping[str, Any]], ...] = ()
    #: ``host_vars/`` of the implicit localhost names, when not in ``hosts``
    implicit_files: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    localhost: str | None = None  # the first localhost-like host defined
    warnings: tuple[Problem, ...] = ()

    def get_host(self, name: str) -> Host | None:
        """The host called ``name``, the implicit localhost, or None."""
        if name in self.hosts:
            return self.hosts[name]
        if name not in LOCALHOST_NAMES:
            return None
        if self.localhost:
            return self.hosts[self.localhost]
        own = {"ansible_connection": "local", **self.implicit_files.get(name, {})}
        return Host(name, (), MappingProxyType(own), Location("<implicit localhost>"), implicit=True)

    def require_host(self, name: str) -> Host:
        """Like ``get_host`` but an unknown name is an ``InventoryError`` with a did-you-mean."""
        host = self.get_host(name)
        if host is None:
            raise InventoryError.at(
                Location("<host>"), f"no host named {name!r} in the inventory" + suggest(name, self.hosts)
            )
        return host

    def host_vars(self, name: str) -> dict[str, Any]:
        """The merged inventory vars of a host, as ``ansible-inventory --host`` shows them."""
        host = self.require_host(name)
        groups = [self.groups[g] for g in host.groups if g != "all"]
        merged: dict[str, Any] = dict(self.groups["all"].vars)
        for group in groups:
            merged.update(group.vars)
        for files in self.group_files:
            merged.update(files.get("all", {}))
        for files in self.group_files:
            for group in groups:
                merged.update(files.get(group.name, {}))
        merged.update(host.vars)
        return copy.deepcopy(merged)

    def host_json(self, name: str) -> dict[str, Any]:
        """Exactly ``ansible-inventory --host NAME`` (the implicit localhost without a Python path)."""
        return self.host_vars(name)

    def magic_vars(self, name: str) -> dict[str, Any]:
        """``inventory_hostname``, ``group_names``, ``groups`` and the other inventory magic vars."""
        host = self.require_host(name)
        try:
            ipaddress.ip_address(host.name)
            short = host.name
        except ValueError:
            short = host.name.split(".")[0]
        return {
            "inventory_hostname": host.name,
            "inventory_hostname_short": short,
            "group_names": sorted(g for g in host.groups if g != "all"),
            "groups": {g: list(members) for g, members in self._members.items()},
            "inventory_file": host.source,
            "inventory_dir": os.path.dirname(host.source) if host.source else None,
        }

    def group_hosts(self, name: str) -> tuple[str, ...]:
        """Every host of a group and its descendants, breadth first, as Ansible orders them."""
        return self._members[name]

    @cached_property
    def _members(self) -> dict[str, tuple[str, ...]]:
        return {name: self._walk_hosts(name) for name in self.groups}

    def _walk_hosts(self, name: str) -> tuple[str, ...]:
        order, level = [name], [name]
        while level:
            level = list(dict.fromkeys(c for g in level for c in self.groups[g].children if c not in order))
            order.extend(level)
        hosts = dict.fromkeys(h for g in order for h in self.groups[g].hosts if h in self.hosts)
        return tuple(hosts)

    def to_ansible_json(self) -> dict[str, Any]:
        """The document ``ansible-inventory --list`` prints (without its ``_meta.profile``)."""
        shown = set(self.group_hosts("all"))
        result: dict[str, Any] = {}
        for group in self.groups.values():
            entry: dict[str, Any] = {}
            hosts = [h for h in group.hosts if h in shown]
            if hosts and group.name != "all":
                entry["hosts"] = hosts
            if group.children:
                entry["children"] = list(group.children)
            if entry:
                result[group.name] = entry
        hostvars = {name: self.host_vars(name) for name in self.group_hosts("all")}
        result["_meta"] = {"hostvars": {name: v for name, v in hostvars.items() if v}}
        return result

    def restricted(self, keep: set[str] | frozenset[str]) -> Inventory:
        """The same inventory with only the hosts in ``keep`` (as ``--limit`` shows it)."""
        hosts = {name: host for name, host in self.hosts.items() if name in keep}
        groups = {
            name: replace(g, hosts=tuple(h for h in g.hosts if h in keep)) for name, g in self.groups.items()
        }
        return replace(
            self,
            hosts=MappingProxyType(hosts),
            groups=MappingProxyType(groups),
            localhost=self.localhost if self.localhost in keep else None,
        )


# --- building: a mutable mirror of Ansible's InventoryData ----------------------------


@dataclass
class _GroupDraft:
    name: str
    location: Location
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    priority: int = 1


@dataclass
class _HostDraft:
    name: str
    location: Location
    source: str | None
    port: int | None
    groups: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)


class _Builder:
    """Collects hosts, groups and problems from every source, then freezes them."""

    def __init__(self) -> None:
        self.problems = ProblemCollector()
        self.groups: dict[str, _GroupDraft] = {}
        self.hosts: dict[str, _HostDraft] = {}
        self.localhost: str | None = None
        for name in ("all", "ungrouped"):
            self.add_group(name, Location("<implicit>"))
        self.add_child("all", "ungrouped", Location("<implicit>"))

    def add_group(self, name: str, location: Location) -> _GroupDraft:
        if name not in self.groups:
            if not _GROUP_NAME.match(name):
                self.problems.add(
                    location,
                    f"invalid group name {name!r}",
                    "use letters, digits, '_', '.' and '-' (patterns use :,&!*~[])",
                )
            self.groups[name] = _GroupDraft(name, location)
        return self.groups[name]

    def add_host(
        self, name: str, group: str, port: int | None, location: Location, source: str | None
    ) -> _HostDraft:
        host = self.hosts.get(name)
        if host is None:
            problem = check_host_name(name)
            if problem:
                self.problems.add(
                    location,
                    problem,
                    "an inventory name is also the ssh address "
                    "unless ansible_host is set; use letters, digits, '._-'",
                )
            host = self.hosts[name] = _HostDraft(name, location, source, port)
            if port is not None:
                host.vars["ansible_port"] = port
            if name in LOCALHOST_NAMES and self.localhost is None:
                self.localhost = name
        elif port is not None and port != host.port:
            self.problems.add(
                location,
                f"host {name!r} gets port {port} here, but it was defined at "
                f"{host.location} with {'no port' if host.port is None else host.port}",
                "Ansible keeps the port of the first definition; set ansible_port instead",
            )
        draft = self.groups[group]
        if name not in draft.hosts:
            draft.hosts.append(name)
            host.groups.append(group)
        return host

    def add_child(self, parent: str, child: str, location: Location) -> None:
        if child in self.groups[parent].children:
            return
        path = self._path(child, parent)
        if path is not None:
            cycle = " -> ".join([parent, *path])
            self.problems.add(
                location,
                f"group cycle: {cycle}",
                "a group cannot be its own descendant; remove one :children entry",
            )
            return
        self.groups[parent].children.append(child)
        self.groups[child].parents.append(parent)

    def _path(self, start: str, goal: str) -> list[str] | None:
        """Group names from ``start`` down to ``goal`` through children, or None."""
        came_from: dict[str, str] = {start: start}
        queue = [start]
        for name in queue:
            if name == goal:
                path = [name]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return path[::-1]
            for child in self.groups[name].children:
                if child not in came_from:
                    came_from[child] = name
                    queue.append(child)
        return None

    def set_var(self, target: _GroupDraft | _HostDraft, key: Any, value: Any, location: Location) -> None:
        value = _plain(value)
        if not self.check_var(key, value, location):
            return
        if key == "ansible_group_priority" and isinstance(target, _GroupDraft):
            if isinstance(value, bool) or not re.fullmatch(r"-?[0-9]+", str(value)):
                self.problems.add(location, f"ansible_group_priority must be an integer, not {value!r}")
            else:
                target.priority = int(value)
            return
        target.vars[key] = value

    def check_var(self, key: Any, value: Any, location: Location) -> bool:
        """Whether ``key`` may be set; problems with ``value`` are reported, not fatal."""
        if not (isinstance(key, str) and key.isidentifier() and key.isascii() and key not in _NOT_VAR_NAMES):
            self.problems.add(
                location,
                f"invalid variable name {key!r}",
                "start with a letter or '_', then letters, digits and '_'",
            )
            return False
        if key in MAGIC_VARS:
            self.problems.add(
                location, f"{key!r} is a magic variable that remedy sets itself", "choose another name"
            )
            return False
        problem = _check_connection_var(key, value)
        if problem:
            self.problems.add(
                location,
                problem,
                "values that reach ssh must be plain names (templates are checked after rendering)",
            )
        return True

    def reconcile(self) -> None:
        """Ansible's rules: every group under ``all``; hosts without a group in ``ungrouped``."""
        for name in self.groups:
            if name != "all" and not self.groups[name].parents:
                self.add_child("all", name, self.groups[name].location)
        ungrouped = self.groups["ungrouped"]
        for host in self.hosts.values():
            others = set(host.groups) - {"all", "ungrouped"}
            if "ungrouped" in host.groups and others:
                ungrouped.hosts.remove(host.name)
                host.groups.remove("ungrouped")
            elif not others and "ungrouped" not in host.groups:
                ungrouped.hosts.append(host.name)
                host.groups.append("ungrouped")
            if host.name in self.groups:
                self.problems.add(
                    host.location,
                    f"{host.name!r} is both a host and a group",
                    "rename one: patterns and variables could not tell them apart",
                )

    def freeze(
        self, group_files: list[dict[str, dict[str, Any]]], host_files: list[dict[str, dict[str, Any]]]
    ) -> Inventory:
        depth: dict[str, int] = {"all": 0}

        def depth_of(name: str) -> int:
            if name not in depth:
                depth[name] = 1 + max(depth_of(p) for p in self.groups[name].parents)
            return depth[name]

        groups = {
            g.name: Group(
                g.name,
                tuple(g.hosts),
                tuple(g.children),
                MappingProxyType(g.vars),
                g.location,
                depth_of(g.name),
                g.priority,
            )
            for g in self.groups.values()
        }
        hosts = {}
        for draft in self.hosts.values():
            own = dict(draft.vars)
            for files in host_files:
                own.update(files.get(draft.name, {}))
            member = sorted(
                self._ancestors(draft.groups), key=lambda g: (groups[g].depth, groups[g].priority, g)
            )
            hosts[draft.name] = Host(
                draft.name, tuple(member), MappingProxyType(own), draft.location, draft.source
            )
        implicit = {
            name: {k: v for files in host_files for k, v in files.get(name, {}).items()}
            for name in LOCALHOST_NAMES
            if name not in hosts
        }
        return Inventory(
            MappingProxyType(hosts),
            MappingProxyType(groups),
            tuple(MappingProxyType(f) for f in group_files),
            MappingProxyType(implicit),
            self.localhost,
        )

    def _ancestors(self, names: list[str]) -> set[str]:
        found: set[str] = set()
        stack = list(names)
        while stack:
            name = stack.pop()
            if name not in found:
                found.add(name)
                stack.extend(self.groups[name].parents)
        return found


def _check_connection_var(key: str, value: Any) -> str:
    """An error message for an unsafe ``ansible_host``/``_user``/``_port`` value, or ''."""
    if isinstance(value, str) and "{{" in value:
        return ""
    if key in _HOST_KEYS:
        return check_host_name(value) if isinstance(value, str) else f"{key} must be a string"
    if key in _USER_KEYS:
        return check_user(str(value)) if isinstance(value, (str, int)) else f"{key} must be a string"
    if key in _PORT_KEYS:
        text = str(value)
        if isinstance(value, bool) or not text.isdigit() or not 0 < int(text) < 65536:
            return f"{key} must be a port number from 1 to 65535, not {value!r}"
    return ""


def _kind(value: Any) -> str:
    """How a value's type reads in a message."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return f"the value {value!r}"


def _plain(value: Any) -> Any:
    """Loader values without their location wrappers (``UnsafeText`` stays marked)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# --- sources -----------------------------------------------------------------------------


def load_inventory(paths: Sequence[str | Path]) -> Inventory:
    """Load and merge inventory sources as repeated ``-i`` options do in Ansible.

    Each source is an INI or YAML file, a directory of them, or a comma list
    (``localhost,`` or ``web1:2222,db1``).

    Raises:
        InventoryError: every problem found in every source, each with file and line.
    """
    builder = _Builder()
    if not paths:
        builder.problems.add(Location("<inventory>"), "no inventory given", "pass -i FILE")
    roots: list[Path] = []
    for raw in paths:
        text = str(raw)
        if "," in text and not os.path.exists(text):
            _parse_host_list(builder, text)
            continue
        path = Path(os.path.normpath(os.path.abspath(text)))
        if path.is_dir():
            if not _parse_dir(builder, path):
                builder.problems.add(Location(str(path)), "no inventory files in this directory")
        elif path.is_file():
            _parse_file(builder, path)
        else:
            builder.problems.add(
                Location(text),
                "inventory source does not exist",
                "give a file, a directory, or a comma list such as 'web1,web2,'",
            )
            continue
        roots.append(path if path.is_dir() else path.parent)
    builder.reconcile()
    names = [*builder.hosts, *(n for n in LOCALHOST_NAMES if n not in builder.hosts)]
    loaded = {
        root: (
            _vars_dir(builder, root / "group_vars", list(builder.groups)),
            _vars_dir(builder, root / "host_vars", names),
        )
        for root in dict.fromkeys(roots)
    }
    group_files = [loaded[root][0] for root in roots]  # a root given twice applies twice, as in Ansible
    host_files = [loaded[root][1] for root in roots]
    builder.problems.raise_if_any(InventoryError)
    inventory = builder.freeze(group_files, host_files)
    return replace(inventory, warnings=tuple(_unused_group_files(roots, builder.groups)))


def _parse_host_list(builder: _Builder, text: str) -> None:
    location = Location(f"<host list {text!r}>")
    for entry in (part.strip() for part in text.split(",")):
        if entry:
            name, port = split_port(entry)
            builder.add_host(name, "ungrouped", port, location, None)


def _parse_dir(builder: _Builder, directory: Path) -> bool:
    """Parse every inventory file under ``directory`` in name order; False if there is none."""
    found = False
    for name in sorted(os.listdir(directory)):
        if _IGNORED.search(name):
            continue
        path = directory / name
        if path.is_dir():
            found = _parse_dir(builder, path) or found
        elif path.is_file():
            _parse_file(builder, path)
            found = True
    return found


def _parse_file(builder: _Builder, path: Path) -> None:
    name = str(path)
    text = _read_text(builder, path)
    if text is None:
        return
    if not any(_meaningful(line) for line in text.splitlines()):
        builder.problems.add(
            Location(name, 1), "inventory file is empty", "list hosts (INI) or an 'all:' mapping (YAML)"
        )
        return
    if path.suffix == ".toml":
        builder.problems.add(
            Location(name), "TOML inventories are not supported", "convert it to YAML or INI"
        )
    elif text.startswith("#!") and os.access(path, os.X_OK):
        builder.problems.add(
            Location(name, 1),
            "inventory scripts are not supported",
            "save the script's --list output as a YAML or JSON file",
        )
    elif path.suffix in _YAML_SUFFIXES or (not path.suffix and _looks_like_yaml(text)):
        try:
            _parse_yaml(builder, name, load_text(text, name))
        except LoadError as error:
            builder.problems.extend(error)
    else:
        _parse_ini(builder, name, text.splitlines())


def _read_text(builder: _Builder, path: Path) -> str | None:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        builder.problems.add(Location(str(path)), f"cannot read file: {error.strerror or error}")
        return None
    if len(data) > MAX_FILE_BYTES or b"\x00" in data:
        problem = (
            "NUL byte in file (is this a binary file?)"
            if b"\x00" in data
            else f"file is larger than {MAX_FILE_BYTES // 1024} KiB"
        )
        builder.problems.add(Location(str(path)), problem)
        return None
    try:
        return data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        builder.problems.add(
            Location(str(path), line),
            f"invalid UTF-8 byte 0x{data[error.start]:02x}",
            "save the file as UTF-8",
        )
        return None


def _meaningful(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and stripped[0] not in "#;" and stripped not in ("---", "...")


def _looks_like_yaml(text: str) -> bool:
    """Whether an extensionless file's first meaningful line is YAML (``key:``, ``---``, ``{``)."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped == "---" or stripped.startswith("{"):
            return True
        if _meaningful(line):
            return re.match(r"""^("[^"]*"|'[^']*'|[^\s:=\[#;'"]+)\s*:(\s|$)""", stripped) is not None
    return False


# --- INI ---------------------------------------------------------------------------------

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUP_LINE = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")


@dataclass
class _IniState:
    """Where an INI parse is: the section, and the groups referenced before definition."""

    path: str
    group: str = "ungrouped"
    kind: str = "hosts"
    pending: dict[str, tuple[str, Location, list[str]]] = field(default_factory=dict)


def _parse_ini(builder: _Builder, path: str, lines: list[str]) -> None:
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


def _ini_section(builder: _Builder, state: _IniState, name: str, kind: str, location: Location) -> None:
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


def _ini_host_line(builder: _Builder, state: _IniState, line: str, location: Location) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as error:
        builder.problems.add(location, f"cannot parse host line: {error}", "close the quote")
        return
    entry = tokens[0] if tokens else ""
    names = _expand_entry(builder, entry, location)
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


def _expand_entry(builder: _Builder, entry: str, location: Location) -> tuple[list[str], int | None] | None:
    if not entry:
        builder.problems.add(location, "empty host name")
        return None
    name, port = split_port(entry)
    try:
        return expand_ranges(name), port
    except HostPatternError as error:
        builder.problems.add(location, str(error), error.hint)
        return None


def _ini_var_line(builder: _Builder, state: _IniState, line: str, location: Location) -> None:
    key, equals, text = line.partition("=")
    if not equals:
        builder.problems.add(location, f"expected key=value in [{state.group}:vars], got {line!r}")
        return
    group = builder.groups[state.group]
    builder.set_var(group, key.strip(), _ini_value(builder, text.strip(), location), location)


def _ini_child_line(builder: _Builder, state: _IniState, line: str, location: Location) -> None:
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


def _ini_value(builder: _Builder, text: str, location: Location) -> Any:
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


# --- YAML --------------------------------------------------------------------------------

_GROUP_KEYS = ("hosts", "children", "vars")


def _parse_yaml(builder: _Builder, path: str, data: Any) -> None:
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


def _yaml_group(builder: _Builder, path: str, name: Any, body: Any, location: Location) -> str | None:
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


def _yaml_host(builder: _Builder, path: str, group: str, entry: Any, body: Any, location: Location) -> None:
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
    names = _expand_entry(builder, entry, location)
    if names is None:
        return
    marked = body if isinstance(body, MarkedDict) else None
    for name in names[0]:
        host = builder.add_host(name, group, names[1], location, path)
        for key, value in (body or {}).items():
            builder.set_var(host, key, value, marked.key_loc(key) if marked else location)


# --- group_vars/ and host_vars/ --------------------------------------------------------


def _vars_dir(builder: _Builder, directory: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """The vars of each name from ``directory/NAME``, ``NAME.yml``, ``.yaml``, ``.json`` or ``NAME/``."""
    if not directory.exists():
        return {}
    if not directory.is_dir():
        builder.problems.add(Location(str(directory)), f"{directory.name} is not a directory")
        return {}
    entries = set(os.listdir(directory))
    found: dict[str, dict[str, Any]] = {}
    for name in names:
        paths = [directory / (name + ext) for ext in _VARS_EXTENSIONS if name + ext in entries]
        if len(paths) > 1:
            builder.problems.add(
                Location(str(paths[1])),
                f"{paths[1].name} is ignored because {paths[0].name} exists",
                "merge them into one file or directory",
            )
        if paths:
            found[name] = {}
            for file in _vars_files(paths[0]):
                found[name].update(_load_vars_file(builder, file))
    return found


def _vars_files(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    files: list[Path] = []
    for entry in sorted(path.iterdir()):
        if entry.name.startswith(".") or entry.name.endswith("~"):
            continue
        if entry.is_dir() and not entry.suffix:
            files.extend(_vars_files(entry))
        elif entry.is_file() and entry.suffix in _VARS_EXTENSIONS:
            files.append(entry)
    return files


def _load_vars_file(builder: _Builder, path: Path) -> dict[str, Any]:
    text = _read_text(builder, path)
    if text is None or not any(_meaningful(line) for line in text.splitlines()):
        return {}
    try:
        data = load_text(text, str(path))
    except LoadError as error:
        builder.problems.extend(error)
        return {}
    if not isinstance(data, MarkedDict):
        builder.problems.add(Location(str(path), 1), "a vars file must be a mapping of names to values")
        return {}
    result: dict[str, Any] = {}
    for key, value in data.items():
        value = _plain(value)
        if builder.check_var(key, value, data.key_loc(key)):
            result[key] = value
    return result


def _unused_group_files(roots: list[Path], groups: Mapping[str, Any]) -> list[Problem]:
    """Warnings for group_vars/ entries that match no group (often a typo)."""
    problems = []
    for root in dict.fromkeys(roots):
        directory = root / "group_vars"
        for entry in sorted(directory.iterdir()) if directory.is_dir() else []:
            stem = entry.stem if entry.suffix in _VARS_EXTENSIONS else ""
            if stem and stem not in groups and not entry.name.startswith("."):
                problems.append(
                    Problem(
                        Location(str(entry)),
                        f"group_vars for {stem!r}, which is not a group" + suggest(stem, groups),
                        "such a file is never read",
                    )
                )
    return problems
