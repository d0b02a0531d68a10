"""Building an inventory: a mutable mirror of Ansible's InventoryData.

Load stage, between the parsers and ``model``: ``sources``, ``ini`` and
``yamlsource`` add groups, hosts and variables to one ``Builder``, which
checks each name and value as it arrives and collects every problem instead
of stopping at the first (``varsfiles`` checks its variables with it too);
``reconcile`` applies Ansible's ``all``/``ungrouped`` rules and ``freeze``
returns the ``Inventory``. The helpers the parsers share (reading a file,
expanding a host entry, unwrapping loader values) live here too.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from runner.errors import Location, ProblemCollector
from runner.load.inventory.model import LOCALHOST_NAMES, MAGIC_VARS, Group, Host, Inventory
from runner.load.inventory.patterns import (
    HostPatternError,
    check_host_name,
    check_user,
    expand_ranges,
    split_port,
)
from runner.load.yamlfile import MAX_FILE_BYTES

_HOST_KEYS = ("ansible_host", "ansible_ssh_host")
_USER_KEYS = ("ansible_user", "ansible_ssh_user", "ansible_become_user")
_PORT_KEYS = ("ansible_port", "ansible_ssh_port")
_NOT_VAR_NAMES = frozenset({"True", "False", "None", "true", "false", "none", "not"})
_GROUP_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


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


class Builder:
    """Collects hosts, groups and problems from every source, then freezes them."""

    def __init__(self) -> None:
        self.problems = ProblemCollector()
        self.groups: dict[str, _GroupDraft] = {}
        self.hosts: dict[str, _HostDraft] = {}
        self.localhost: str | None = None
        self.files: dict[str, str] = {}  # every file read: absolute path -> sha256 of its bytes
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
        if port is not None and not 0 < port < 65536:
            self.problems.add(location, f"host {name!r}: port {port} is not a port number from 1 to 65535",
                              "write HOST:PORT with a port from 1 to 65535, or set ansible_port")
            port = None
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
        value = plain(value)
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


def plain(value: Any) -> Any:
    """Loader values without their location wrappers (``UnsafeText`` stays marked)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def expand_entry(builder: Builder, entry: str, location: Location) -> tuple[list[str], int | None] | None:
    if not entry:
        builder.problems.add(location, "empty host name")
        return None
    name, port = split_port(entry)
    try:
        return expand_ranges(name), port
    except HostPatternError as error:
        builder.problems.add(location, str(error), error.hint)
        return None


def read_text(builder: Builder, path: Path) -> str | None:
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
    builder.files[str(path)] = hashlib.sha256(data).hexdigest()
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


def meaningful(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and stripped[0] not in "#;" and stripped not in ("---", "...")
