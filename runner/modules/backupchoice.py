"""Which backup to restore: restore points from full backups and incremental chains.

Services layer, shared by ``backup_restore`` and ``postgres_restore``.
Every archive name carries its time (``YYYYMMDDTHHMMSS``, UTC). A full
backup is a restore point; so is every prefix ``level0 .. levelN`` of an
incremental chain. ``choose`` (pure) takes the newest point at or before the
wanted time whose archives all match their checksums, and says what it
skipped. ``RestoreModule`` is the plan both restore modules share: probe,
choose, restore the choice, and check before the swap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, ClassVar

from runner.modules.base import Change, Fact, Module
from runner.results import CommandResult

_STAMP = re.compile(r"(\d{8}T\d{6})")
_LEVEL = re.compile(r"\.level(\d+)\.")
_POINT_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M",
                  "%Y%m%dT%H%M%S")
_WHY = {"mismatch": "its sha256 does not match its .sha256 file (truncated or corrupt)",
        "nosum": "it has no .sha256 file to verify it", "invalid": "pg_restore cannot read it"}


@dataclass(frozen=True)
class Archive:
    """One backup file as the probe saw it; ``validity``: ok, mismatch, nosum, invalid."""

    kind: str  # full, inc (incremental), dump (pg_dump -Fc)
    name: str
    validity: str
    size: int
    time: datetime | None
    level: int | None

    @classmethod
    def of(cls, kind: str, name: str, validity: str, size: int) -> Archive:
        stamp = _STAMP.search(name)
        when = datetime.strptime(stamp.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC) if stamp else None
        level = _LEVEL.search(name)
        return cls(kind, name, validity, size, when, int(level.group(1)) if level else None)

    @property
    def ok(self) -> bool:
        return self.validity == "ok"

    def why(self) -> str:
        return _WHY.get(self.validity, self.validity)


@dataclass(frozen=True)
class BackupFacts:
    dest: str = ""  # directory, absent, link, other
    entries: int = 0
    check: str = ""  # sha256sum -c exit status of dest's manifest, "missing", or "" (not checked)
    bad: tuple[str, ...] = ()
    snapshot: str = ""  # directory, absent-marker, other, none
    staging: bool = False
    archives: tuple[Archive, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class Choice:
    """The archives to apply in order (empty: none usable), when they are from, and what was skipped."""

    archives: tuple[Archive, ...]
    time: datetime | None
    skipped: tuple[str, ...]

    def label(self) -> str:
        if not self.archives:
            return "nothing"
        if len(self.archives) == 1:
            kind = {"full": "full", "inc": "incremental level 0", "dump": "pg_dump"}[self.archives[0].kind]
            return f"{self.archives[0].name} ({kind})"
        return (f"the incremental chain {self.archives[0].name} .. {self.archives[-1].name} "
                f"({len(self.archives)} archives)")

    def failure(self, point: datetime | None) -> str:
        when = f" at or before {describe_point(point)}" if point else ""
        tried = "; ".join(self.skipped) or "no backup files found"
        return f"no valid backup{when}: {tried}; nothing was changed"

    def data(self) -> dict[str, Any]:
        return {"archives": [a.name for a in self.archives], "skipped": list(self.skipped),
                "time": self.time.isoformat() if self.time else None}


def parse_point(text: str) -> datetime | None:
    """A restore point as an aware UTC time; a bare date means the end of that day; None if unreadable."""
    value = text.strip().replace("z", "Z")
    offset = timedelta(0)
    match = re.search(r"(Z|[+-]\d{2}:?\d{2})$", value)
    if match and len(value) > 10:
        zone = match.group(1)
        value = value[: match.start()]
        if zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            digits = zone[1:].replace(":", "")
            offset = sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    for fmt in _POINT_FORMATS:
        try:
            return (datetime.strptime(value, fmt) - offset).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        day = datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        return None
    return datetime.combine(day.date(), time(23, 59, 59), tzinfo=UTC)


def describe_point(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC") if when else "an unknown time"


def restore_points(archives: Iterable[Archive]) -> list[tuple[datetime, int, tuple[Archive, ...], str]]:
    """Every restore point: (time, preference, archives, "" or why it is unusable)."""
    points: list[tuple[datetime, int, tuple[Archive, ...], str]] = []
    incremental: list[Archive] = []
    for archive in archives:
        if archive.time is None:
            continue
        if archive.kind in ("full", "dump"):
            why = "" if archive.ok else f"{archive.name}: {archive.why()}"
            points.append((archive.time, 1, (archive,), why))
        elif archive.level is not None:
            incremental.append(archive)
    chain: list[Archive] = []
    for archive in sorted(incremental, key=lambda x: (x.time, x.level)):
        if archive.level == 0:
            chain = [archive]
        elif chain and archive.level == len(chain):
            chain = [*chain, archive]
        else:
            chain = []
            assert archive.time is not None
            points.append((archive.time, 0, (archive,), f"{archive.name}: its chain lacks level "
                           f"{(archive.level or 1) - 1} before it"))
            continue
        bad = [a for a in chain if not a.ok]
        why = f"{bad[0].name} (in its incremental chain): {bad[0].why()}" if bad else ""
        assert archive.time is not None
        points.append((archive.time, 0, tuple(chain), why))
    return points


def choose(archives: Iterable[Archive], point: datetime | None) -> Choice:
    """The newest valid restore point at or before ``point`` (a full backup wins a tie)."""
    candidates = [p for p in restore_points(archives) if point is None or p[0] <= point]
    candidates.sort(key=lambda p: (p[0], p[1]), reverse=True)
    skipped: list[str] = []
    for when, _, chosen, why in candidates:
        if not why:
            return Choice(chosen, when, tuple(f"skipped {s}" for s in skipped))
        if why not in skipped:
            skipped.append(why)
    return Choice((), None, tuple(f"skipped {s}" for s in skipped))


def _only_checked(a: Any, change: Change) -> Change:
    """With ``state: checked``, the restore's choice (or its failure) without its steps."""
    if a["state"] != "checked":
        return change
    return Change(changed=False, summary=change.summary.replace("restore ", "would restore ", 1),
                  data=change.data, failed=change.failed)


class RestoreModule(Module):
    """What ``backup_restore`` and ``postgres_restore`` share: one probe, then restore, check or revert.

    ``state: checked`` only reads. Arguments with a ``problem`` skip the probe
    (``:``) and fail the plan with that problem, as does a probe that failed.
    Subclasses give the probe's name (``fact``) and the five parts below, as
    plain functions (``problem = staticmethod(_problem)``).
    """

    fact: ClassVar[str]

    def reads_only(self, args: Mapping[str, Any]) -> bool:
        return args.get("state") == "checked"

    def facts(self, args: Mapping[str, Any]) -> Mapping[str, Fact]:
        a = self.resolved(args)
        return {self.fact: Fact(":" if self.problem(a) else self.probe(a), self.parse)}

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        a = self.resolved(args)
        found = facts[self.fact]
        problem = self.problem(a) or found.error
        if problem:
            return Change(changed=False, failed=problem)
        if a["state"] == "reverted":
            return self.revert(a, found)
        return _only_checked(a, self.restore(a, found))

    def problem(self, a: Mapping[str, Any], /) -> str:
        """What is wrong with the resolved arguments; "" when nothing is."""
        raise NotImplementedError

    def probe(self, a: Mapping[str, Any], /) -> str:
        """The read-only script that inspects the backups and the live data."""
        raise NotImplementedError

    def parse(self, result: CommandResult, /) -> Any:
        """The probe's result as facts with an ``error`` attribute ("" when it worked)."""
        raise NotImplementedError

    def restore(self, a: Mapping[str, Any], found: Any, /) -> Change:
        """The plan of ``state: restored`` (``checked`` keeps its choice, drops its steps)."""
        raise NotImplementedError

    def revert(self, a: Mapping[str, Any], found: Any, /) -> Change:
        """The plan of ``state: reverted``: put the safety snapshot back."""
        raise NotImplementedError
