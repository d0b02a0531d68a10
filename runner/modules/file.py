"""The ``file`` module: make a path a file, a directory, a link, or nothing.

Services layer. One path probe (kind, mode, owner, link target and, with
``recurse``, a histogram of the tree) feeds a pure plan whose steps are
``mkdir``, ``touch``, ``ln``, ``rm``, ``chmod`` and ``chown`` commands.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from posixpath import normpath
from typing import Any

from runner.modules.attributes import (
    AttributePlan,
    ModeError,
    Wanted,
    attribute_plan,
    chown_command,
    show,
    tree_plan,
)
from runner.modules.base import Arg, Change, Command, Fact, Module, PathEffect, chained, flag, quote
from runner.modules.pathfact import (
    PathInfo,
    Probe,
    describe,
    missing_parent,
    path_fact,
    refusal,
)
from runner.results import Diff

STATES = ("file", "directory", "absent", "touch", "link")


class FileModule(Module):
    """Set a path's kind (file, directory, link, absent) and its mode, owner and group.

    ``state`` defaults to what the path already is (``file`` when it is
    missing, which then fails: use ``touch`` to create a file). ``touch``
    creates a missing file and keeps an existing file's times, so it is
    idempotent. Symbolic links at ``path`` are refused unless ``state: link``.
    A symbolic ``mode`` on a new path starts from 0644 (file) or 0755 (directory).
    """

    name = "file"
    summary = "Make a path a file, directory, symbolic link or nothing, with mode and owner"
    args = {
        "path": Arg("path", required=True, aliases=("dest", "name"), doc="The path to manage on the host."),
        "state": Arg(
            "str",
            choices=STATES,
            doc="file: must exist; directory: created with parents; absent: removed "
            "(recursively); touch: created empty if missing; link: a symbolic "
            "link to src. Default: what the path is now, or file.",
        ),
        "mode": Arg("mode", doc='Permissions, octal ("0640") or symbolic ("u=rwX,g=rX,o=").'),
        "owner": Arg("str", doc="Owner, by name or uid."),
        "group": Arg("str", doc="Group, by name or gid."),
        "recurse": Arg(
            "bool", default=False, doc="With state directory, apply mode, owner and group to the whole tree."
        ),
        "src": Arg("path", doc="With state link, the path the link points to (kept verbatim)."),
        "force": Arg(
            "bool",
            default=False,
            doc="With state link, replace an existing file or special file by the link.",
        ),
    }

    def facts(self, args: Mapping[str, Any]) -> Mapping[str, Fact]:
        return {"path": path_fact(str(args["path"]), Probe(tree=flag(args.get("recurse"))))}

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        a = self.resolved(args)
        info: PathInfo = facts["path"]
        path = str(a["path"])
        if info.error:
            return Change(changed=False, failed=f"cannot inspect {path}: {info.error}")
        default = info.kind if info.kind in ("file", "directory", "link") else "file"
        state = str(a["state"] or default)
        wanted = Wanted(a["mode"], a["owner"], a["group"])
        try:
            change = _state_change(info, a, state, wanted)
            if not change.changed:
                return change
            effect = _effect(info, state, wanted, recurse=flag(a["recurse"]))
            return replace(change, effects=(replace(effect, known=effect.known and change.predictable),))
        except ModeError as exc:
            return Change(changed=False, failed=str(exc))


def _state_change(info: PathInfo, a: Mapping[str, Any], state: str, wanted: Wanted) -> Change:
    if state == "absent":
        return _absent(info)
    if state == "link":
        return _link(info, a, wanted)
    if info.kind == "link":
        return Change(changed=False, failed=refusal(info, "path"))
    if state == "directory":
        return _directory(info, wanted, recurse=flag(a["recurse"]))
    return _file(info, wanted, touch=state == "touch")


def _effect(info: PathInfo, state: str, wanted: Wanted, *, recurse: bool) -> PathEffect:
    """What making ``info.path`` the ``state`` leaves there, for the plans of later tasks.

    Raises:
        ModeError: the wanted mode is not a file mode.
    """
    if state == "absent":
        return PathEffect(info.path, kind="absent", below="gone")
    if state == "link":
        return PathEffect(info.path, below="unknown", known=False)
    is_dir = state == "directory" or info.kind == "directory"
    mode = None if wanted.mode is None else wanted.target_mode(info.mode if info.exists else None,
                                                                is_dir=is_dir)
    if info.exists:
        return PathEffect(info.path, mode=mode, owner=wanted.owner, group=wanted.group,
                          below="unknown" if recurse else "kept")
    return PathEffect(info.path, kind="directory" if is_dir else "file", mode=mode, owner=wanted.owner,
                      group=wanted.group, content=None if is_dir else b"", below="gone")


def _absent(info: PathInfo) -> Change:
    if not info.exists:
        return Change(changed=False, summary=f"{info.path} is already absent")
    if normpath(info.path) in ("/", ".", ".."):
        return Change(changed=False, failed=f"refusing to remove {info.path!r}")
    return Change(
        changed=True,
        steps=(Command(f"rm -rf -- {quote(info.path)}", contained=True),),
        diffs=(Diff(info.path, f"state: {info.kind}\n", "state: absent\n"),),
        summary=f"remove {describe(info)} {info.path}",
    )


def _directory(info: PathInfo, wanted: Wanted, *, recurse: bool) -> Change:
    if info.kind == "directory":
        attrs = tree_plan(info, wanted) if recurse else attribute_plan(info, wanted)
        return _attributes(info, attrs)
    if info.exists:
        return Change(changed=False, failed=f"{info.path} is {describe(info)}, not a directory")
    steps: list[Command] = [Command(f"mkdir -p -- {quote(info.path)}", contained=True)]
    after = ["state: directory"]
    target = wanted.target_mode(None, is_dir=True)
    return _create(info, steps, after, target, wanted, what="directory")


def _file(info: PathInfo, wanted: Wanted, *, touch: bool) -> Change:
    if info.kind == "file" or (touch and info.kind in ("directory", "other")):
        return _attributes(info, attribute_plan(info, wanted))
    if info.exists:
        return Change(changed=False, failed=f"{info.path} is {describe(info)}, not a file")
    if not touch:
        return Change(
            changed=False, failed=f"{info.path} does not exist; use state: touch to create an empty file"
        )
    if info.parent != "directory":
        return Change(changed=False, failed=missing_parent(info))
    target = wanted.target_mode(None, is_dir=False)
    create = Command(f"touch -- {quote(info.path)}", contained=True)
    return _create(info, [create], ["state: file"], target, wanted, what="file")


def _create(
    info: PathInfo, steps: list[Command], after: list[str], target: int | None, wanted: Wanted, *, what: str
) -> Change:
    path = quote(info.path)
    if wanted.mode is not None and target is not None:
        steps.append(Command(f"chmod {target:05o} -- {path}", contained=True))
        after.append(f"mode: {show(target)}")
    if wanted.owner or wanted.group:
        steps.append(Command(chown_command(wanted.owner or "", wanted.group or "", path), contained=True))
        after.extend(f"{k}: {v}" for k, v in (("owner", wanted.owner), ("group", wanted.group)) if v)
    return Change(
        changed=True,
        steps=chained(steps),
        diffs=(Diff(info.path, "state: absent\n", "".join(f"{line}\n" for line in after)),),
        summary=f"create {what} {info.path}",
    )


def _attributes(info: PathInfo, attrs: AttributePlan) -> Change:
    if not attrs.steps:
        return Change(changed=False, summary=f"{info.path} is as wanted")
    return Change(
        changed=True,
        steps=attrs.steps,
        predictable=attrs.predictable,
        diffs=(_diff(info.path, attrs.before, attrs.after),),
        summary=f"set {', '.join(line.split(':')[0] for line in attrs.after)} of {info.path}",
    )


def _link(info: PathInfo, a: Mapping[str, Any], wanted: Wanted) -> Change:
    path = quote(info.path)
    if a["mode"] is not None:
        return Change(
            changed=False, failed="mode cannot be set on a symbolic link; set it on the link's target"
        )
    src = a["src"] if a["src"] is not None else info.link_target
    if src is None:
        return Change(changed=False, failed="state: link needs src, the path to link to")
    if info.kind == "link" and info.link_target == src:
        return _attributes(info, attribute_plan(info, wanted, link=True))
    if info.kind == "directory":
        return Change(
            changed=False, failed=f"{info.path} is a directory; remedy does not replace a directory by a link"
        )
    if info.kind in ("file", "other") and not flag(a["force"]):
        return Change(
            changed=False, failed=f"{info.path} is {describe(info)}; set force: true to replace it by a link"
        )
    if not info.exists and info.parent != "directory":
        return Change(changed=False, failed=missing_parent(info))
    opts = "-sfn" if info.exists else "-s"
    steps = [Command(f"ln {opts} -- {quote(str(src))} {path}", contained=True)]
    before = f"link: {info.link_target}\n" if info.kind == "link" else f"state: {info.kind}\n"
    after = [f"link: {src}"]
    if wanted.owner or wanted.group:
        steps.append(Command(chown_command(wanted.owner or "", wanted.group or "", path, link=True),
                             contained=True))
        after.extend(f"{k}: {v}" for k, v in (("owner", wanted.owner), ("group", wanted.group)) if v)
    return Change(
        changed=True,
        steps=chained(steps),
        diffs=(Diff(info.path, before, "".join(f"{x}\n" for x in after)),),
        summary=f"link {info.path} -> {src}",
    )


def _diff(path: str, before: tuple[str, ...], after: tuple[str, ...]) -> Diff:
    return Diff(path, "".join(f"{line}\n" for line in before), "".join(f"{line}\n" for line in after))
