"""The attribute snapshot of the ``permissions`` module: written before a fix, put back on undo.

Services layer. A snapshot is a file on the host of NUL-terminated records
``MODE UID GID PATH``, one per entry a fix changes, with the exact bytes
of each path (any legal file name: newlines, bytes that are not UTF-8).
``snapshot_records`` writes them; ``state: reverted`` counts them with
``snapshot_fact`` and ``revert_plan`` restores each entry's owner, group
and mode (``xargs -0``), then removes the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from runner.modules.base import Change, Command, Fact, parent_dir, quote
from runner.modules.names import raw
from runner.results import CommandResult, Diff

# sh for xargs -0: one argument per record; exit 255 makes xargs stop at the first failure
_RESTORE = ('for r do m=${r%% *}; r=${r#* }; u=${r%% *}; r=${r#* }; g=${r%% *}; p=${r#* }; '
            'if [ -L "$p" ]; then chown -h "$u:$g" -- "$p" || exit 255; '
            'else chown "$u:$g" -- "$p" && chmod "$m" -- "$p" || exit 255; fi; done')


@dataclass(frozen=True)
class SnapshotFacts:
    entries: int | None = None  # records in the snapshot, None when there is none
    error: str = ""


def snapshot_records(entries: Iterable[tuple[int, int, int, str]]) -> bytes:
    """The snapshot's content for ``(mode, uid, gid, path)`` entries."""
    return raw("".join(f"{mode:04o} {uid} {gid} {path}\0" for mode, uid, gid, path in entries))


def snapshot_fact(snapshot: str) -> Fact:
    """How many records the snapshot holds (or that there is none)."""
    probe = "\n".join([
        f"s={quote(snapshot)}",
        'if [ -f "$s" ]; then echo "entries=$(tr -dc \'\\000\' <"$s" | wc -c)"; else echo entries=absent; fi',
    ])
    return Fact(probe, _parse)


def _parse(result: CommandResult) -> SnapshotFacts:
    value = result.stdout.strip().partition("entries=")[2].strip()
    if result.rc != 0 or not value:
        return SnapshotFacts(error=f"cannot read the snapshot: {result.tail('stderr', 3) or result.rc}")
    return SnapshotFacts(None if value == "absent" else int(value))


def revert_plan(path: str, snapshot: str, f: SnapshotFacts) -> Change:
    """Put back the attributes ``snapshot`` recorded for entries of ``path``, then remove it."""
    if not snapshot:
        return Change(changed=False, failed="state reverted needs snapshot")
    if f.error:
        return Change(changed=False, failed=f.error)
    if f.entries is None:
        return Change(changed=False, summary=f"no snapshot {snapshot}: nothing to revert")
    script = "\n".join([
        f"s={quote(snapshot)}",
        f'xargs -0 sh -c {quote(_RESTORE)} sh <"$s" || exit 1',
        'rm -f -- "$s"',
        f"rmdir -- {quote(parent_dir(snapshot))} 2>/dev/null || true",
    ])
    return Change(
        changed=f.entries > 0,
        steps=(Command(script),),
        diffs=(Diff(path, "attributes as fixed\n",
                    f"attributes of {f.entries} entries as recorded in {snapshot}\n"),),
        summary=f"restore the attributes of {f.entries} entries of {path} from {snapshot}",
    )
