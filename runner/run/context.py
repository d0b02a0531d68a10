"""What a task needs to know about its host and run: the ``HostContext`` of one host x play.

Run stage, below ``taskrun``, ``rendering``, ``probing`` and ``blocks``, which
all take it; with the ``ProbeCache`` of probe results fetched ahead (keyed by
command, privilege and environment), which ``probing`` fills and ``taskrun``
reads, and (check mode) the host's ``Foresight`` of the changes planned so far.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runner.connection import Become, Connection
from runner.model import Play
from runner.redaction import Redactor
from runner.results import CommandResult
from runner.run.foresight import Foresight

#: A probe command with the privilege and environment it runs with.
ProbeKey = tuple[str, Become | None, tuple[tuple[str, str], ...]]


@dataclass
class ProbeCache:
    """Probe results fetched ahead of their tasks; forgotten whenever a step is sent."""

    results: dict[ProbeKey, CommandResult] = field(default_factory=dict)
    considered: set[int] = field(default_factory=set)  # id() of tasks already looked ahead at

    def clear(self) -> None:
        self.results.clear()
        self.considered.clear()


def probe_key(command: str, become: Become | None, env: Mapping[str, str]) -> ProbeKey:
    return (command, become, tuple(sorted(env.items())))


@dataclass
class HostContext:
    """What a task needs to know about its host and run (one per host x play)."""

    host: str
    conn: Connection
    play: Play
    playbook_dir: Path
    check: bool = False
    become_password: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    run_id: str = ""  # names the run's temp files on the host
    redactor: Redactor = field(default_factory=Redactor)  # secret arguments are added to it
    probes: ProbeCache = field(default_factory=ProbeCache)
    #: Check mode: an earlier task of this host predicted a change that was not made,
    #: so facts read now may not be what the real run will see.
    pending_change: bool = False
    #: Check mode: what the changes planned so far on this host leave (shared by its plays).
    foresight: Foresight = field(default_factory=Foresight)
