"""The ``package`` module: install, upgrade or remove system packages with the host's package manager.

Services layer. One probe finds the package manager (apt, dnf, yum,
zypper, apk; see ``packagers``), reads which of the packages are installed
from its database and, when something is to be done, asks the manager to
simulate the transaction (``apt-get -s``, ``dnf --assumeno``, ``zypper
--dry-run``, ``apk --simulate``): the plan names every package it would
install or remove, dependencies included, and nothing is installed to find
out. The step waits for the manager's lock up to ``lock_timeout`` seconds,
then reads the database again, so the task registers exactly what it
installed (for a rollback that removes only that).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.modules.base import Arg, Change, Command, Fact, Module, Outcome, failure_message, quote
from runner.modules.packagers import DETECTION_ORDER, LOCKED, MANAGERS, Action, simulation_error
from runner.results import CommandResult, Diff

#: Package names: no spaces, no shell metacharacters, no leading dash; ``:arch`` for apt.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9.+_-]*(:[A-Za-z0-9_-]+)?"
_HINT = "a package name (letters, digits and . + _ -, optionally :arch)"
_KIND = {"present": "install", "latest": "latest", "absent": "remove"}


@dataclass(frozen=True)
class PackageFacts:
    manager: str = ""  # "" when the host has none of them
    installed: Mapping[str, str] = field(default_factory=dict)  # name -> version ("" if unknown)
    actions: tuple[Action, ...] = ()
    simulated: bool = False
    simulation_error: str = ""
    error: str = ""


class PackageModule(Module):
    """Install, upgrade or remove system packages (apt, dnf, yum, zypper or apk), or only look them up.

    ``state: present`` installs the missing packages (never upgrades one that
    is installed), ``latest`` also upgrades, ``absent`` removes the installed
    ones (and what the manager removes with them: the plan names it), and
    ``checked`` only reads (registered: ``present``, ``missing``, ``ok``).
    Check mode predicts from the package database and the manager's own
    simulation, from the package lists already on the host (dnf and yum
    with ``-C``, apk without network, apt without writing its cache); it
    never installs nor refreshes anything. The change waits up to ``lock_timeout``
    seconds while another program holds the manager's lock (retrying once a
    second), then fails naming the lock. Registered after a change:
    ``installed``, ``upgraded`` and ``removed`` (dependencies included), read
    back from the database: ``state: absent`` with ``name: "{{
    result.installed }}"`` removes exactly what the task installed.
    """

    name = "package"
    summary = "Install, upgrade or remove system packages with apt, dnf, yum, zypper or apk"
    args = {
        "name": Arg("list", required=True, elements="str", aliases=("pkg",), pattern=NAME_PATTERN,
                    pattern_hint=_HINT, doc="The package names (a string or a list)."),
        "state": Arg("str", default="present", choices=("present", "latest", "absent", "checked"),
                     doc="present: install if missing; latest: also upgrade; absent: remove; "
                         "checked: only look up."),
        "manager": Arg("str", default="auto", choices=("auto", *DETECTION_ORDER), aliases=("use",),
                       doc="The package manager; auto tries apt, dnf, yum, zypper, apk in that order."),
        "update_cache": Arg("bool", default=False,
                            doc="Refresh the package lists first (only when something is to be done)."),
        "lock_timeout": Arg("int", default=60,
                            doc="Seconds to wait for the package manager's lock before failing."),
    }

    def reads_only(self, args: Mapping[str, Any]) -> bool:
        return args.get("state") == "checked"

    def facts(self, args: Mapping[str, Any]) -> Mapping[str, Fact]:
        a = self.resolved(args)
        if _bad_name(a) or not _names(a):
            return {"packages": Fact(":", lambda r: PackageFacts())}
        return {"packages": Fact(_probe(a), _parse)}

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        a = self.resolved(args)
        f: PackageFacts = facts["packages"]
        names = _names(a)
        bad = _bad_name(a)
        if bad:
            return Change(changed=False, failed=f"{bad!r} is not {_HINT}")
        if not names:
            return Change(changed=False, summary="no packages named: nothing to do",
                          data=_lookup(a, PackageFacts()))
        if f.error or not f.manager:
            tried = a["manager"] if a["manager"] != "auto" else ", ".join(DETECTION_ORDER)
            return Change(changed=False, failed=f.error or f"no supported package manager on the host "
                          f"(looked for {tried})")
        data = _lookup(a, f)
        if a["state"] == "checked":
            return Change(changed=False, data=data, summary=_checked_summary(f.manager, data))
        todo = _todo(a, f)
        if not todo:
            return Change(changed=False, data=data, summary=f"{', '.join(names)}: already "
                          f"{'absent' if a['state'] == 'absent' else 'installed'} ({f.manager})")
        return _change_plan(a, f, todo, data)

    def outcome(self, args: Mapping[str, Any], facts: Mapping[str, Any], change: Change,
                results: Sequence[CommandResult]) -> Outcome:
        f: PackageFacts = facts["packages"]
        if not results:
            return Outcome(changed=False, data=dict(change.data))
        involved = list(dict.fromkeys([*_todo(self.resolved(args), f), *(x.name for x in f.actions)]))
        return _outcome(f, involved, results[-1])


def _names(a: Mapping[str, Any]) -> list[str]:
    value = a["name"]
    return [str(v) for v in (value if isinstance(value, list) else [value]) if str(v)]


def _bad_name(a: Mapping[str, Any]) -> str:
    return next((n for n in _names(a) if not re.fullmatch(NAME_PATTERN, n)), "")


def _base(name: str) -> str:
    """A name without its ``:arch`` qualifier, as the database lists it."""
    return name.split(":", 1)[0]


def _todo(a: Mapping[str, Any], f: PackageFacts) -> list[str]:
    """The names the transaction is run with: missing (present), all (latest), installed (absent)."""
    names = _names(a)
    if a["state"] == "present":
        return [n for n in names if _base(n) not in f.installed]
    if a["state"] == "absent":
        return [n for n in names if _base(n) in f.installed]
    return names


def _lookup(a: Mapping[str, Any], f: PackageFacts) -> dict[str, Any]:
    names = _names(a)
    present = {n: f.installed[_base(n)] for n in names if _base(n) in f.installed}
    missing = [n for n in names if _base(n) not in f.installed]
    return {"manager": f.manager, "present": present, "missing": missing, "ok": not missing}


def _checked_summary(manager: str, data: Mapping[str, Any]) -> str:
    shown = ", ".join(f"{n} {v}".strip() for n, v in data["present"].items()) or "none"
    missing = f"; missing: {', '.join(data['missing'])}" if data["missing"] else ""
    return f"installed ({manager}): {shown}{missing}"


def _change_plan(a: Mapping[str, Any], f: PackageFacts, todo: list[str], data: dict[str, Any]) -> Change:
    update = bool(a["update_cache"])
    actions = list(f.actions)
    involved = list(dict.fromkeys([*todo, *(x.name for x in actions)]))
    step = Command(_script(a, f.manager, todo, involved))
    if f.simulation_error or (update and a["state"] == "latest"):
        if not update:
            return Change(changed=False, data=data, failed=f"{f.manager} cannot {_KIND[a['state']]} "
                          f"{', '.join(todo)}: {f.simulation_error} (update_cache: true refreshes the lists)")
        return Change(changed=True, predictable=False, steps=(step,), data=data,
                      summary=f"refresh the {f.manager} lists, then {_KIND[a['state']]} {', '.join(todo)}"
                              " (what the refreshed lists hold cannot be known before)")
    if not actions:
        return Change(changed=False, data=data, summary=f"{', '.join(todo)}: nothing to do ({f.manager})")
    before = "".join(f"{x.name}: {_was(x, f)}\n" for x in actions)
    after = "".join(f"{x.name}: {'absent' if x.kind == 'remove' else x.version or 'installed'}\n"
                    for x in actions)
    return Change(changed=True, steps=(step,), data=data, diffs=(Diff(f"packages ({f.manager})", before,
                  after),), summary=_summary(f.manager, todo, actions, update))


def _was(action: Action, f: PackageFacts) -> str:
    if action.kind == "install":
        return "absent"
    return f.installed.get(action.name) or action.old or "installed"


def _summary(manager: str, todo: list[str], actions: list[Action], update: bool) -> str:
    parts = []
    for kind in ("install", "upgrade", "remove"):
        named = [f"{x.name} {x.version}".strip() for x in actions if x.kind == kind]
        if named:
            parts.append(f"{kind} {', '.join(named)}")
    asked = {_base(n) for n in todo}
    extra = [x.name for x in actions if _base(x.name) not in asked]
    removing = any(x.kind == "remove" for x in actions)
    note = f" ({', '.join(extra)}: {'they depend on it' if removing else 'dependencies'})" if extra else ""
    return f"{'refresh the lists, then ' if update else ''}{'; '.join(parts)}{note} ({manager})"


def _probe(a: Mapping[str, Any]) -> str:
    chosen = DETECTION_ORDER if a["manager"] == "auto" else (a["manager"],)
    kind = {"present": "install", "latest": "latest", "absent": "remove"}.get(str(a["state"]))
    lines = [f"set -- {' '.join(quote(n) for n in _names(a))}", "m="]
    lines += [f"if [ -z \"$m\" ] && command -v {MANAGERS[m].program} >/dev/null 2>&1; then m={m}; fi"
              for m in chosen]
    lines += ['echo "manager=$m"', 'case $m in']
    for m in chosen:
        manager = MANAGERS[m]
        branch = [f"  {m})", f"    found=$({manager.query})",
                  "    printf '%s\\n' \"$found\" | grep \"$(printf '\\t')\" | sed 's/^/q /'"]
        if kind is not None:
            keep = "||" if kind == "install" else "&&"
            branch += [
                "    todo=", "    for n do", "      printf '%s\\n' \"$found\" | cut -f1 | "
                f"grep -qxF -- \"${{n%%:*}}\" {keep} todo=\"$todo $n\"", "    done",
                "    set -- $todo" if kind != "latest" else "    :",
                "    if [ $# -gt 0 ]; then",
                f"      echo @@simulate; out=$({manager.simulate[kind]}); rc=$?",
                "      printf '%s\\n' \"$out\"; echo \"@@rc=$rc\"", "    fi",
            ]
        lines += [*branch, "    ;;"]
    lines += ["esac", "echo @@end"]
    return "\n".join(lines)


def _parse(result: CommandResult) -> PackageFacts:
    lines = result.stdout.splitlines()
    if result.rc != 0 or "@@end" not in lines:
        return PackageFacts(error=f"the package probe failed: {result.tail('stderr', 3) or result.rc}")
    manager = next((line[8:] for line in lines if line.startswith("manager=")), "")
    installed = {}
    for line in lines:
        if line.startswith("q ") and "\t" in line:
            name, _, version = line[2:].partition("\t")
            installed[name] = version
    if "@@simulate" not in lines:
        return PackageFacts(manager, installed)
    start = lines.index("@@simulate") + 1
    end = next(i for i in range(len(lines) - 1, start - 1, -1) if lines[i].startswith("@@rc="))
    output, rc = "\n".join(lines[start:end]), int(lines[end][5:] or 1)
    error = simulation_error(manager, output, rc)
    actions = () if error else tuple(MANAGERS[manager].parse(output))
    return PackageFacts(manager, installed, actions, True, error)


def _script(a: Mapping[str, Any], manager_name: str, todo: list[str], involved: list[str]) -> str:
    manager = MANAGERS[manager_name]
    words = " ".join(quote(n) for n in todo)
    commands = ([f"locked {manager.update}"] if a["update_cache"] else []) + \
        [f"locked {command} {words}" for command in manager.change[_KIND[str(a["state"])]]]
    return "\n".join([
        f"limit={int(a['lock_timeout'])}", "start=$(date +%s)",
        "locked() {",
        "  while :; do",
        "    out=$(\"$@\" 2>&1); rc=$?",
        "    printf '%s\\n' \"$out\"",
        "    [ \"$rc\" -eq 0 ] && return 0",
        f"    lock=$(printf '%s\\n' \"$out\" | grep -iE '{LOCKED}' | head -n 1)",
        "    if [ -z \"$lock\" ]; then printf '%s\\n' \"$out\" | tail -n 5 >&2; return \"$rc\"; fi",
        "    if [ $(( $(date +%s) - start )) -ge \"$limit\" ]; then",
        "      echo \"the package manager is still locked after ${limit}s (lock_timeout): $lock\" >&2",
        "      return \"$rc\"",
        "    fi",
        "    sleep 1",
        "  done",
        "}",
        " && ".join(commands),
        "rc=$?",
        f"set -- {' '.join(quote(n) for n in involved)}",
        f"echo @@after; {manager.query}",
        "exit $rc",
    ])


def after_state(result: CommandResult) -> dict[str, str]:
    """The installed versions the step read back after its transaction."""
    lines = result.stdout.splitlines()
    if "@@after" not in lines:
        return {}
    tail = lines[lines.index("@@after") + 1:]
    return {name: version for name, _, version in (line.partition("\t") for line in tail if "\t" in line)}


def _outcome(f: PackageFacts, involved: list[str], result: CommandResult) -> Outcome:
    present_before = {*f.installed, *(x.name for x in f.actions if x.kind != "install")}
    after = after_state(result)
    bases = [_base(n) for n in involved]
    installed = [n for n in bases if n in after and n not in present_before]
    removed = [n for n in bases if n not in after and n in present_before]
    upgraded = [n for n in bases if n in after and n in f.installed and after[n] != f.installed[n]]
    data = {"manager": f.manager, "installed": installed, "upgraded": upgraded, "removed": removed,
            "present": {n: after[n] for n in bases if n in after}}
    changed = bool(installed or removed or upgraded)
    failed = failure_message(result) if result.rc != 0 else ""
    done = "; ".join(f"{verb} {', '.join(names)}" for verb, names in
                     (("installed", installed), ("upgraded", upgraded), ("removed", removed)) if names)
    return Outcome(changed=changed, failed=failed, data=data, summary=f"{done} ({f.manager})" if done else "")


