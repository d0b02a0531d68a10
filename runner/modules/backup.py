"""The ``backup_restore`` module: restore a directory from tar.gz backups, through staging, with undo.

Services layer. The probe lists the backups (full ``*.tar.gz`` and GNU tar
``--listed-incremental`` levels ``*.levelN.tar.gz``), checks each against its
``.sha256`` file, and checks the live directory against its own manifest.
The pure plan (``backupchoice``) picks the newest valid restore point at or
before ``restore_point``; the steps extract it into a staging directory beside
the target, verify the staged tree's manifest, then swap by two renames,
keeping the replaced tree as a safety snapshot that ``state: reverted`` puts
back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from runner.modules.backupchoice import (
    Archive,
    BackupFacts,
    Choice,
    RestoreModule,
    choose,
    describe_point,
    parse_point,
)
from runner.modules.base import Arg, Change, Command, quote
from runner.results import CommandResult, Diff

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def _paths(a: Mapping[str, Any]) -> tuple[str, str, str]:
    dest = str(a["dest"]).rstrip("/")
    return dest, f"{dest}.remedy-snapshot-{a['snapshot']}", f"{dest}.remedy-staging-{a['snapshot']}"


def _problem(a: Mapping[str, Any]) -> str:
    if not _NAME.match(str(a["snapshot"] or "")):
        return f"snapshot {a['snapshot']!r}: use letters, digits, '.', '_' and '-'"
    if str(a["dest"]).rstrip("/") in ("", ".", ".."):
        return f"refusing to restore {a['dest']!r}"
    if a["state"] != "reverted" and not (a["full_dir"] or a["incremental_dir"]):
        return "give full_dir or incremental_dir (or both)"
    if a["restore_point"] and parse_point(str(a["restore_point"])) is None:
        return f"restore_point {a['restore_point']!r} is not a time such as 2024-03-14T10:00:00Z"
    manifest = str(a["manifest"] or "")
    if manifest.startswith("/") or ".." in manifest.split("/"):
        return "manifest is a path relative to dest"
    return ""


def _probe(a: Mapping[str, Any]) -> str:
    dest, snap, stage = _paths(a)
    lines = [
        f"d={quote(dest)}", f"s={quote(snap)}", f"st={quote(stage)}",
        'if [ -L "$d" ]; then echo dest=link; elif [ -d "$d" ]; then echo dest=directory; '
        'elif [ -e "$d" ]; then echo dest=other; else echo dest=absent; fi',
        'if [ -d "$s" ]; then echo snapshot=directory; '
        'elif [ -e "$s.absent" ]; then echo snapshot=absent-marker; '
        'elif [ -e "$s" ]; then echo snapshot=other; else echo snapshot=none; fi',
        'if [ -e "$st" ]; then echo staging=present; fi',
        'if [ -d "$d" ]; then echo "entries=$(find "$d" -mindepth 1 | wc -l)"; fi',
    ]
    if a["manifest"]:
        lines += [
            f"m={quote(a['manifest'])}",
            'if [ -d "$d" ] && [ -f "$d/$m" ]; then',
            '  out=$(cd "$d" && sha256sum -c --quiet -- "$m" 2>&1); echo "check=$?"',
            "  printf '%s\\n' \"$out\" | grep -v '^sha256sum:' | head -n 5 | sed 's/^/bad /'",
            'elif [ -d "$d" ]; then echo "check=missing"; fi',
        ]
    if a["state"] != "reverted":
        for kind, directory, pattern in (("full", a["full_dir"], a["full_pattern"]),
                                         ("inc", a["incremental_dir"], a["incremental_pattern"])):
            if directory:
                lines += [
                    f"b={quote(directory)}",
                    f'for x in "$b"/{_glob(str(pattern))}; do',
                    '  [ -f "$x" ] || continue',
                    '  if [ ! -f "$x.sha256" ]; then v=nosum',
                    "  elif [ \"$(sha256sum <\"$x\" | cut -d' ' -f1)\" = "
                    "\"$(cut -d' ' -f1 <\"$x.sha256\")\" ]; then v=ok; else v=mismatch; fi",
                    f'  echo "archive {kind} $v $(wc -c <"$x") ${{x##*/}}"',
                    "done",
                ]
    lines.append("echo end=1")
    return "\n".join(lines)


def _glob(pattern: str) -> str:
    """A glob for sh: every character but * ? [ ] quoted."""
    return "".join(c if c in "*?[]" else quote(c) for c in pattern) if pattern else "*"


def _parse(result: CommandResult) -> BackupFacts:
    found: dict[str, str] = {}
    bad: list[str] = []
    archives: list[Archive] = []
    for line in result.stdout.splitlines():
        if line.startswith("bad "):
            bad.append(line[4:])
        elif line.startswith("archive "):
            parts = line.split(" ", 4)
            if len(parts) == 5:
                archives.append(Archive.of(parts[1], parts[4], parts[2], int(parts[3] or 0)))
        else:
            key, _, value = line.partition("=")
            found.setdefault(key, value)
    if result.rc != 0 or "end" not in found:
        return BackupFacts(error=f"the backup probe failed: {result.tail('stderr', 3) or result.rc}")
    return BackupFacts(dest=found.get("dest", ""), entries=int(found.get("entries") or 0),
                       check=found.get("check", ""), bad=tuple(bad), snapshot=found.get("snapshot", ""),
                       staging="staging" in found, archives=tuple(archives))


def _restore_plan(a: Mapping[str, Any], f: BackupFacts) -> Change:
    dest, snap, stage = _paths(a)
    if f.dest in ("link", "other"):
        return Change(changed=False, failed=f"{dest} is not a directory ({f.dest}); not replaced")
    healthy = f.dest == "directory" and (f.check == "0" or not a["manifest"])
    if healthy and not a["force"]:
        return Change(changed=False, summary=f"{dest} passes its manifest check: nothing to restore")
    if f.snapshot != "none":
        return Change(changed=False, failed=f"{snap} already exists; choose another snapshot name")
    point = parse_point(str(a["restore_point"])) if a["restore_point"] else None
    choice: Choice = choose(f.archives, point)
    data = choice.data()
    if not choice.archives:
        return Change(changed=False, data=data, failed=choice.failure(point))
    dirs = {"full": str(a["full_dir"]), "inc": str(a["incremental_dir"])}
    return Change(
        changed=True,
        steps=(Command(_stage_script(choice, dirs, stage, str(a["manifest"] or ""))),
               Command(_swap_script(dest, snap, stage))),
        diffs=(Diff(dest, _now(f, dest), f"restored from {choice.label()} ({describe_point(choice.time)})\n"
                    f"old tree kept as {snap}\n"),),
        summary=f"restore {dest} from {choice.label()}" + "".join(f"; {s}" for s in choice.skipped)
        + (f"; keep the current tree as {snap}" if f.dest == "directory" else f"; {dest} does not exist yet"),
        data=data,
    )


def _now(f: BackupFacts, dest: str) -> str:
    if f.dest == "absent":
        return "absent\n"
    check = {"0": "passes", "missing": "manifest missing", "": "not checked"}.get(f.check, "FAILS")
    details = "".join(f"  {line}\n" for line in f.bad)
    return f"{f.entries} entries, manifest check {check}\n{details}"


def _stage_script(choice: Choice, dirs: Mapping[str, str], stage: str, manifest: str) -> str:
    lines = [
        f"st={quote(stage)}",
        'fail() { rm -rf -- "$st"; echo "$1" >&2; exit 1; }',
        'rm -rf -- "$st" && mkdir -- "$st" || exit 1',
    ]
    for archive in choice.archives:
        path = f"{dirs[archive.kind].rstrip('/')}/{archive.name}"
        incremental = " --listed-incremental=/dev/null" if archive.kind == "inc" else ""
        lines += [
            f"x={quote(path)}",
            "[ \"$(sha256sum <\"$x\" | cut -d' ' -f1)\" = \"$(cut -d' ' -f1 <\"$x.sha256\")\" ] "
            f"|| fail {quote(archive.name + ' no longer matches its .sha256; nothing was replaced')}",
            f'tar -xzf "$x"{incremental} -C "$st" 2>&1 || fail {quote("cannot extract " + archive.name)}',
        ]
    if manifest:
        lines += [
            f"m={quote(manifest)}",
            '[ -f "$st/$m" ] || fail "the restored tree has no $m; nothing was replaced"',
            'out=$(cd "$st" && sha256sum -c --quiet -- "$m" 2>&1) || '
            'fail "the restored tree does not match $m; nothing was replaced: '
            '$(printf %s "$out" | head -n 3)"',
        ]
    lines.append('echo "staged and verified in $st"')
    return "\n".join(lines)


def _swap_script(dest: str, snap: str, stage: str) -> str:
    return "\n".join([
        f"d={quote(dest)}", f"s={quote(snap)}", f"st={quote(stage)}",
        'if [ -e "$d" ]; then mv -- "$d" "$s" || exit 1; else : >"$s.absent" || exit 1; fi',
        'if ! mv -- "$st" "$d"; then',
        '  if [ -d "$s" ]; then mv -- "$s" "$d"; else rm -f -- "$s.absent"; fi',
        '  echo "cannot move the staged tree into place; $d is unchanged" >&2; exit 1',
        "fi",
        'echo "restored $d; the old tree is $s"',
    ])


def _revert_plan(a: Mapping[str, Any], f: BackupFacts) -> Change:
    dest, snap, stage = _paths(a)
    if f.snapshot not in ("directory", "absent-marker") and not f.staging:
        return Change(changed=False, summary=f"no snapshot {snap}: nothing to revert")
    lines = [f"d={quote(dest)}", f"s={quote(snap)}", f"st={quote(stage)}", 'rm -rf -- "$st"']
    if f.snapshot == "directory":
        lines.append('rm -rf -- "$d" && mv -- "$s" "$d"')
        after = f"the safety snapshot {snap}\n"
    elif f.snapshot == "absent-marker":
        lines.append('rm -rf -- "$d" && rm -f -- "$s.absent"')
        after = "absent (as before the restore)\n"
    else:
        after = f"{f.entries} entries (unchanged; the staging dir is removed)\n"
    return Change(
        changed=True,
        steps=(Command("\n".join(lines)),),
        diffs=(Diff(dest, _now(f, dest), after),),
        summary=f"put {dest} back as it was before the restore" if f.snapshot != "none"
        else f"remove the staging dir {stage}",
    )


class BackupRestoreModule(RestoreModule):
    """Restore ``dest`` from the newest valid backup (or the newest at or before ``restore_point``).

    Backups are ``full_dir/<full_pattern>`` archives and, in
    ``incremental_dir``, GNU tar ``--listed-incremental`` chains named
    ``*.levelN.tar.gz`` (level 0 starts a chain). Each name carries its time
    as ``YYYYMMDDTHHMMSS`` (UTC); each archive needs a ``<name>.sha256`` file
    (``sha256sum`` format) and is skipped when it does not match. The
    restore is extracted into ``<dest>.remedy-staging-<snapshot>``, checked
    with ``sha256sum -c`` against its ``manifest``, and swapped in; the old
    tree becomes ``<dest>.remedy-snapshot-<snapshot>``. Without ``force`` a
    ``dest`` that passes its manifest check is left alone.
    """

    name = "backup_restore"
    fact = "backups"
    summary = "Restore a directory from verified tar.gz backups via staging, keeping a snapshot"
    args = {
        "dest": Arg("path", required=True, doc="The directory to restore (e.g. the data dir)."),
        "full_dir": Arg("path", doc="Where the full backups are."),
        "full_pattern": Arg("str", default="*.tar.gz", doc="Glob of the full backups in full_dir."),
        "incremental_dir": Arg("path", doc="Where the incremental chain (*.levelN.tar.gz) is."),
        "incremental_pattern": Arg("str", default="*.level*.tar.gz",
                                   doc="Glob of the incremental archives in incremental_dir."),
        "restore_point": Arg("str", doc="Restore the newest valid backup at or before this time "
                             "(2024-03-14T10:00:00Z, 2024-03-14 10:00, 20240314T100000; a bare date "
                             "means its end); default: the newest valid backup."),
        "manifest": Arg("str", default="MANIFEST.sha256",
                        doc="sha256sum file inside the tree that a restore must satisfy; '' for none."),
        "snapshot": Arg("str", required=True, doc="Name of this restore's staging dir and safety snapshot."),
        "state": Arg("str", default="restored", choices=("restored", "checked", "reverted"),
                     doc="restored: restore; checked: only choose the backup (fails if none is valid); "
                     "reverted: put the safety snapshot back."),
        "force": Arg("bool", default=False, doc="Restore even when dest passes its manifest check."),
    }

    problem = staticmethod(_problem)
    probe = staticmethod(_probe)
    parse = staticmethod(_parse)
    restore = staticmethod(_restore_plan)
    revert = staticmethod(_revert_plan)
