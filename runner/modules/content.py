"""The ``copy`` and ``template`` modules, and the plan of writing a whole file.

Services layer. The path probe reads the destination's kind, attributes,
sha256 and (when small and text) content; ``write_plan`` compares that with
the wanted content and attributes and returns an ``Upload`` (atomic on the
host: temp file, sha256 check, validate, backup, rename) or a ``chmod``/``chown``,
with exact diffs. ``lineinfile`` uses ``write_plan`` too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.modules.attributes import ModeError, Wanted, attribute_plan, show
from runner.modules.base import Arg, Change, Fact, Module, PathEffect, Upload, flag
from runner.modules.pathfact import (
    CONTENT_LIMIT,
    PathInfo,
    Probe,
    describe,
    missing_parent,
    path_fact,
    refusal,
)
from runner.results import Diff

#: Arguments shared by every module that writes a whole file.
WRITE_ARGS = {
    "mode": Arg(
        "mode",
        doc='Permissions of the file, octal ("0640") or symbolic. '
        "Default: an existing file keeps its mode, a new one gets 0644.",
    ),
    "owner": Arg("str", doc="Owner, by name or uid. Default: an existing file keeps its owner."),
    "group": Arg("str", doc="Group, by name or gid. Default: an existing file keeps its group."),
    "backup": Arg("bool", default=False, doc="Keep the replaced file as a timestamped backup beside it."),
    "validate": Arg(
        "str",
        doc="A command run on the new file before it replaces the old one; "
        "%s stands for the new file's path, e.g. 'nginx -t -c %s'.",
    ),
}


@dataclass(frozen=True)
class Write:
    """What a task wants written: the bytes plus the upload options."""

    content: bytes
    wanted: Wanted
    backup: bool = False
    validate: str | None = None


def write_plan(info: PathInfo, write: Write, *, force: bool = True) -> Change:
    """Predict writing ``write`` to ``info.path``; refuses links, directories, missing parents."""
    failed = _write_failure(info, write)
    if failed:
        return Change(changed=False, failed=failed)
    checksum = hashlib.sha256(write.content).hexdigest()
    try:
        target = write.wanted.target_mode(info.mode, is_dir=False)
    except ModeError as exc:
        return Change(changed=False, failed=str(exc))
    data = {
        "dest": info.path,
        "checksum": checksum,
        "size": len(write.content),
        "mode": show(target if target is not None else 0o644),
        "state": "file",
    }
    if info.exists and (info.checksum == checksum or not force):
        attrs = attribute_plan(info, write.wanted)
        if not attrs.steps:
            kept = "" if info.checksum == checksum else " (force: false keeps its content)"
            return Change(changed=False, data=data, summary=f"{info.path} is as wanted{kept}")
        wanted = write.wanted
        return Change(
            changed=True,
            steps=attrs.steps,
            data=data,
            diffs=(_lines_diff(info.path, attrs.before, attrs.after),),
            summary=f"set {', '.join(x.split(':')[0] for x in attrs.after)} of {info.path}",
            effects=(PathEffect(info.path, mode=None if wanted.mode is None else target,
                                owner=wanted.owner, group=wanted.group),),
        )
    upload = Upload(
        dest=info.path,
        content=write.content,
        mode=show(target if target is not None else 0o644),
        owner=write.wanted.owner or (str(info.uid) if info.exists else None),
        group=write.wanted.group or (str(info.gid) if info.exists else None),
        owner_is_dest=info.exists and write.wanted.owner in (None, str(info.uid))
        and write.wanted.group in (None, str(info.gid)),
        backup=write.backup,
        validate=write.validate,
    )
    diffs = [Diff(info.path, _before_text(info), _text(write.content))]
    if info.exists:
        attrs = attribute_plan(info, write.wanted)
        if attrs.before:
            diffs.append(_lines_diff(info.path, attrs.before, attrs.after))
    else:
        after = [f"mode: {upload.mode}"]
        after += [f"{k}: {v}" for k, v in (("owner", upload.owner), ("group", upload.group)) if v]
        diffs.append(_lines_diff(info.path, ("state: absent",), tuple(after)))
    verb = "replace" if info.exists else "create"
    written = PathEffect(info.path, kind="" if info.exists else "file", mode=int(upload.mode or "644", 8),
                         owner=upload.owner, group=upload.group, content=write.content)
    return Change(
        changed=True,
        steps=(upload,),
        diffs=tuple(diffs),
        data=data,
        summary=f"{verb} {info.path} ({len(write.content)} bytes)",
        effects=(written,),
    )


def _write_failure(info: PathInfo, write: Write) -> str:
    if info.error:
        return f"cannot inspect {info.path}: {info.error}"
    if info.kind == "link":
        return refusal(info, "destination")
    if info.kind in ("directory", "other"):
        return f"destination {info.path} is {describe(info)}; give the full path of a file"
    if not info.exists and info.parent != "directory":
        return missing_parent(info)
    if info.exists and info.checksum is None:
        return (
            f"cannot compare {info.path}: neither sha256sum nor openssl worked on the host"
            " (or the file is not readable)"
        )
    if write.validate is not None and "%s" not in write.validate:
        return f"validate must contain %s (the new file's path): {write.validate!r}"
    return ""


def _before_text(info: PathInfo) -> str:
    if not info.exists:
        return ""
    if info.content is not None:
        return info.content
    return (
        f"(not shown: binary, unreadable or larger than {CONTENT_LIMIT} bytes; "
        f"{info.size} bytes, sha256 {info.checksum})\n"
    )


def _text(content: bytes) -> str:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return f"(not shown: binary, {len(content)} bytes)\n"


def _lines_diff(path: str, before: tuple[str, ...], after: tuple[str, ...]) -> Diff:
    return Diff(path, "".join(f"{x}\n" for x in before), "".join(f"{x}\n" for x in after))


def content_probe(path: str) -> Fact:
    """The path probe with sha256 and content, as every file-writing module uses it."""
    return path_fact(path, Probe(checksum="sha256", content_limit=CONTENT_LIMIT))


class CopyModule(Module):
    """Write a file from inline ``content`` or a project file ``src``.

    The file is replaced atomically only when its sha256 differs; otherwise
    only mode, owner and group are corrected. Symbolic links, directories and
    missing parent directories at ``dest`` are refused with a clear failure.
    """

    name = "copy"
    summary = "Write a file from inline content or a project file, atomically"
    args = {
        "dest": Arg("path", required=True, doc="Where the file goes on the host."),
        "content": Arg("str", doc="The file's content, given inline."),
        "src": Arg("local_file", doc="A file of the project to copy (read on the controller)."),
        "force": Arg(
            "bool",
            default=True,
            doc="Replace a file whose content differs; false only creates a missing file.",
        ),
        **WRITE_ARGS,
    }
    mutually_exclusive = (("content", "src"),)
    required_one_of = (("content", "src"),)

    def facts(self, args: Mapping[str, Any]) -> Mapping[str, Fact]:
        return {"path": content_probe(str(args["dest"]))}

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        a = self.resolved(args)
        text = a["content"] if a["content"] is not None else a["src"]
        if text is None:
            return Change(changed=False, failed="copy needs content or src")
        return write_plan(facts["path"], _write(a, str(text)), force=flag(a["force"]))


class TemplateModule(Module):
    """Render a Jinja2 template of the project and write it, like ``copy``."""

    name = "template"
    summary = "Render a project template with the task's variables and write it atomically"
    args = {
        "src": Arg(
            "template_file",
            required=True,
            doc="The template file of the project, rendered with the task's variables.",
        ),
        "dest": Arg("path", required=True, doc="Where the rendered file goes on the host."),
        "force": Arg(
            "bool",
            default=True,
            doc="Replace a file whose content differs; false only creates a missing file.",
        ),
        **WRITE_ARGS,
    }

    def facts(self, args: Mapping[str, Any]) -> Mapping[str, Fact]:
        return {"path": content_probe(str(args["dest"]))}

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        a = self.resolved(args)
        return write_plan(facts["path"], _write(a, str(a["src"])), force=flag(a["force"]))


def _write(a: Mapping[str, Any], text: str) -> Write:
    return Write(
        content=text.encode("utf-8", errors="surrogateescape"),
        wanted=Wanted(a.get("mode"), a.get("owner"), a.get("group")),
        backup=flag(a.get("backup")),
        validate=a.get("validate"),
    )
