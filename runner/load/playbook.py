"""Playbook loading: strict YAML -> validated ``Playbook`` model.

Load stage. The schema is closed: an unknown key gets a did-you-mean, a
module's arguments are checked against the module's declared ``Arg``s, and
every problem of a file is reported at once (``PlaybookError``). Tasks and
their keywords are read by ``taskread``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from runner.errors import InputError, Location, PlaybookError, ProblemCollector, suggest
from runner.load import argcheck, templating
from runner.load.marked import MarkedDict, MarkedList, location_of
from runner.load.taskread import UNSUPPORTED, TaskReader
from runner.load.yamlfile import load_file
from runner.model import SECTIONS, Play, Playbook, Task
from runner.modules import MODULES

PLAY_KEYS = frozenset(
    {
        "name",
        "hosts",
        "vars",
        "vars_files",
        "tasks",
        "handlers",
        "diagnose",
        "verify",
        "rollback",
        "serial",
        "max_fail_percentage",
        "max_hosts_changed",
        "become",
        "become_user",
        "tags",
        "environment",
        "gather_facts",
        "after",
        "health",
        "requires_root",
    }
)


def load_playbook(path: str | Path) -> Playbook:
    """Load and validate one playbook file.

    Raises:
        LoadError: the YAML cannot be accepted.
        PlaybookError: the playbook does not match the schema (all problems at once).
    """
    name = str(path)
    data = load_file(path)
    problems = ProblemCollector()
    plays: list[Play] = []
    if not isinstance(data, MarkedList):
        problems.add(
            location_of(data, Location(name, 1, 1)),
            "a playbook must be a list of plays",
            "start the file with '- hosts: ...'",
        )
        problems.raise_if_any(PlaybookError)
    if not data:
        problems.add(data.loc, "the playbook has no plays")
    for index, item in enumerate(data):
        play = _PlayReader(name, problems).read(item, data.item_loc(index), index)
        if play is not None:
            plays.append(play)
    _check_notify(plays, problems)
    _check_ids(plays, problems)
    problems.raise_if_any(PlaybookError)
    return Playbook(path=name, name=Path(name).stem, plays=tuple(plays), header=_header(name))


def _header(path: str) -> str:
    """The leading ``#`` comment block of the file, without the ``#`` marks."""
    lines: list[str] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                stripped = line.strip()
                if not stripped.startswith("#"):
                    if stripped in ("", "---"):
                        if lines or stripped == "---":
                            continue
                    break
                lines.append(stripped[2:] if stripped.startswith("# ") else stripped[1:])
    except OSError:
        return ""
    return "\n".join(lines).strip("\n")


class _PlayReader(TaskReader):
    """Reads one play mapping into a ``Play``, reporting problems to a collector."""

    def read(self, raw: Any, loc: Location, index: int) -> Play | None:
        if not isinstance(raw, MarkedDict):
            self.problems.add(loc, "a play must be a mapping", "e.g. '- hosts: all\\n  tasks: [...]'")
            return None
        self._unknown_keys(raw, PLAY_KEYS, "play")
        if "hosts" not in raw:
            self.problems.add(raw.loc, "play has no 'hosts'", "add e.g. 'hosts: all'")
        hosts = raw.get("hosts", "all")
        if isinstance(hosts, list):
            hosts = ":".join(str(h) for h in hosts)
        elif not isinstance(hosts, str):
            self.problems.add(
                raw.value_loc("hosts"),
                f"'hosts' must be a pattern string or a list, not {argcheck.describe(hosts)}",
                'e.g. hosts: all, hosts: "web:&prod"; quote a numeric host name',
            )
            hosts = "all"
        # Generated ids must be unique in the playbook: later plays prefix theirs.
        prefix = "" if index == 0 else f"play{index + 1}."
        sections = {s: self.tasks(raw, s, prefix + s) for s in SECTIONS}
        health = self._health(raw, prefix)
        if health is not None:
            sections["verify"] += (health,)
        play_vars = self.check.mapping(raw, "vars")
        if "vars_files" in raw:
            play_vars = {**self._vars_files(raw), **play_vars}
        self.check.variable_names(raw, "vars")
        return Play(
            name=self.check.string(raw, "name") or "",
            hosts=hosts,
            location=raw.loc,
            index=index,
            vars=play_vars,
            serial=self._serial(raw),
            max_fail_percentage=self.check.number(raw, "max_fail_percentage", 0, 100),
            max_hosts_changed=self._max_hosts_changed(raw),
            become=bool(self.check.boolean(raw, "become")),
            become_user=self.check.string(raw, "become_user"),
            tags=self.check.string_list(raw, "tags"),
            environment=self.check.mapping(raw, "environment"),
            after=self.check.string_list(raw, "after"),
            health=health.args if health is not None else {},
            requires_root=bool(self.check.boolean(raw, "requires_root")),
            **sections,
        )

    def _health(self, raw: MarkedDict, prefix: str) -> Task | None:
        """The play's ``health:`` as the last verify task: the ``health`` module on those checks."""
        if "health" not in raw:
            return None
        if not isinstance(raw["health"], MarkedDict):
            self.problems.add(raw.value_loc("health"), "'health' must be a mapping",
                              "e.g. health: {url: 'http://127.0.0.1:8080/health', checks: [config]}")
            return None
        args = self.check.module_args(MODULES["health"], raw, "health")
        checks = args.get("checks") or []
        named = f" ({', '.join(map(str, checks))})" if isinstance(checks, list) and checks else ""
        return Task(id=f"{prefix}health", name=f"the service's health checks for this fault{named}",
                    location=raw.key_loc("health"), module="health", args=args, requires=())

    def _vars_files(self, raw: MarkedDict) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for index, entry in enumerate(self.check.string_list(raw, "vars_files")):
            path = Path(self.file).parent / entry
            loc = (
                raw["vars_files"].item_loc(index)
                if isinstance(raw["vars_files"], MarkedList)
                else raw.value_loc("vars_files")
            )
            try:
                data = load_file(path)
            except InputError as error:
                if any(p.location.line for p in error.problems):
                    self.problems.extend(error)  # problems inside the vars file, at their lines
                else:
                    self.problems.add(loc, f"cannot load vars file {entry}: {error.problems[0].message}",
                                      "vars_files paths are relative to the playbook's directory")
                continue
            if not isinstance(data, MarkedDict):
                self.problems.add(loc, f"vars file {entry} must hold a mapping",
                                  f"write it as 'name: value' lines, not {argcheck.describe(data)}")
                continue
            merged.update(data)
        return merged

    def _serial(self, raw: MarkedDict) -> tuple[int | str, ...]:
        if "serial" not in raw:
            return ()
        value = raw["serial"]
        items = value if isinstance(value, list) else [value]
        result: list[int | str] = []
        for item in items:
            entry = serial_entry(item)
            if entry is not None:
                result.append(entry)
            else:
                self.problems.add(
                    raw.value_loc("serial"),
                    f"serial entry {item!r} must be a positive count or a percentage",
                    'e.g. serial: [1, "10%", "100%"]',
                )
        return tuple(result)

    def _max_hosts_changed(self, raw: MarkedDict) -> int | str | None:
        if "max_hosts_changed" not in raw:
            return None
        value = raw["max_hosts_changed"]
        entry = serial_entry(value)
        if entry is None or isinstance(entry, str) and not 0 < float(entry.rstrip("%")) <= 100:
            self.problems.add(raw.value_loc("max_hosts_changed"),
                              f"max_hosts_changed {value!r} must be a positive count of hosts or a "
                              "percentage of the run's hosts above 0% and at most 100%",
                              'e.g. max_hosts_changed: 5 or max_hosts_changed: "10%"')
        return entry

    def _unknown_keys(self, raw: MarkedDict, allowed: frozenset[str], what: str) -> None:
        for key in raw:
            if key in UNSUPPORTED:
                self.problems.add(raw.key_loc(key), f"'{key}' is not supported", UNSUPPORTED[key])
            elif key not in allowed:
                self.problems.add(
                    raw.key_loc(key), f"unknown {what} key '{key}'" + suggest(str(key), allowed)
                )


def serial_entry(item: Any) -> int | str | None:
    """One ``serial`` entry as the executor takes it (a positive count or "N%"), None if invalid."""
    if isinstance(item, int) and not isinstance(item, bool) and item > 0:
        return item
    if isinstance(item, str) and re.fullmatch(r"\d+(\.\d+)?%", item.strip()):
        return item.strip()
    return None


def walk_tasks(tasks: tuple[Task, ...]) -> list[Task]:
    """Every task, depth first, including those inside blocks."""
    result: list[Task] = []
    for task in tasks:
        result.append(task)
        result.extend(walk_tasks(task.block + task.rescue + task.always))
    return result


def _check_notify(plays: list[Play], problems: ProblemCollector) -> None:
    for play in plays:
        topics = {h.name for h in play.handlers} | {t for h in play.handlers for t in h.listen}
        for section in SECTIONS:
            for task in walk_tasks(play.section(section)):
                for topic in task.notify:
                    if topic not in topics and not templating.is_template(topic):
                        problems.add(
                            task.location,
                            f"notify '{topic}' matches no handler" + suggest(topic, topics),
                            "name a handler of this play (its name or listen topic)",
                        )


def _check_ids(plays: list[Play], problems: ProblemCollector) -> None:
    seen: dict[str, Location] = {}
    for play in plays:
        for section in SECTIONS:
            for task in walk_tasks(play.section(section)):
                if not task.explicit_id:
                    continue
                if task.id in seen:
                    problems.add(
                        task.location,
                        f"duplicate task id '{task.id}' (first defined at line {seen[task.id].line})",
                        "task ids must be unique within a playbook",
                    )
                else:
                    seen[task.id] = task.location
