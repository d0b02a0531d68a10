"""The ``lineinfile`` module: ensure one line is present in, or absent from, a text file.

Services layer. The path probe reads the whole file (verified by sha256);
``edit`` computes the new content in pure Python with Ansible's rules, so the
diff is exact and the step is an atomic ``Upload`` of the new content.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from runner.modules.attributes import Wanted
from runner.modules.base import Arg, Change, Fact, Module, flag
from runner.modules.content import WRITE_ARGS, Write, content_probe, write_plan
from runner.modules.pathfact import CONTENT_LIMIT, PathInfo


@dataclass(frozen=True)
class Edit:
    """One lineinfile request, with its regular expressions compiled."""

    line: str | None
    regexp: re.Pattern[str] | None
    search_string: str | None
    present: bool
    insertafter: str | None  # "EOF", "BOF" or a pattern
    insertbefore: str | None
    backrefs: bool = False
    firstmatch: bool = False


def edit(text: str, request: Edit) -> tuple[str, str]:
    """The file's new content and what happened ("line added", "1 line(s) removed", "")."""
    lines = text.splitlines(keepends=True)
    if not request.present:
        kept = [x for x in lines if not _matches(x, request)]
        removed = len(lines) - len(kept)
        return "".join(kept), f"{removed} line(s) removed" if removed else ""
    line = request.line or ""
    index = _find(lines, request)
    if index is not None:
        match = request.regexp.search(lines[index]) if request.regexp else None
        new = match.expand(line) if request.backrefs and match else line
        if lines[index].rstrip("\r\n") == new:
            return text, ""
        lines[index] = new + _ending(lines[index])
        return "".join(lines), "line replaced"
    if request.backrefs or any(x.rstrip("\r\n") == line for x in lines):
        return text, ""
    at = _insertion_point(lines, request)
    if at == len(lines) and lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += "\n"
    lines.insert(at, line + "\n")
    return "".join(lines), "line added"


def _matches(line: str, request: Edit) -> bool:
    if request.regexp is not None:
        return request.regexp.search(line) is not None
    if request.search_string is not None:
        return request.search_string in line
    return line.rstrip("\r\n") == request.line


def _find(lines: list[str], request: Edit) -> int | None:
    """The line regexp or search_string picks: the last match, or the first with firstmatch."""
    if request.regexp is None and request.search_string is None:
        return None
    found = None
    for index, line in enumerate(lines):
        if _matches(line, request):
            found = index
            if request.firstmatch:
                break
    return found


def _insertion_point(lines: list[str], request: Edit) -> int:
    anchor = request.insertbefore or request.insertafter
    if anchor == "BOF":
        return 0
    if anchor is None or anchor == "EOF":
        return len(lines)
    pattern = re.compile(anchor)
    found = None
    for index, line in enumerate(lines):
        if pattern.search(line):
            found = index
            if request.firstmatch:
                break
    if found is None:
        return len(lines)
    return found if request.insertbefore else found + 1


def _ending(line: str) -> str:
    return line[len(line.rstrip("\r\n")) :] or "\n"


class LineinfileModule(Module):
    """Ensure a line is in a text file (replacing the line a regexp matches) or not in it.

    ``regexp`` (a Python regular expression) or ``search_string`` picks the line
    to replace or remove, the last match unless ``firstmatch``; without a match
    the line is inserted after ``insertafter`` or before ``insertbefore`` (a
    pattern, ``BOF`` or ``EOF``, default the end). Files larger than 512 KiB
    or not UTF-8 text are refused, as are links and missing parent directories.
    """

    name = "lineinfile"
    summary = "Ensure a line is present in or absent from a text file"
    args = {
        "path": Arg("path", required=True, aliases=("dest", "name"), doc="The file to edit."),
        "line": Arg(
            "str",
            aliases=("value",),
            doc="The line to put in the file (state present); with backrefs it may use \\1 groups of regexp.",
        ),
        "regexp": Arg(
            "str",
            aliases=("regex",),
            doc="A Python regular expression picking the line to replace or remove.",
        ),
        "search_string": Arg("str", doc="A literal string picking the line to replace or remove."),
        "state": Arg(
            "str",
            default="present",
            choices=("present", "absent"),
            doc="present: ensure the line is there; absent: remove matching lines.",
        ),
        "insertafter": Arg(
            "str",
            doc="Where a new line goes: after the last line matching this pattern, or EOF (default) or BOF.",
        ),
        "insertbefore": Arg(
            "str", doc="Where a new line goes: before the last line matching this pattern, or BOF."
        ),
        "create": Arg("bool", default=False, doc="Create the file when it is missing."),
        "backrefs": Arg(
            "bool",
            default=False,
            doc="Expand regexp groups in line; when regexp matches nothing the file is left alone.",
        ),
        "firstmatch": Arg(
            "bool",
            default=False,
            doc="Use the first match of regexp or insertafter/insertbefore, not the last.",
        ),
        **WRITE_ARGS,
    }
    mutually_exclusive = (("insertafter", "insertbefore"), ("regexp", "search_string"))

    def facts(self, args: Mapping[str, Any]) -> Mapping[str, Fact]:
        return {"path": content_probe(str(args["path"]))}

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        a = self.resolved(args)
        info: PathInfo = facts["path"]
        request = _request(a)
        if isinstance(request, str):
            return Change(changed=False, failed=request)
        if not info.exists and not info.error:
            if not request.present:
                return Change(changed=False, summary=f"{info.path} does not exist")
            if not flag(a["create"]):
                return Change(
                    changed=False, failed=f"{info.path} does not exist; set create: true to create it"
                )
        if info.kind == "file" and info.content is None and not info.error:
            return Change(
                changed=False,
                failed=f"cannot edit {info.path}: it is not UTF-8 text "
                f"of at most {CONTENT_LIMIT} bytes, or unreadable",
            )
        try:
            after, message = edit(info.content or "", request)
        except (re.error, IndexError) as exc:
            return Change(changed=False, failed=f"cannot expand line with regexp groups: {exc}")
        write = Write(
            after.encode("utf-8", errors="surrogateescape"),
            Wanted(a["mode"], a["owner"], a["group"]),
            flag(a["backup"]),
            a["validate"],
        )
        change = write_plan(info, write)
        if change.failed or not message:
            return change
        return replace(change, data={**change.data, "msg": message}, summary=f"{message} in {info.path}")


def _request(a: Mapping[str, Any]) -> Edit | str:
    present = a["state"] == "present"
    if present and a["line"] is None:
        return "state: present needs line"
    if not present and a["line"] is None and a["regexp"] is None and a["search_string"] is None:
        return "state: absent needs line, regexp or search_string"
    if flag(a["backrefs"]) and a["regexp"] is None:
        return "backrefs needs regexp"
    try:
        regexp = re.compile(a["regexp"]) if a["regexp"] is not None else None
        for anchor in (a["insertafter"], a["insertbefore"]):
            if anchor not in (None, "EOF", "BOF"):
                re.compile(anchor)
    except re.error as exc:
        return f"invalid regular expression: {exc}"
    line = None if a["line"] is None else str(a["line"])
    if line is not None and ("\n" in line or "\r" in line):
        return "line must be a single line (no newline characters)"
    return Edit(
        line,
        regexp,
        a["search_string"],
        present,
        a["insertafter"],
        a["insertbefore"],
        flag(a["backrefs"]),
        flag(a["firstmatch"]),
    )
