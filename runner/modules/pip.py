"""The ``pip`` module: install, upgrade or uninstall Python distributions, in a virtualenv or with a pip.

Services layer. The probe lists what the environment has installed
(``pip list --format=freeze``) and, when something is to be installed,
asks pip what it would install (``pip install --dry-run --report -``: the
distributions and versions, dependencies included; nothing is installed).
After a change the step lists the environment again, so the task registers
exactly what it installed (for a rollback that uninstalls only that).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.modules.base import Arg, Change, Command, Fact, Module, Outcome, failure_message, quote
from runner.results import CommandResult, Diff

#: A distribution name, optionally pinned with ``==``: no spaces, no shell metacharacters.
NAME_PATTERN = r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(==[A-Za-z0-9.+_-]+)?"
_HINT = "a distribution name, optionally name==version (letters, digits and . _ - +)"
_QUIET = "--disable-pip-version-check --no-input"


@dataclass(frozen=True)
class PipFacts:
    installed: Mapping[str, str] = field(default_factory=dict)  # canonical name -> version
    would_install: Mapping[str, str] = field(default_factory=dict)  # canonical name -> version
    simulation_error: str = ""
    error: str = ""


class PipModule(Module):
    """Install, upgrade or uninstall Python distributions with pip, or only look them up.

    ``virtualenv`` runs the environment's own interpreter (``<virtualenv>/bin/python -m
    pip``); ``executable`` names a pip to run instead. ``state: present`` installs
    what is missing (a ``name==version`` pin counts as missing when another
    version is installed), ``latest`` adds ``--upgrade``, ``absent`` uninstalls
    (pip leaves dependencies installed), ``checked`` only reads (registered:
    ``present``, ``missing``, ``ok``). ``extra_args`` go to ``pip install``
    (``--no-index --find-links /srv/wheels``, ``--index-url URL``). Check mode
    asks ``pip install --dry-run`` (pip 22.2 or newer). Registered after a
    change: ``installed``, ``upgraded``, ``removed``, read back from ``pip list``.
    """

    name = "pip"
    summary = "Install, upgrade or uninstall Python distributions with pip (in a virtualenv)"
    args = {
        "name": Arg("list", required=True, elements="str", pattern=NAME_PATTERN, pattern_hint=_HINT,
                    doc="The distributions (a string or a list), each optionally pinned: name==1.2."),
        "state": Arg("str", default="present", choices=("present", "latest", "absent", "checked"),
                     doc="present: install if missing; latest: upgrade; absent: uninstall; "
                         "checked: only look up."),
        "virtualenv": Arg("path", doc="The virtualenv to work in (its bin/python runs pip)."),
        "executable": Arg("path", doc="The pip to run (without virtualenv): pip3, /usr/bin/pip3.11."),
        "extra_args": Arg("str", default="", doc="More arguments for pip install, split like sh words."),
    }
    mutually_exclusive = (("virtualenv", "executable"),)
    required_one_of = (("virtualenv", "executable"),)

    def reads_only(self, args: Mapping[str, Any]) -> bool:
        return args.get("state") == "checked"

    def facts(self, args: Mapping[str, Any]) -> Mapping[str, Fact]:
        a = self.resolved(args)
        venv = (str(a["virtualenv"]),) if a.get("virtualenv") else ()  # check mode: an earlier change there
        return {"pip": Fact(":" if _problem(a) else _probe(a), _parse, paths=venv)}

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        a = self.resolved(args)
        f: PipFacts = facts["pip"]
        problem = _problem(a) or f.error
        if problem:
            return Change(changed=False, failed=problem)
        data = _lookup(a, f)
        where = _where(a)
        if a["state"] == "checked":
            shown = ", ".join(f"{n} {v}" for n, v in data["present"].items()) or "none"
            missing = f"; missing: {', '.join(data['missing'])}" if data["missing"] else ""
            return Change(changed=False, data=data, summary=f"installed in {where}: {shown}{missing}")
        todo = _todo(a, f)
        if not todo:
            return Change(changed=False, data=data, summary=f"{', '.join(_names(a))}: already "
                          f"{'absent' if a['state'] == 'absent' else 'installed'} in {where}")
        if f.simulation_error:
            return Change(changed=False, data=data, failed=f"pip cannot install {', '.join(todo)} in "
                          f"{where}: {f.simulation_error}")
        if a["state"] == "absent":
            changes = {_canonical(n): (f.installed[_canonical(n)], "absent") for n in todo}
        else:
            changes = {n: (f.installed.get(n, "absent"), v) for n, v in f.would_install.items()
                       if f.installed.get(n) != v}
        if not changes:
            return Change(changed=False, data=data, summary=f"{', '.join(todo)}: nothing to do in {where}")
        before = "".join(f"{n}: {old}\n" for n, (old, _) in changes.items())
        after = "".join(f"{n}: {new}\n" for n, (_, new) in changes.items())
        verb = "uninstall" if a["state"] == "absent" else "install"
        shown = ", ".join(n if a["state"] == "absent" else f"{n} {new}" for n, (_, new) in changes.items())
        return Change(changed=True, steps=(Command(_script(a, todo)),), data=data,
                      diffs=(Diff(f"python distributions ({where})", before, after),),
                      summary=f"{verb} {shown} in {where}")

    def outcome(self, args: Mapping[str, Any], facts: Mapping[str, Any], change: Change,
                results: Sequence[CommandResult]) -> Outcome:
        f: PipFacts = facts["pip"]
        if not results:
            return Outcome(changed=False, data=dict(change.data))
        result = results[-1]
        lines = result.stdout.splitlines()
        after = _freeze(lines[lines.index("@@after") + 1:]) if "@@after" in lines else dict(f.installed)
        installed = sorted(n for n in after if n not in f.installed)
        removed = sorted(n for n in f.installed if n not in after)
        upgraded = sorted(n for n in after if n in f.installed and after[n] != f.installed[n])
        data = {"installed": installed, "upgraded": upgraded, "removed": removed,
                "present": {n: after[n] for n in map(_canonical, _names(self.resolved(args))) if n in after}}
        done = "; ".join(f"{verb} {', '.join(names)}" for verb, names in
                         (("installed", installed), ("upgraded", upgraded), ("removed", removed)) if names)
        return Outcome(changed=bool(installed or removed or upgraded),
                       failed=failure_message(result) if result.rc != 0 else "", data=data,
                       summary=f"{done} in {_where(self.resolved(args))}" if done else "")


def _names(a: Mapping[str, Any]) -> list[str]:
    value = a["name"]
    return [str(v) for v in (value if isinstance(value, list) else [value]) if str(v)]


def _canonical(name: str) -> str:
    """PEP 503: lower case, runs of ``-_.`` as one ``-``; a ``==version`` pin dropped."""
    return re.sub(r"[-_.]+", "-", name.split("==", 1)[0]).lower()


def _problem(a: Mapping[str, Any]) -> str:
    bad = next((n for n in _names(a) if not re.fullmatch(NAME_PATTERN, n)), None)
    if bad is not None:
        return f"{bad!r} is not {_HINT}"
    if not a["virtualenv"] and not a["executable"]:
        return "give virtualenv or executable"
    try:
        shlex.split(str(a["extra_args"]))
    except ValueError as error:
        return f"extra_args: {error}"
    return ""


def _where(a: Mapping[str, Any]) -> str:
    return str(a["virtualenv"]) if a["virtualenv"] else f"the environment of {a['executable']}"


def _pip(a: Mapping[str, Any]) -> str:
    if a["virtualenv"]:
        return f"{_python(a)} -m pip"
    return quote(a["executable"])


def _python(a: Mapping[str, Any]) -> str:
    return quote(str(a["virtualenv"]).rstrip("/") + "/bin/python")


def _listing(a: Mapping[str, Any]) -> str:
    """``name==version`` of every distribution the environment sees (its own and the system's).

    In a virtualenv its interpreter reads them (importlib.metadata: quick); else ``pip list``.
    """
    if a["virtualenv"]:
        return (f"{_python(a)} -B -c \"import importlib.metadata as m; "
                "print('\\n'.join(str(d.metadata['Name']) + '==' + d.version for d in m.distributions()))\"")
    return f"{_pip(a)} list --format=freeze {_QUIET}"


def _todo(a: Mapping[str, Any], f: PipFacts) -> list[str]:
    names = _names(a)
    if a["state"] == "absent":
        return [n for n in names if _canonical(n) in f.installed]
    if a["state"] == "latest":
        return names
    return [n for n in names if not _satisfied(n, f.installed)]


def _satisfied(name: str, installed: Mapping[str, str]) -> bool:
    version = installed.get(_canonical(name))
    pinned = name.split("==", 1)[1] if "==" in name else None
    return version is not None and (pinned is None or pinned == version)


def _lookup(a: Mapping[str, Any], f: PipFacts) -> dict[str, Any]:
    names = _names(a)
    present = {_canonical(n): f.installed[_canonical(n)] for n in names if _satisfied(n, f.installed)}
    missing = [n for n in names if not _satisfied(n, f.installed)]
    return {"present": present, "missing": missing, "ok": not missing}


def _install_args(a: Mapping[str, Any]) -> str:
    extra = " ".join(quote(word) for word in shlex.split(str(a["extra_args"])))
    upgrade = " --upgrade" if a["state"] == "latest" else ""
    return f"{_QUIET}{upgrade}{' ' + extra if extra else ''}"


def _probe(a: Mapping[str, Any]) -> str:
    pip = _pip(a)
    lines = [f"out=$({_listing(a)} 2>&1) ||",
             "  { printf '%s\\n' \"$out\" | tail -n 3 >&2; exit 1; }",
             "printf '%s\\n' \"$out\" | sed 's/^/q /'"]
    if a["state"] in ("present", "latest"):
        names = " ".join(quote(n) for n in _names(a))
        dry_run = f"{pip} install --dry-run --quiet --report - {_install_args(a)} {names}"
        lines += [f"echo @@simulate; {dry_run} 2>&1", 'echo "@@rc=$?"']
    lines.append("echo @@end")
    return "\n".join(lines)


def _freeze(lines: Iterable[str]) -> dict[str, str]:
    """``name==version`` lines (``pip list --format=freeze``) by canonical name."""
    found: dict[str, str] = {}
    for line in lines:
        name, sep, version = line.strip().partition("==")
        if sep and name:
            found.setdefault(_canonical(name), version)  # the first on the path is the one imported
    return found


def _parse(result: CommandResult) -> PipFacts:
    lines = result.stdout.splitlines()
    if result.rc != 0 or "@@end" not in lines:
        return PipFacts(error=f"cannot list what pip installed: {result.tail('stderr', 3) or result.rc}")
    installed = _freeze(line[2:] for line in lines if line.startswith("q "))
    if "@@simulate" not in lines:
        return PipFacts(installed)
    start = lines.index("@@simulate") + 1
    end = next(i for i in range(len(lines) - 1, start - 1, -1) if lines[i].startswith("@@rc="))
    output = "\n".join(lines[start:end])
    try:
        report = json.loads(output[output.index("{"):]) if lines[end] == "@@rc=0" else None
    except ValueError:
        report = None
    if not isinstance(report, dict):
        tail = [line for line in lines[start:end] if line.strip()][-3:]
        return PipFacts(installed, simulation_error="; ".join(tail) or lines[end])
    would = {_canonical(item["metadata"]["name"]): str(item["metadata"]["version"])
             for item in report.get("install", [])}
    return PipFacts(installed, would)


def _script(a: Mapping[str, Any], todo: list[str]) -> str:
    pip, names = _pip(a), " ".join(quote(n) for n in todo)
    command = f"{pip} uninstall --yes {_QUIET} {names}" if a["state"] == "absent" else \
        f"{pip} install {_install_args(a)} {names}"
    return "\n".join([command, "rc=$?", f"echo @@after; {_listing(a)}", "exit $rc"])
