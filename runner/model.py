"""The playbook model: frozen dataclasses, pure data, no I/O.

Data layer. ``playbook.load_playbook`` builds these from validated YAML;
``graph`` orders them; the executor walks them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.errors import Location

#: The sections of a play that hold tasks, in the order a host walks them.
SECTIONS = ("diagnose", "tasks", "handlers", "verify", "rollback")


@dataclass(frozen=True)
class Task:
    """One task: a module call plus the keywords that control it.

    ``block`` / ``rescue`` / ``always`` are non-empty only for a block, whose
    ``module`` is ``""``. ``requires`` is None when the key was absent: such a
    task depends on the task before it (top-to-bottom order, as in Ansible);
    ``requires: []`` makes a task independent.
    """

    id: str  # unique within its playbook; generated ("#3", "#3.1") when not given
    name: str
    location: Location
    module: str = ""
    args: Mapping[str, Any] = field(default_factory=dict)
    requires: tuple[str, ...] | None = None
    undoes: tuple[str, ...] = ()  # rollback only: runs only if one of these tasks changed the host
    blocked_by: str = ""  # diagnose only: when this check fails, that playbook must run first
    when: tuple[Any, ...] = ()
    register: str = ""
    notify: tuple[str, ...] = ()
    listen: tuple[str, ...] = ()
    loop: Any = None
    loop_var: str = "item"
    loop_label: str = ""
    retries: int | None = None
    until: Any = None
    delay: float = 5.0
    timeout: float | None = None
    become: bool | None = None
    become_user: str | None = None
    ignore_errors: bool = False
    changed_when: tuple[Any, ...] | None = None
    failed_when: tuple[Any, ...] | None = None
    tags: tuple[str, ...] = ()
    no_log: bool = False
    vars: Mapping[str, Any] = field(default_factory=dict)
    environment: Mapping[str, Any] = field(default_factory=dict)
    block: tuple[Task, ...] = ()
    rescue: tuple[Task, ...] = ()
    always: tuple[Task, ...] = ()
    explicit_id: bool = False

    @property
    def is_block(self) -> bool:
        return not self.module

    @property
    def label(self) -> str:
        """How the task is shown to people: its name, else its module and id."""
        return self.name or f"{self.module or 'block'} {self.id}"


@dataclass(frozen=True)
class Play:
    """One play: which hosts, its variables and its task sections."""

    name: str
    hosts: str
    location: Location
    index: int
    vars: Mapping[str, Any] = field(default_factory=dict)
    diagnose: tuple[Task, ...] = ()
    tasks: tuple[Task, ...] = ()
    handlers: tuple[Task, ...] = ()
    verify: tuple[Task, ...] = ()
    rollback: tuple[Task, ...] = ()
    serial: tuple[int | str, ...] = ()
    max_fail_percentage: float | None = None
    max_hosts_changed: int | str | None = None  # the blast-radius budget: a count or "P%"
    become: bool = False
    become_user: str | None = None
    tags: tuple[str, ...] = ()
    environment: Mapping[str, Any] = field(default_factory=dict)
    after: tuple[str, ...] = ()  # playbooks whose faults are fixed before this play's, on one host
    health: Mapping[str, Any] = field(default_factory=dict)  # the ``health`` module's args, or {}
    requires_root: bool = False  # refused, before its diagnosis, on a host where it would not be root

    def section(self, name: str) -> tuple[Task, ...]:
        result: tuple[Task, ...] = getattr(self, name)
        return result


@dataclass(frozen=True)
class Playbook:
    """A loaded playbook file: its plays, and its documentation header."""

    path: str
    name: str  # file stem; prefixes task ids in the graph ("port_conflict:stop_stale")
    plays: tuple[Play, ...]
    header: str = ""  # leading comment block, shown by ``remedy playbooks NAME``
