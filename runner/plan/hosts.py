"""Which plays run on which hosts, with what variables, secrets and connection: no host is contacted.

Plan stage. ``plan_hosts`` turns validated ``Inputs`` and the run's
``RunOptions`` into one ``HostPlan`` per selected host (its plays in fault
order with their merged variables, its task nodes, its connection parameters
and the secret values its variables hold), checks what can be checked
without a host (SSH key and known_hosts files), and ``batches`` splits the
hosts into ``serial`` batches.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.connection import ConnectionParams
from runner.errors import InputError, InventoryError, Location, Problem
from runner.load.graph import Node
from runner.load.inputs import Inputs
from runner.load.inventory.patterns import select_hosts
from runner.load.playbook import walk_tasks
from runner.model import Play, Playbook
from runner.modules.base import flag
from runner.plan.secrets import host_secrets, secret_patterns, secret_values


@dataclass(frozen=True)
class ConnectOptions:
    """CLI-level overrides of how hosts are reached."""

    user: str | None = None
    key_file: str | None = None
    password: str | None = field(default=None, repr=False)
    become_password: str | None = field(default=None, repr=False)
    known_hosts: str | None = None
    accept_new_host_keys: bool = False
    ssh_config: str | None = None
    connect_timeout: float = 10.0


@dataclass(frozen=True)
class RunOptions:
    """How to run: check mode, parallelism, selection, locks."""

    check: bool = False
    diagnose_only: bool = False
    forks: int = 20
    limit: str | None = None
    tags: frozenset[str] = frozenset()
    skip_tags: frozenset[str] = frozenset()
    lock_timeout: float = 0.0
    lock_path: str = ""  # "" = per host: remedy_lock_path or <host>.lock in the user's lock dir
    lock_answer_timeout: float | None = None  # the lock command's first line; None: hostlock's default
    connect: ConnectOptions = ConnectOptions()
    serial: tuple[int | str, ...] | None = None  # None: the playbook's serial
    max_fail_percentage: float | None = None  # None: the playbook's max_fail_percentage
    evidence_dir: str = ""  # evidence of each changed host goes to <it>/<run id>/<host>/; "": none
    max_changed: int | str | None = None  # hosts a run may change: a count or "P%"; None: the plays'
    slice: tuple[int, int] | None = None  # (K, N): only the hosts of slice K of N (1-based)


@dataclass(frozen=True)
class HostPlan:
    """One host, the plays that apply to it, its variables, and the secrets among them."""

    name: str
    params: ConnectionParams
    plays: tuple[tuple[Playbook, Play, Mapping[str, Any]], ...]
    nodes: tuple[Node, ...]
    secrets: tuple[str, ...] = field(default=(), repr=False)


def plan_hosts(inputs: Inputs, options: RunOptions) -> list[HostPlan]:
    """Which plays run on which hosts, with merged variables and their secrets; no host is contacted.

    Raises:
        InputError: a bad --limit or host pattern, no host selected at all, or a
            private key or known_hosts file that cannot be what it must be, or a
            bad ``remedy_secret_vars``.
    """
    inventory = inputs.inventory
    if inventory is None:
        raise InputError.at(Location("<command line>"), "an inventory is required", "pass -i INVENTORY")
    limited = set(select_hosts(inventory, options.limit)) if options.limit else None
    per_host: dict[str, list[tuple[Playbook, Play, Mapping[str, Any]]]] = {}
    for book, play in inputs.graph.plays:
        for host in _play_hosts(inventory, play, book):
            if limited is not None and host not in limited:
                continue
            host_vars = {**play.vars, **inventory.host_vars(host), **inventory.magic_vars(host),
                         **inputs.extra_vars, "playbook_dir": str(_book_dir(book)),
                         "ansible_check_mode": options.check, "remedy_check_mode": options.check}
            per_host.setdefault(host, []).append((book, play, host_vars))
    if not per_host:
        raise InputError.at(Location("<command line>"), "no host matches the plays and --limit",
                            "check 'hosts:' in the playbook and the -l pattern")
    # inventory order, then implicit hosts such as localhost; a slice may hold none of them
    order = [h for h in per_host if options.slice is None or in_slice(h, *options.slice)]
    planned = []
    for h in order:
        nodes = tuple(_nodes_of(inputs, per_host[h]))
        planned.append(HostPlan(h, connection_params(h, per_host[h][0][2], options.connect),
                                tuple(per_host[h]), nodes, _host_secrets(h, per_host[h], nodes)))
    _check_ssh_files(planned, options.connect, inventory)
    return planned


def _check_ssh_files(hosts: list[HostPlan], options: ConnectOptions, inventory: Any) -> None:
    """Each SSH host's private key is a readable file and its known_hosts no directory.

    Raises:
        InputError: one problem per variable, path and reason, naming the hosts.
    """
    found: dict[tuple[str, str, str], list[str]] = {}
    for host in hosts:
        key, known = host.params.key_file, host.params.known_hosts
        if host.params.kind != "ssh":
            continue
        if key and not os.path.isfile(key):
            reason = "is a directory" if os.path.isdir(key) else "does not exist"
        else:
            reason = "is not readable" if key and not os.access(key, os.R_OK) else ""
        if reason:
            variable = "--private-key" if options.key_file else "ansible_ssh_private_key_file"
            found.setdefault((variable, key or "", reason), []).append(host.name)
        if known and os.path.isdir(os.path.expanduser(known)):
            variable = "--known-hosts" if options.known_hosts else "remedy_known_hosts"
            found.setdefault((variable, known, "is a directory"), []).append(host.name)
    problems = []
    for (variable, path, reason), names in found.items():
        where = Location(f"<command line {variable}>") if variable.startswith("--") else \
            getattr(inventory.get_host(names[0]), "location", Location(f"<inventory host {names[0]}>"))
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        what = "a private key file" if "key" in variable else "a known_hosts file"
        fix = f"pass {variable} the path of {what}" if variable.startswith("--") else \
            f"set {variable} to the path of {what} in the inventory"
        problems.append(Problem(where, f"{variable} {path!r} {reason} (host{'s' * (len(names) > 1)} {shown})",
                                fix))
    if problems:
        raise InputError(problems)


def _host_secrets(host: str, plays: list[tuple[Playbook, Play, Mapping[str, Any]]],
                  nodes: tuple[Node, ...]) -> tuple[str, ...]:
    """The secret values of a host's variables, and of the variables and arguments of its tasks.

    Raises:
        InputError: a bad ``remedy_secret_vars``.
    """
    where = Location(f"<variables of host {host}>")
    found: dict[str, None] = {}
    patterns: tuple[str, ...] = ()
    for _, _, host_vars in plays:
        patterns += secret_patterns(host_vars, where)
        found.update(dict.fromkeys(host_secrets(host_vars, where)))
    for task in walk_tasks(tuple(node.task for node in nodes)):
        found.update(dict.fromkeys(secret_values(task.vars, patterns)))
        found.update(dict.fromkeys(secret_values(task.args, ())))
    return tuple(found)


def _play_hosts(inventory: Any, play: Play, book: Playbook) -> list[str]:
    """Hosts of a play's pattern.

    Raises:
        InputError: a part of the pattern matches no host (a typo must not
            silently skip a play), naming the play's location.
    """
    try:
        return list(select_hosts(inventory, play.hosts))
    except InventoryError as error:
        raise InputError.at(play.location, f"hosts: {play.hosts!r} of play "
                            f"'{play.name or book.name}': {error.problems[0].message}",
                            error.problems[0].hint) from None


def _book_dir(book: Playbook) -> str:
    from pathlib import Path

    return str(Path(book.path).resolve().parent)


def _nodes_of(inputs: Inputs, plays: list[tuple[Playbook, Play, Mapping[str, Any]]]) -> list[Node]:
    chosen = {id(play) for _, play, _ in plays}
    return [inputs.graph.nodes[n] for n in inputs.graph.order
            if id(inputs.graph.nodes[n].play) in chosen]


def connection_params(host: str, host_vars: Mapping[str, Any], options: ConnectOptions) -> ConnectionParams:
    """Map Ansible connection variables and CLI overrides to ``ConnectionParams``."""
    kind = str(host_vars.get("ansible_connection", "ssh"))
    if kind not in ("ssh", "local", "paramiko", "smart"):
        raise InputError.at(Location(f"<inventory host {host}>"),
                            f"ansible_connection '{kind}' is not supported", "use ssh or local")
    port = host_vars.get("ansible_port", host_vars.get("ansible_ssh_port"))
    return ConnectionParams(
        name=host,
        address=str(host_vars.get("ansible_host", host)),
        kind="local" if kind == "local" else "ssh",
        port=int(port) if port is not None else None,
        user=options.user or _opt(host_vars.get("ansible_user", host_vars.get("ansible_ssh_user"))),
        key_file=_path(options.key_file or _opt(host_vars.get("ansible_ssh_private_key_file"))),
        password=options.password or _opt(host_vars.get("ansible_password")),
        become_password=options.become_password or _opt(host_vars.get("ansible_become_password")),
        ssh_config=options.ssh_config,
        known_hosts=options.known_hosts or _opt(host_vars.get("remedy_known_hosts")),
        accept_new_host_keys=options.accept_new_host_keys,
        connect_timeout=options.connect_timeout,
        persistent_shell=flag(host_vars.get("remedy_persistent_shell", True)),
    )


def _path(value: str | None) -> str | None:
    return None if value is None else os.path.expanduser(value)


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def in_slice(host: str, index: int, count: int) -> bool:
    """Whether ``host`` is in slice ``index`` (1-based) of ``count``: by the sha256 of its name.

    Stable across runs, machines and Python versions, so the slices of one
    inventory never overlap and every host is in exactly one of them.
    """
    digest = hashlib.sha256(host.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count == index - 1


def share(spec: int | str, total: int) -> int:
    """How many of ``total`` hosts a count or a percentage ("25%") means: rounded down, at least 1."""
    if isinstance(spec, str):
        return max(1, math.floor(total * float(spec.rstrip("%")) / 100))
    return spec


def change_budget(plays: Sequence[Play], options: RunOptions, total: int) -> int | None:
    """How many of the run's ``total`` hosts may be changed: ``--max-changed``, else the
    smallest ``max_hosts_changed`` of the plays; None: no budget."""
    if options.max_changed is not None:
        return share(options.max_changed, total)
    limits = [share(p.max_hosts_changed, total) for p in plays if p.max_hosts_changed is not None]
    return min(limits) if limits else None


def batches(hosts: Sequence[str], serial: Sequence[int | str]) -> list[list[str]]:
    """Split hosts into serial batches (counts or percentages; the last size repeats)."""
    if not serial:
        return [list(hosts)] if hosts else []
    result: list[list[str]] = []
    index, step = 0, 0
    while index < len(hosts):
        size = share(serial[min(step, len(serial) - 1)], len(hosts))
        result.append(list(hosts[index:index + size]))
        index += size
        step += 1
    return result
