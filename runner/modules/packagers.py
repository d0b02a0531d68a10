"""What each package manager is asked, and how its answers read: apt, dnf, yum, zypper, apk.

Services layer, used by the ``package`` module. ``MANAGERS`` holds, per
manager, the program ``command -v`` looks for, the sh that lists which of
the names in ``"$@"`` are installed (``NAME<TAB>VERSION`` lines), the sh
that simulates a transaction without changing anything (``apt-get -s``,
``dnf --assumeno``, ``zypper --dry-run``, ``apk --simulate``), and the
commands that change the host. ``parse_simulation`` turns a simulation's
output into the ``Action`` list the transaction would carry out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

#: The output of a locked package database (every manager's wording), retried until lock_timeout.
LOCKED = ("could not get lock|unable to acquire the dpkg frontend lock|unable to lock|"
          "already locked by|existing lock|system management is locked")


@dataclass(frozen=True)
class Action:
    """One package a transaction installs, upgrades or removes, with its versions where the manager says."""

    kind: str  # install, upgrade, remove
    name: str
    version: str = ""  # after the transaction ("" for a removal)
    old: str = ""  # before it ("" for an install)


@dataclass(frozen=True)
class Manager:
    """How remedy talks to one package manager; every command takes the package names as ``"$@"``."""

    name: str
    program: str  # what ``command -v`` finds on a host that has it
    query: str
    simulate: Mapping[str, str]  # install (missing only), latest, remove
    change: Mapping[str, tuple[str, ...]]  # the same kinds: commands run in order
    update: str  # refreshes the package lists
    parse: Callable[[str], list[Action]]


_APT_LINE = re.compile(r"^(Inst|Remv) (\S+) (?:\[([^\]]*)\] ?)?(?:\((\S+))?")
_APK_LINE = re.compile(r"^\(\d+/\d+\) (Installing|Upgrading|Downgrading|Replacing|Purging|Deleting) "
                       r"(\S+) \(([^)]*)\)")
_RPM_QUERY = "rpm -q --qf '%{NAME}\\t%{VERSION}-%{RELEASE}\\n' \"$@\" 2>/dev/null"


def _matches(pattern: re.Pattern[str], output: str) -> list[tuple[str, ...]]:
    """The groups of every line of ``output`` that ``pattern`` matches."""
    return [match.groups() for match in map(pattern.match, output.splitlines()) if match is not None]


def _parse_apt(output: str) -> list[Action]:
    actions = []
    for verb, name, old, new in _matches(_APT_LINE, output):
        if verb == "Remv":
            actions.append(Action("remove", name, old=old or ""))
        else:
            actions.append(Action("upgrade" if old else "install", name, new or "", old or ""))
    return actions


def _section_kind(header: str) -> str | None:
    """dnf/yum section headers (``Installing dependencies:``) and zypper's (``... going to be REMOVED:``)."""
    words = header.lower()
    for kind, starts in (("install", ("installing", "reinstalling")), ("upgrade", ("upgrading", "updating",
                         "downgrading")), ("remove", ("removing", "erasing"))):
        if words.startswith(starts):
            return kind
    for kind, word in (("install", "installed"), ("upgrade", "upgraded"), ("upgrade", "downgraded"),
                       ("remove", "removed")):
        if words.startswith("the following") and f"going to be {word}" in words:
            return kind
    return None


def _parse_rpm_table(output: str) -> list[Action]:
    """dnf and yum: ``Installing:`` sections of ``name arch version repo size`` rows (long names wrap)."""
    actions: list[Action] = []
    kind: str | None = None
    pending = ""
    for line in output.splitlines():
        if not line.strip() or line.lstrip().startswith(("Transaction Summary", "====")):
            kind = None if line.lstrip().startswith("Transaction Summary") else kind
            continue
        if not line.startswith(" "):
            kind = _section_kind(line.rstrip(":")) if line.rstrip().endswith(":") else None
            continue
        if kind is None:
            continue
        fields = (pending + " " + line).split() if pending else line.split()
        if len(fields) == 1:
            pending = fields[0]
            continue
        pending = ""
        if len(fields) >= 3:
            version = fields[2]
            actions.append(Action(kind, fields[0], old=version) if kind == "remove" else
                           Action(kind, fields[0], version))
    return actions


def _parse_zypper(output: str) -> list[Action]:
    actions: list[Action] = []
    kind: str | None = None
    for line in output.splitlines():
        if line.startswith("The following"):
            kind = _section_kind(line.rstrip(":"))
        elif line.startswith(" ") and kind is not None:
            actions += [Action(kind, name) for name in line.split()]
        elif not line.strip():
            kind = None
    return actions


def _parse_apk(output: str) -> list[Action]:
    actions = []
    for verb, name, version in _matches(_APK_LINE, output):
        kind = {"Installing": "install", "Purging": "remove", "Deleting": "remove"}.get(verb, "upgrade")
        old, _, new = version.rpartition("->")
        if kind == "remove":
            actions.append(Action(kind, name, old=new.strip()))
        else:
            actions.append(Action(kind, name, new.strip(), old.strip()))
    return actions


def _rpm_manager(name: str, lock: str) -> Manager:
    base = f"{name} -y {lock}"
    return Manager(
        name=name, program=name, query=_RPM_QUERY,
        simulate={
            "install": f"{name} -C --assumeno {lock} install \"$@\" 2>&1",
            "latest": f"{name} -C --assumeno {lock} install \"$@\" 2>&1; "
                      f"{name} -C --assumeno {lock} upgrade \"$@\" 2>&1",
            "remove": f"{name} -C --assumeno {lock} remove \"$@\" 2>&1",
        },
        change={"install": (f"{base} install",), "latest": (f"{base} install", f"{base} upgrade"),
                "remove": (f"{base} remove",)},
        update=f"{name} -y {lock} makecache", parse=_parse_rpm_table,
    )


_APT_SIM = "apt-get -s -q -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache="
_APT_RUN = ("env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Options::=--force-confdef "
            "-o Dpkg::Options::=--force-confold")

MANAGERS: dict[str, Manager] = {
    "apt": Manager(
        name="apt", program="apt-get",
        query="dpkg-query -W -f='${db:Status-Abbrev}\\t${Package}\\t${Version}\\n' \"$@\" 2>/dev/null"
              " | awk -F '\\t' 'substr($1, 2, 1) == \"i\" { print $2 \"\\t\" $3 }'",
        simulate={"install": f"{_APT_SIM} install --no-upgrade \"$@\" 2>&1",
                  "latest": f"{_APT_SIM} install \"$@\" 2>&1",
                  "remove": f"{_APT_SIM} remove \"$@\" 2>&1"},
        change={"install": (f"{_APT_RUN} install --no-upgrade",), "latest": (f"{_APT_RUN} install",),
                "remove": (f"{_APT_RUN} remove",)},
        update="apt-get -q update", parse=_parse_apt,
    ),
    "dnf": _rpm_manager("dnf", "--setopt=exit_on_lock=True"),
    "yum": _rpm_manager("yum", "--setopt=exit_on_lock=1"),
    "zypper": Manager(
        name="zypper", program="zypper", query=_RPM_QUERY,
        simulate={"install": "zypper --non-interactive --no-refresh install --dry-run \"$@\" 2>&1",
                  "latest": "zypper --non-interactive --no-refresh install --dry-run \"$@\" 2>&1",
                  "remove": "zypper --non-interactive --no-refresh remove --dry-run \"$@\" 2>&1"},
        change={"install": ("zypper --non-interactive install --auto-agree-with-licenses",),
                "latest": ("zypper --non-interactive install --auto-agree-with-licenses",),
                "remove": ("zypper --non-interactive remove",)},
        update="zypper --non-interactive refresh", parse=_parse_zypper,
    ),
    "apk": Manager(
        name="apk", program="apk",
        query="apk info -e \"$@\" 2>/dev/null | awk '{ print $1 \"\\t\" }'",
        simulate={"install": "apk add --simulate --no-network \"$@\" 2>&1",
                  "latest": "apk add --simulate --no-network --upgrade \"$@\" 2>&1",
                  "remove": "apk del --simulate \"$@\" 2>&1"},
        change={"install": ("apk add",), "latest": ("apk add --upgrade",), "remove": ("apk del",)},
        update="apk update", parse=_parse_apk,
    ),
}

#: The order ``manager: auto`` tries them in.
DETECTION_ORDER = ("apt", "dnf", "yum", "zypper", "apk")


def simulation_error(manager: str, output: str, rc: int) -> str:
    """Why a simulation failed (a package no list knows, a broken database), or "" if it did not."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"(E:|Error:|ERROR:|No match for argument|No package "
                                                 r".* available|No provider of|Package '.*' not found)",
                                                 line)]
    if manager in ("dnf", "yum"):
        return "; ".join(errors[:3])  # --assumeno exits 1 on every transaction it declines
    if rc == 0:
        return ""
    return "; ".join((errors or lines[-3:])[:3]) or f"exit code {rc}"
