"""File attributes: mode arithmetic and the steps that set mode, owner and group.

Services layer, used by ``file``, ``copy``, ``template`` and ``lineinfile``.
A wanted mode may be octal ("0640") or symbolic ("u=rwX,g=rX,o="); both are
turned into the exact resulting octal mode here, in Python, so that a plan
states the mode a path will have and the command sets exactly that mode.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from runner.modules.base import Command, chained, quote
from runner.modules.pathfact import PathInfo, TreeEntry

_OCTAL = re.compile(r"^[0-7]{3,4}$")
_CLAUSE = re.compile(r"^([ugoa]*)((?:[-+=](?:[rwxXst]*|[ugo]))+)$")
_ACTION = re.compile(r"([-+=])([ugo]|[rwxXst]*)")
_WHO = {"u": 0o4700, "g": 0o2070, "o": 0o1007, "a": 0o7777}
_PERM = {"r": 0o444, "w": 0o222, "x": 0o111, "s": 0o6000, "t": 0o1000}


class ModeError(ValueError):
    """A mode string that is neither octal nor symbolic."""


def is_octal(mode: str) -> bool:
    return bool(_OCTAL.match(mode))


def normalized(mode: str) -> str:
    """A symbolic mode with an explicit ``a`` where a clause names nobody.

    ``chmod`` masks who-less clauses with the umask; remedy does not, so a
    command that passes a symbolic mode on passes it in this form.
    """
    return ",".join(c if c[:1] in "ugoa" else f"a{c}" for c in mode.split(","))


def mode_after(current: int, mode: str, *, is_dir: bool) -> int:
    """The permission bits ``chmod mode`` leaves on a path whose bits are ``current``.

    Raises:
        ModeError: ``mode`` is not an octal or symbolic file mode.
    """
    if _OCTAL.match(mode):
        return int(mode, 8)
    result = current & 0o7777
    for clause in mode.split(","):
        match = _CLAUSE.match(clause)
        if not match:
            raise ModeError(f"{mode!r} is not a file mode")
        who = 0
        for char in match.group(1) or "a":
            who |= _WHO[char]
        for op, perms in _ACTION.findall(match.group(2)):
            result = _apply(result, op, _value(result, perms, who, is_dir=is_dir), who, is_dir)
    return result


def _value(mode: int, perms: str, who: int, *, is_dir: bool) -> int:
    if perms in ("u", "g", "o"):
        shift = {"u": 6, "g": 3, "o": 0}[perms]
        bits = (mode >> shift) & 0o7
        return (bits << 6 | bits << 3 | bits) & who & 0o777
    value = 0
    for char in perms:
        if char == "X":
            if is_dir or mode & 0o111:
                value |= 0o111
        else:
            value |= _PERM[char]
    return value & who


def _apply(mode: int, op: str, value: int, who: int, is_dir: bool) -> int:
    if op == "+":
        return mode | value
    if op == "-":
        return mode & ~value
    cleared = who & ~0o6000 if is_dir else who  # chmod keeps a directory's setuid/setgid
    return (mode & ~cleared) | value


def show(mode: int | None) -> str:
    """A mode as Ansible prints it: "0644"; "unknown" when not known."""
    return "unknown" if mode is None else f"{mode:04o}"


@dataclass(frozen=True)
class Wanted:
    """The attributes a task asks for; None leaves one as it is."""

    mode: str | None = None
    owner: str | None = None
    group: str | None = None

    def target_mode(self, current: int | None, *, is_dir: bool) -> int | None:
        """The mode a path ends with, given its current bits (None: a new path)."""
        if self.mode is None:
            return current
        base = current if current is not None else (0o755 if is_dir else 0o644)
        return mode_after(base, self.mode, is_dir=is_dir)


def owner_matches(wanted: str, uid: int | None, name: str) -> bool:
    """Whether an owner or group given by name or number is the current one."""
    return wanted == str(uid) if wanted.isdigit() else wanted == name


@dataclass(frozen=True)
class AttributePlan:
    """The commands that set attributes and the before/after lines of the diff."""

    steps: tuple[Command, ...] = ()
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    predictable: bool = True


def attribute_plan(info: PathInfo, wanted: Wanted, *, link: bool = False) -> AttributePlan:
    """Steps to give an existing path the wanted attributes; nothing when it has them."""
    path = quote(info.path)
    steps: list[Command] = []
    before: list[str] = []
    after: list[str] = []
    if wanted.mode is not None and not link:
        target = wanted.target_mode(info.mode, is_dir=info.kind == "directory")
        if target != info.mode and target is not None:
            steps.append(Command(f"chmod {target:05o} -- {path}", contained=True))
            before.append(f"mode: {show(info.mode)}")
            after.append(f"mode: {show(target)}")
    owner, group = _ownership(info, wanted)
    if owner or group:
        steps.append(Command(chown_command(owner, group, path, link=link), contained=True))
        if owner:
            before.append(f"owner: {info.owner or info.uid}")
            after.append(f"owner: {owner}")
        if group:
            before.append(f"group: {info.group or info.gid}")
            after.append(f"group: {group}")
    return AttributePlan(chained(steps), tuple(before), tuple(after))


def _ownership(info: PathInfo, wanted: Wanted) -> tuple[str, str]:
    owner = wanted.owner or ""
    group = wanted.group or ""
    if owner and owner_matches(owner, info.uid, info.owner):
        owner = ""
    if group and owner_matches(group, info.gid, info.group):
        group = ""
    return owner, group


def chown_command(owner: str, group: str, path: str, *, link: bool = False, recurse: bool = False) -> str:
    """``chown``/``chgrp`` of an already quoted path; owner or group may be empty."""
    opts = "".join((" -R" if recurse else "", " -h" if link else ""))
    if owner:
        who = f"{owner}:{group}" if group else owner
        return f"chown{opts} -- {quote(who)} {path}"
    return f"chgrp{opts} -- {quote(group)} {path}"


def tree_plan(info: PathInfo, wanted: Wanted) -> AttributePlan:
    """Steps that give a whole directory tree the wanted attributes (``recurse``)."""
    tree = info.tree
    path = quote(info.path)
    steps: list[Command] = []
    if tree is None:
        unknown: list[str] = []
        wanted_lines: list[str] = []
        if wanted.mode is not None:
            steps.append(_chmod_tree(wanted.mode, path))
        if wanted.owner or wanted.group:
            steps.append(Command(chown_command(wanted.owner or "", wanted.group or "", path, recurse=True),
                                 contained=True))
        for label, value in (("mode", wanted.mode), ("owner", wanted.owner), ("group", wanted.group)):
            if value:
                unknown.append(f"{label} (recursive): unknown (find -exec stat failed)")
                wanted_lines.append(f"{label} (recursive): {value}")
        return AttributePlan(chained(steps), tuple(unknown), tuple(wanted_lines), predictable=False)
    before: list[str] = []
    after: list[str] = []
    if wanted.mode is not None:
        files = [e for e in tree if not e.is_link]
        old: Counter[str] = Counter()
        new: Counter[str] = Counter()
        for entry in files:
            old[show(entry.raw_mode & 0o7777)] += entry.count
            new[show(wanted.target_mode(entry.raw_mode & 0o7777, is_dir=entry.is_dir))] += entry.count
        if old != new:
            steps.append(_chmod_tree(wanted.mode, path))
            before.append(f"mode (recursive): {_histogram(old)}")
            after.append(f"mode (recursive): {_histogram(new)}")
    owner = _tree_owner(tree, wanted.owner, owner=True)
    group = _tree_owner(tree, wanted.group, owner=False)
    if owner or group:
        steps.append(Command(chown_command(owner, group, path, recurse=True), contained=True))
        for label, wanted_name, is_owner in (("owner", owner, True), ("group", group, False)):
            if wanted_name:
                names = Counter[str]()
                for entry in tree:
                    names[entry.owner if is_owner else entry.group] += entry.count
                before.append(f"{label} (recursive): {_histogram(names)}")
                after.append(f"{label} (recursive): {wanted_name} x{sum(names.values())}")
    return AttributePlan(chained(steps), tuple(before), tuple(after))


def _chmod_tree(mode: str, path: str) -> Command:
    shown = f"{int(mode, 8):05o}" if is_octal(mode) else quote(normalized(mode))
    return Command(f"chmod -R -- {shown} {path}", contained=True)


def _tree_owner(tree: Iterable[TreeEntry], wanted: str | None, *, owner: bool) -> str:
    if not wanted:
        return ""
    for entry in tree:
        uid, name = (entry.uid, entry.owner) if owner else (entry.gid, entry.group)
        if not owner_matches(wanted, uid, name):
            return wanted
    return ""


def _histogram(counts: Counter[str]) -> str:
    return ", ".join(f"{key} x{n}" for key, n in sorted(counts.items()))
