"""The ``permissions`` module: declared owner, group and modes of a path or a whole tree.

Services layer. The probe asks ``find`` on the host for the entries that
differ from the declaration (so a healthy tree of a million files prints
nothing) and counts the rest. The plan records the old attributes of those
entries in a snapshot file on the host, then runs ``find ... -exec chown``
and ``-exec chmod`` with the same selection. ``state: audited`` only
reports; ``state: reverted`` puts a snapshot's attributes back. Symbolic
links are never followed: a link's own ownership is set (``chown -h``),
never its target's, so nothing outside the declared path changes.

Every legal file name works (newlines, quotes, bytes that are not UTF-8):
the probe lists entries NUL-terminated (``stat --printf``, see ``names``),
the snapshot keeps their exact bytes (``attrsnapshot``), messages escape them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.modules.attrsnapshot import revert_plan, snapshot_fact, snapshot_records
from runner.modules.base import Arg, Change, Command, Fact, Module, Upload, operand, parent_dir, quote
from runner.modules.names import decoded, raw, shown
from runner.results import CommandResult, Diff

_OCTAL = re.compile(r"^0?[0-7]{3,4}$")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$")
_TYPES = {0o040000: "d", 0o100000: "f", 0o120000: "l"}
SHOWN = 40  # entries listed in a diff; the rest are counted


@dataclass(frozen=True)
class Entry:
    """One entry that differs from the declaration, as ``stat`` saw it."""

    path: str
    kind: str  # d, f, l, or o (other)
    mode: int
    uid: int
    gid: int
    owner: str
    group: str


@dataclass(frozen=True)
class TreeFacts:
    exists: bool = False
    kind: str = ""
    total: int = 0
    differing: tuple[Entry, ...] = ()
    error: str = ""


class PermissionsModule(Module):
    """Give a path (and, with ``recurse``, everything below it) its declared owner, group and modes.

    ``mode`` is the mode of ``path`` itself; ``dir_mode`` and ``file_mode`` are
    the modes of the directories and regular files below it (and of ``path``
    when ``mode`` is not given). Modes are octal. Only entries that differ
    are touched. With ``snapshot`` (a file on the host) the old owner, group
    and mode of every entry changed is written there first; ``state:
    reverted`` with the same ``snapshot`` restores them and removes the file.
    ``state: audited`` changes nothing: its data lists the ``differing``
    entries and ``ok`` says whether there are none.
    """

    name = "permissions"
    summary = "Restore the declared owner, group and modes of a path or a tree, with undo"
    args = {
        "path": Arg("path", required=True, doc="The file or directory (never followed if a link)."),
        "owner": Arg("str", doc="The owner, by name or uid."),
        "group": Arg("str", doc="The group, by name or gid."),
        "mode": Arg("mode", doc='The octal mode of path itself ("0640").'),
        "dir_mode": Arg("mode", doc="With recurse, the octal mode of every directory below path."),
        "file_mode": Arg("mode", doc="With recurse, the octal mode of every regular file below path."),
        "recurse": Arg("bool", default=False, doc="Apply owner, group and modes to the whole tree."),
        "state": Arg(
            "str",
            default="enforced",
            choices=("enforced", "audited", "reverted"),
            doc="enforced: change what differs; audited: only report; reverted: restore a snapshot.",
        ),
        "snapshot": Arg(
            "path", doc="A file on the host that records the old attributes before a change (and is "
            "read back by state reverted)."
        ),
    }

    def reads_only(self, args: Mapping[str, Any]) -> bool:
        return args.get("state") == "audited"

    def facts(self, args: Mapping[str, Any]) -> Mapping[str, Fact]:
        a = self.resolved(args)
        if a["state"] == "reverted":
            return {"tree": snapshot_fact(str(a["snapshot"] or ""))}
        problem = _problem(a)
        return {"tree": Fact(":" if problem else _tree_probe(a), _parse_tree, paths=(str(a["path"]),))}

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        a = self.resolved(args)
        if a["state"] == "reverted":
            return revert_plan(str(a["path"]), str(a["snapshot"] or ""), facts["tree"])
        f: TreeFacts = facts["tree"]
        problem = _problem(a) or f.error
        if problem:
            return Change(changed=False, failed=problem)
        path = str(a["path"])
        if not f.exists:
            return Change(changed=False, failed=f"{path} does not exist")
        if f.kind == "l":
            return Change(changed=False, failed=f"{path} is a symbolic link; declare the path it points to")
        data = _data(a, f)
        if a["state"] == "audited" or not f.differing:
            return Change(changed=False, data=data, summary=data["summary"])
        return _enforce_plan(a, f, data)


def _problem(a: Mapping[str, Any]) -> str:
    for key in ("mode", "dir_mode", "file_mode"):
        if a[key] is not None and not _OCTAL.match(str(a[key])):
            return f"{key} must be an octal mode such as \"0640\", not {a[key]!r}"
    for key in ("owner", "group"):
        if a[key] is not None and not _NAME.match(str(a[key])):
            return f"{key} {a[key]!r} is not a user or group name or id"
    if not any(a[k] is not None for k in ("owner", "group", "mode", "dir_mode", "file_mode")):
        return "declare at least one of owner, group, mode, dir_mode, file_mode"
    if a["state"] == "reverted" and not a["snapshot"]:
        return "state reverted needs snapshot"
    return ""


def _octal(value: Any) -> str:
    return f"{int(str(value), 8):04o}"


def _selection(a: Mapping[str, Any], *, top: bool) -> str:
    """find predicates (POSIX) that select the entries differing from the declaration."""
    tests = []
    if a["owner"] is not None:
        tests.append(f"! -user {quote(a['owner'])}")
    if a["group"] is not None:
        tests.append(f"! -group {quote(a['group'])}")
    modes = ((a["mode"] or a["dir_mode"], a["mode"] or a["file_mode"]) if top
             else (a["dir_mode"], a["file_mode"]))
    for kind, mode in zip("df", modes, strict=True):
        if mode is not None:
            tests.append(f"\\( -type {kind} ! -perm {_octal(mode)} \\)")
    return "\\( " + " -o ".join(tests) + " \\)" if tests else "-false"


def _finds(a: Mapping[str, Any], action: str) -> list[str]:
    """``find`` commands over path itself and, with recurse, the entries below it."""
    path = operand(str(a["path"]))
    commands = [f"find {path} -prune {_selection(a, top=True)} {action}"]
    if a["recurse"]:
        commands.append(f"find {path} -mindepth 1 {_selection(a, top=False)} {action}")
    return commands


def _tree_probe(a: Mapping[str, Any]) -> str:
    path = operand(str(a["path"]))
    stat = "-exec stat --printf 'e %f %u %g %U %G %n\\0' {} +"
    return "\n".join([
        f"p={quote(a['path'])}",
        'if [ -L "$p" ]; then echo kind=l; exit 0; fi',
        'if [ ! -e "$p" ]; then echo kind=absent; exit 0; fi',
        'if [ -d "$p" ]; then echo kind=d; else echo kind=f; fi',
        f"echo total=$(find {path}{'' if a['recurse'] else ' -prune'} -print0 | tr -dc '\\000' | wc -c)",
        "echo ::entries",
        "{ " + "; ".join(_finds(a, stat)) + "; } | base64",
    ])


def _parse_tree(result: CommandResult) -> TreeFacts:
    head, marker, body = result.stdout.partition("::entries\n")
    found = dict(line.split("=", 1) for line in head.splitlines() if line[:5] in ("kind=", "total"))
    kind = found.get("kind", "")
    if result.rc != 0 or not kind:
        detail = result.tail("stderr", 3) or f"exit code {result.rc}"
        return TreeFacts(error=f"cannot inspect the path: {detail}")
    if kind in ("absent", "l"):
        return TreeFacts(exists=kind == "l", kind=kind)
    if result.truncated:
        return TreeFacts(error="cannot inspect the path: the list of entries that differ is longer than "
                         "remedy reads from one command; fix them by hand, or declare smaller trees")
    try:
        records = decoded(body).split("\0") if marker else ["?"]
    except ValueError as error:
        return TreeFacts(error=f"cannot read the entry list: {error}")
    entries = []
    for record in records[:-1]:
        parts = record.split(" ", 6)
        if len(parts) < 7 or parts[0] != "e":
            return TreeFacts(error=f"cannot read the entry list at {shown(record[:80])}")
        mode = int(parts[1], 16)
        entries.append(Entry(parts[6], _TYPES.get(mode & 0o170000, "o"), mode & 0o7777,
                             int(parts[2]), int(parts[3]), parts[4], parts[5]))
    if records[-1]:
        return TreeFacts(error=f"cannot read the entry list at {shown(records[-1][:80])}")
    unique = tuple(sorted(dict.fromkeys(entries), key=lambda e: raw(e.path)))
    return TreeFacts(exists=True, kind=kind, total=int(found.get("total", "0") or 0), differing=unique)


def _now(e: Entry) -> str:
    """An entry's owner, group and mode as the probe saw them."""
    return f"{e.owner}:{e.group}" + (f" {e.mode:04o}" if e.kind != "l" else " (link)")


def _wanted(a: Mapping[str, Any], e: Entry) -> str:
    """An entry's owner, group and mode as declared."""
    owner = a["owner"] if a["owner"] is not None else e.owner
    group = a["group"] if a["group"] is not None else e.group
    mode = _mode_for(a, e.kind, top=e.path == str(a["path"])) if e.kind in ("d", "f") else None
    bits = f" {_octal(mode)}" if mode is not None else (f" {e.mode:04o}" if e.kind != "l" else " (link)")
    return f"{owner}:{group}{bits}"


def _data(a: Mapping[str, Any], f: TreeFacts) -> dict[str, Any]:
    rows = [{"path": shown(e.path), "now": f"{shown(e.path)}: {_now(e)}",
             "want": f"{shown(e.path)}: {_wanted(a, e)}"} for e in f.differing]
    path = a["path"]
    summary = (f"{path}: all {f.total} entries as declared" if not rows
               else f"{path}: {len(rows)} of {f.total} entries differ (first: {rows[0]['now']})")
    return {"path": path, "total": f.total, "differing": rows, "count": len(rows), "ok": not rows,
            "summary": summary}


def _enforce_plan(a: Mapping[str, Any], f: TreeFacts, data: dict[str, Any]) -> Change:
    steps: list[Command | Upload] = []
    if a["snapshot"]:
        snapshot = str(a["snapshot"])
        records = snapshot_records((e.mode, e.uid, e.gid, e.path) for e in f.differing)
        steps.append(Command(f"mkdir -p -- {quote(parent_dir(snapshot))}"))
        steps.append(Upload(dest=snapshot, content=records, mode="0600"))
    if any(_owned_wrong(a, e) for e in f.differing):
        who = f"{a['owner'] or ''}" + (f":{a['group']}" if a["group"] is not None else "")
        action = f"-exec chown -h {quote(who)} {{}} +"
        steps += [Command(c) for c in _finds(_only(a, "owner", "group"), action)]
    wrong = {(e.path == str(a["path"]), e.kind) for e in f.differing if _mode_wrong(a, e)}
    steps += [Command(c) for top, kind, c in _chmods(a) if (top, kind) in wrong]
    top = str(a["path"])
    before = [f"{shown(_relative(e.path, top))}: {_now(e)}" for e in f.differing]
    after = [f"{shown(_relative(e.path, top))}: {_wanted(a, e)}" for e in f.differing]
    more = len(before) - SHOWN
    if more > 0:
        before, after = before[:SHOWN] + [f"... and {more} more"], after[:SHOWN] + [f"... and {more} more"]
    return Change(
        changed=True,
        steps=tuple(steps),
        diffs=(Diff(str(a["path"]), "".join(f"{x}\n" for x in before), "".join(f"{x}\n" for x in after)),),
        summary=f"fix {len(f.differing)} of {f.total} entries of {a['path']} ({_counts(a, f)})",
        data=data,
    )


def _relative(path: str, top: str) -> str:
    """An entry's path relative to the declared path (``.`` for the path itself)."""
    if path == top:
        return "."
    if path.startswith(top.rstrip("/") + "/"):
        return "./" + path[len(top.rstrip("/")) + 1:]
    return path


def _counts(a: Mapping[str, Any], f: TreeFacts) -> str:
    owner = sum(_owned_wrong(a, e) for e in f.differing)
    mode = sum(_mode_wrong(a, e) for e in f.differing)
    who = f"{a['owner'] or ''}" + (f":{a['group']}" if a["group"] is not None else "")
    parts = ([f"chown {owner} to {who}"] if owner else []) + ([f"chmod {mode}"] if mode else [])
    return ", ".join(parts)


def _only(a: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """``a`` with only ``keys`` of the declaration kept (for one kind of step)."""
    declared = ("owner", "group", "mode", "dir_mode", "file_mode")
    return {**a, **{k: (a[k] if k in keys else None) for k in declared}}


def _chmods(a: Mapping[str, Any]) -> list[tuple[bool, str, str]]:
    """(for path itself?, kind, chmod command): one per mode, over the entries that should have it."""
    commands = []
    path = operand(str(a["path"]))
    for kind in "df":
        mode = _mode_for(a, kind, top=True)
        if mode is not None:
            commands.append((True, kind, f"find {path} -prune -type {kind} ! -perm {_octal(mode)} "
                             f"-exec chmod {_octal(mode)} {{}} +"))
    if a["recurse"]:
        for kind in "df":
            mode = _mode_for(a, kind, top=False)
            if mode is not None:
                commands.append((False, kind, f"find {path} -mindepth 1 -type {kind} ! -perm "
                                 f"{_octal(mode)} -exec chmod {_octal(mode)} {{}} +"))
    return commands


def _mode_for(a: Mapping[str, Any], kind: str, *, top: bool) -> Any:
    """The declared mode of a directory (d) or regular file (f), at the top or below."""
    below = a["dir_mode"] if kind == "d" else a["file_mode"] if kind == "f" else None
    return (a["mode"] or below) if top and kind in "df" else below


def _owned_wrong(a: Mapping[str, Any], e: Entry) -> bool:
    def differs(want: Any, name: str, number: int) -> bool:
        return want is not None and str(want) not in (name, str(number))

    return differs(a["owner"], e.owner, e.uid) or differs(a["group"], e.group, e.gid)


def _mode_wrong(a: Mapping[str, Any], e: Entry) -> bool:
    if e.kind not in ("d", "f"):
        return False
    mode = _mode_for(a, e.kind, top=e.path == str(a["path"]))
    return mode is not None and int(str(mode), 8) != e.mode
