"""The ``cache_dir`` module: check a file cache against its source, empty it, undo that.

Services layer. A file cache is a directory whose entries are copies of
source files under the same relative paths. ``checked`` compares them by
sha1 (one ``find ... -exec sha1sum`` per side); ``emptied`` moves the whole
directory aside as a snapshot (one rename, so nothing is copied and the
service never sees half a cache) and recreates it empty with the same owner
and mode; ``restored`` swaps the snapshot back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.modules.base import Arg, Change, Command, Fact, Module, quote
from runner.results import CommandResult, Diff

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


@dataclass(frozen=True)
class CacheFacts:
    kind: str = ""  # directory, absent, other
    entries: int = 0
    kib: int = 0
    owner: str = ""  # uid:gid
    mode: str = ""
    cached: Mapping[str, str] = field(default_factory=dict)  # relative path -> sha1
    source: Mapping[str, str] = field(default_factory=dict)
    snapshot: str = ""  # directory, absent, other
    error: str = ""


class CacheDirModule(Module):
    """Check, empty or restore a directory cache (entries mirror files under ``source_dir``).

    ``state: checked`` only reads: each regular file in ``path`` (names
    starting with ``.`` are in-flight temporaries and are skipped) is
    compared with ``source_dir/<same relative path>``; the data lists
    ``stale`` entries (differ) and ``orphans`` (no such source file).
    ``state: emptied`` leaves ``path`` an empty directory with its owner and
    mode; with ``snapshot`` the old directory is kept, renamed to
    ``<path>.remedy-snapshot-<snapshot>``, and ``state: restored`` puts it back
    (the directory recreated by the flush, and whatever was cached in it
    since, is removed).
    """

    name = "cache_dir"
    summary = "Check a directory cache against its source files, empty it, or restore it"
    args = {
        "path": Arg("path", required=True, doc="The cache directory."),
        "state": Arg("str", default="checked", choices=("checked", "emptied", "restored"),
                     doc="checked: only compare; emptied: flush; restored: undo a flush from its snapshot."),
        "source_dir": Arg("path", doc="With state checked: the directory the cache holds copies of."),
        "snapshot": Arg("str", doc="Name of the kept copy (letters, digits, . _ -); none: delete entries."),
    }

    def reads_only(self, args: Mapping[str, Any]) -> bool:
        return args.get("state") in (None, "checked")

    def facts(self, args: Mapping[str, Any]) -> Mapping[str, Fact]:
        a = self.resolved(args)
        return {"cache": Fact(":" if _problem(a) else _probe(a), _parse, paths=(str(a["path"]),))}

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        a = self.resolved(args)
        f: CacheFacts = facts["cache"]
        problem = _problem(a) or f.error
        if problem:
            return Change(changed=False, failed=problem)
        path = str(a["path"])
        if a["state"] == "restored":
            return _restore_plan(path, snapshot_path(a), f)
        if f.kind == "other":
            return Change(changed=False, failed=f"{path} is not a directory")
        if a["state"] == "checked":
            data = _check_data(a, f)
            return Change(changed=False, data=data, summary=data["summary"])
        return _empty_plan(a, f)


def snapshot_path(a: Mapping[str, Any]) -> str:
    return f"{str(a['path']).rstrip('/')}.remedy-snapshot-{a['snapshot']}"


def _problem(a: Mapping[str, Any]) -> str:
    if a["snapshot"] is not None and not _NAME.match(str(a["snapshot"])):
        return f"snapshot {a['snapshot']!r}: use letters, digits, '.', '_' and '-'"
    if a["state"] == "restored" and not a["snapshot"]:
        return "state restored needs snapshot"
    if str(a["path"]).rstrip("/") in ("", ".", ".."):
        return f"refusing to manage {a['path']!r} as a cache"
    return ""


def _probe(a: Mapping[str, Any]) -> str:
    lines = [
        f"p={quote(a['path'])}",
        'if [ -L "$p" ]; then echo kind=other; elif [ -d "$p" ]; then echo kind=directory; '
        'elif [ -e "$p" ]; then echo kind=other; else echo kind=absent; fi',
    ]
    if a["snapshot"]:
        lines += [f"s={quote(snapshot_path(a))}",
                  'if [ -d "$s" ] && [ ! -L "$s" ]; then echo snapshot=directory; '
                  'elif [ -e "$s" ] || [ -L "$s" ]; then echo snapshot=other; else echo snapshot=absent; fi']
    lines += [
        'if [ -d "$p" ] && [ ! -L "$p" ]; then',
        '  echo "entries=$(find "$p" -mindepth 1 | wc -l)"',
        '  echo "kib=$(du -sk "$p" | cut -f1)"',
        "  echo \"attrs=$(stat -c '%u:%g %a' \"$p\")\"",
    ]
    if a["state"] == "checked":
        lines.append("  (cd \"$p\" && find . -type f ! -name '.*' -exec sha1sum {} +) | sed 's/^/c /'")
        if a["source_dir"]:
            source = quote(a["source_dir"])
            lines.append(f"  (cd {source} && find . -type f -exec sha1sum {{}} +) | sed 's/^/s /'")
    lines += ["fi", "echo end=1"]
    return "\n".join(lines)


def _parse(result: CommandResult) -> CacheFacts:
    found: dict[str, str] = {}
    cached: dict[str, str] = {}
    source: dict[str, str] = {}
    for line in result.stdout.splitlines():
        if line[:2] in ("c ", "s "):
            digest, _, name = line[2:].partition("  ")
            (cached if line[0] == "c" else source)[name[2:] if name.startswith("./") else name] = digest
        else:
            key, _, value = line.partition("=")
            found.setdefault(key, value)
    if result.rc != 0 or "end" not in found:
        return CacheFacts(error=f"the cache probe failed: {result.tail('stderr', 3) or result.rc}")
    owner, _, mode = found.get("attrs", "").partition(" ")
    return CacheFacts(kind=found.get("kind", ""), entries=int(found.get("entries") or 0),
                      kib=int(found.get("kib") or 0), owner=owner, mode=mode, cached=cached,
                      source=source, snapshot=found.get("snapshot", ""))


def _check_data(a: Mapping[str, Any], f: CacheFacts) -> dict[str, Any]:
    stale, orphans = [], []
    if a["source_dir"]:
        for name, digest in sorted(f.cached.items()):
            if name not in f.source:
                orphans.append(name)
            elif f.source[name] != digest:
                stale.append(name)
    path = a["path"]
    if f.kind == "absent":
        summary = f"{path} does not exist (an empty cache)"
    elif stale or orphans:
        summary = (f"{path}: {len(stale)} stale entries, {len(orphans)} without a source file "
                   f"(of {len(f.cached)})")
    else:
        summary = f"{path}: {len(f.cached)} entries" + (", all equal to their source files"
                                                        if a["source_dir"] else "")
    return {"entries": len(f.cached), "stale": stale, "orphans": orphans, "ok": not (stale or orphans),
            "summary": summary}


def _empty_plan(a: Mapping[str, Any], f: CacheFacts) -> Change:
    path = str(a["path"])
    if f.kind == "absent" or f.entries == 0:
        return Change(changed=False, summary=f"{path} is already empty" if f.kind != "absent"
                      else f"{path} does not exist: nothing to flush")
    what = f"{f.entries} entries, {f.kib} KiB"
    if a["snapshot"]:
        snap = snapshot_path(a)
        if f.snapshot != "absent":
            return Change(changed=False, failed=f"{snap} already exists; choose another snapshot name")
        script = "\n".join([
            f"p={quote(path)}", f"s={quote(snap)}",
            'mv -- "$p" "$s" || exit 1',
            f'if ! {{ mkdir -- "$p" && chown {quote(f.owner)} "$p" && chmod {quote(f.mode)} "$p"; }}; then',
            '  rm -rf -- "$p"; mv -- "$s" "$p"',
            '  echo "cannot recreate $p; the cache was put back" >&2; exit 1',
            "fi",
        ])
        summary = f"move {path} aside ({what}) to {snap} and recreate it empty ({f.owner} {f.mode})"
    else:
        script = f"find {quote(path)} -mindepth 1 -maxdepth 1 -exec rm -rf -- {{}} +"
        summary = f"delete everything in {path} ({what})"
    return Change(
        changed=True,
        steps=(Command(script),),
        diffs=(Diff(path, f"{what}\n", "0 entries\n"),),
        summary=summary,
    )


def _restore_plan(path: str, snap: str, f: CacheFacts) -> Change:
    if f.snapshot != "directory":
        return Change(changed=False, summary=f"no snapshot {snap}: nothing to restore")
    if f.kind == "other":
        return Change(changed=False, failed=f"{path} is not a directory; not replaced by {snap}")
    script = "\n".join([f"p={quote(path)}", f"s={quote(snap)}", 'rm -rf -- "$p" && mv -- "$s" "$p"'])
    now = f"{f.entries} entries\n" if f.kind == "directory" else "absent\n"
    return Change(
        changed=True,
        steps=(Command(script),),
        diffs=(Diff(path, now, f"the snapshot {snap}\n"),),
        summary=f"put the snapshot {snap} back as {path}",
    )
