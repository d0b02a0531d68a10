"""The frozen inventory: ``Host``, ``Group`` and ``Inventory``.

Load stage, the end of the ``inventory`` flow: ``builder`` freezes its drafts
into an ``Inventory``, which everything after loading reads. ``host_vars``
merges a host's variables with Ansible's precedence, ``magic_vars`` gives
``inventory_hostname``, ``groups`` and the rest, ``to_ansible_json`` equals
``ansible-inventory --list``, and ``restricted`` applies ``--limit``.
``MAGIC_VARS`` names the variables an inventory may not set.
"""

from __future__ import annotations

import copy
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from types import MappingProxyType
from typing import Any

from runner.errors import InventoryError, Location, Problem, suggest

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


#: Names Ansible treats as this machine (implicit ``localhost``).
LOCALHOST_NAMES = ("127.0.0.1", "localhost", "::1")


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
    #: every file read (sources, ``group_vars/``, ``host_vars/``): absolute path -> sha256 of its bytes
    files: Mapping[str, str] = field(default_factory=dict)

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
