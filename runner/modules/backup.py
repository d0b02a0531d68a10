"""The ``backup_restore`` module: restore a directory from tar.gz backups, through staging, with undo.

Services layer. The probe lists the backups (full ``*.tar.gz`` and GNU tar
``--listed-incremental`` levels ``*.levelN.tar.gz``) and checks each one
(``backuptar``: its ``.sha256`` file, ``gzip -t``, its member listing), and
checks the live directory against its own manifest. The pure plan
(``backupchoice``) picks the newest valid restore point at or before
``restore_point`` and within ``max_fallback`` of the newest backup; the
steps extract it into a staging directory beside the target and check the
staged tree (an older point is tried when it fails), then swap by two
renames, keeping the replaced tree as a safety snapshot that
``state: reverted`` puts back. ``state: staged`` does the first part alone,
so that a playbook can stage before it stops the service.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from runner.modules.backupchoice import (
    Archive,
    BackupFacts,
    Choice,
    RestoreModule,
    choose_for,
    describe_point,
    fallback_problem,
    parse_point,
)
from runner.modules.backuptar import archive_checks, stage_script, swap_script
from runner.modules.base import Arg, Change, Command, Outcome, quote
from runner.results import CommandResult, Diff

#: How many restore points one staging step tries, newest first.
STAGING_TRIES = 5
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
    return fallback_problem(str(a["max_fallback"]))


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
    if a["state"] != "reverted":  # a staged tree is swapped in as it is: the archives are not read again
        dirs = (("full", a["full_dir"], a["full_pattern"]),
                ("inc", a["incremental_dir"], a["incremental_pattern"]))
        kinds = [(kind, str(directory), str(pattern)) for kind, directory, pattern in dirs if directory]
        lines += ['if [ ! -e "$st" ]; then', *archive_checks(kinds), "fi"]
    lines.append("echo end=1")
    return "\n".join(lines)


def _parse(result: CommandResult) -> BackupFacts:
    found: dict[str, str] = {}
    bad: list[str] = []
    archives: list[Archive] = []
    for line in result.stdout.splitlines():
        if line.startswith("bad "):
            bad.append(line[4:])
        elif line.startswith("note ") and archives:
            notes = [archives[-1].detail, line[5:]] if archives[-1].detail else [line[5:]]
            archives[-1] = replace(archives[-1], detail="; ".join(notes))
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
    if f.staging and a["state"] == "restored":
        return _swap_plan(a, f)
    if f.staging:
        return Change(changed=False, failed=f"{stage} already exists (left by an earlier run?); "
                      "remove it or choose another snapshot name")
    choice, point = choose_for(a, f.archives)
    if not choice.points:
        return Change(changed=False, data=choice.data(), failed=choice.failure(point))
    return _stage_plan(a, f, choice)


def _stage_plan(a: Mapping[str, Any], f: BackupFacts, choice: Choice) -> Change:
    """Stage the choice (trying older points if it fails in staging), and swap it in unless only staging."""
    dest, snap, stage = _paths(a)
    points = choice.points[:STAGING_TRIES]
    dirs = {"full": str(a["full_dir"]), "inc": str(a["incremental_dir"])}
    steps = [Command(stage_script(points, dirs, stage, str(a["manifest"] or "")))]
    when = f"{choice.label()} ({describe_point(choice.time)})"
    if a["state"] == "staged":
        parts = [f"stage {dest} from {choice.label()} in {stage}"]
        diff = Diff(stage, "absent\n", f"{when}, extracted and checked\n")
    else:
        parts = [f"restore {dest} from {choice.label()}"]
        diff = Diff(dest, _now(f, dest), f"restored from {when}\nold tree kept as {snap}\n")
        steps.append(Command(swap_script(dest, snap, stage)))
    loss = choice.loss()
    parts = [loss, *parts] if loss else [*parts, *choice.skipped]
    if len(points) > 1:
        parts.append(f"{len(points) - 1} older points to try if it fails its checks in staging")
    if a["state"] != "staged":
        parts.append(_keep(f, dest, snap))
    data = {**choice.data(), "tried": [p.label() for p in points]}
    return Change(changed=True, steps=tuple(steps), diffs=(diff,), summary="; ".join(parts), data=data)


def _swap_plan(a: Mapping[str, Any], f: BackupFacts) -> Change:
    """Swap in the tree an earlier ``state: staged`` task extracted and checked."""
    dest, snap, stage = _paths(a)
    return Change(
        changed=True,
        steps=(Command(swap_script(dest, snap, stage)),),
        diffs=(Diff(dest, _now(f, dest), f"the staged tree {stage}\nold tree kept as {snap}\n"),),
        summary=f"swap the staged (and checked) tree {stage} into {dest}; {_keep(f, dest, snap)}",
    )


def _keep(f: BackupFacts, dest: str, snap: str) -> str:
    return f"keep the current tree as {snap}" if f.dest == "directory" else f"{dest} does not exist yet"


def _now(f: BackupFacts, dest: str) -> str:
    if f.dest == "absent":
        return "absent\n"
    check = {"0": "passes", "missing": "manifest missing", "": "not checked"}.get(f.check, "FAILS")
    details = "".join(f"  {line}\n" for line in f.bad)
    return f"{f.entries} entries, manifest check {check}\n{details}"


def _staging_outcome(a: Mapping[str, Any], f: BackupFacts, done: Outcome, result: CommandResult) -> Outcome:
    """What the staging step did: the point it staged, or why every point it tried failed."""
    choice, _ = choose_for(a, f.archives)
    points = choice.points[:STAGING_TRIES]
    staged, reasons = None, []
    for line in result.stdout.splitlines():
        word, _, rest = line.partition(" ")
        index, _, why = rest.partition(" ")
        if not index.isdigit() or int(index) >= len(points):
            continue
        if word == "staged":
            staged = points[int(index)]
        elif word == "skipped":
            reasons.append(f"skipped {points[int(index)].label()} in staging: {why}")
    if staged is None:
        tried = "; ".join(reasons) or done.failed
        return replace(done, changed=False, failed="no restore point passed its checks in staging; nothing "
                       f"was replaced: {tried}")
    if not reasons:
        return done
    window, skipped = choice.window(staged), [*choice.skipped, *reasons]
    used = f"{'staged' if a['state'] == 'staged' else 'restored from'} {staged.label()}"
    summary = (f"restores {window}: " if window else "") + "; ".join([*skipped, used])
    data = {**done.data, "archives": [x.name for x in staged.archives], "skipped": skipped,
            "time": staged.time.isoformat()}
    return replace(done, summary=summary, data=data)


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
    as ``YYYYMMDDTHHMMSS`` (UTC). An archive is valid when it matches its
    ``<name>.sha256`` file (``sha256sum`` format), passes ``gzip -t``, and
    lists no absolute member, no ``..`` component and no link that leaves
    the tree; an invalid one is skipped and named. Falling back to a point
    older than the newest backup is said first in the plan, and refused
    beyond ``max_fallback`` (``restore_point`` accepts an older one). The
    choice is extracted into ``<dest>.remedy-staging-<snapshot>``, where no
    symbolic link may resolve outside the tree and ``sha256sum -c`` must pass
    against its ``manifest``; when it fails, the next older valid point is
    tried. Then the staged tree is swapped in and the old tree becomes
    ``<dest>.remedy-snapshot-<snapshot>``. Without ``force`` a ``dest``
    that passes its manifest check is left alone.
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
        "max_fallback": Arg("str", default="24h", doc="How much older than the newest backup (at or "
                            "before restore_point) the restored one may be: 90m, 24h, 2d, 1w, or "
                            "unlimited; an older choice fails before anything changes."),
        "manifest": Arg("str", default="MANIFEST.sha256",
                        doc="sha256sum file inside the tree that a restore must satisfy; '' for none."),
        "snapshot": Arg("str", required=True, doc="Name of this restore's staging dir and safety snapshot."),
        "state": Arg("str", default="restored", choices=("restored", "staged", "checked", "reverted"),
                     doc="restored: restore (swapping in a tree staged earlier, if there is one); "
                     "staged: only extract and check the choice in the staging dir; checked: only choose "
                     "the backup (fails if none is valid); reverted: put the safety snapshot back."),
        "force": Arg("bool", default=False, doc="Restore even when dest passes its manifest check."),
    }

    problem = staticmethod(_problem)
    probe = staticmethod(_probe)
    parse = staticmethod(_parse)
    restore = staticmethod(_restore_plan)
    revert = staticmethod(_revert_plan)

    def outcome(self, args: Mapping[str, Any], facts: Mapping[str, Any], change: Change,
                results: Sequence[CommandResult]) -> Outcome:
        done = super().outcome(args, facts, change, results)
        if not results or "tried" not in change.data:
            return done
        return _staging_outcome(self.resolved(args), facts[self.fact], done, results[0])
