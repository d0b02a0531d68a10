"""Which backup to restore: restore points from full backups and incremental chains.

Services layer, shared by ``backup_restore`` and ``postgres_restore``.
Every archive name carries its time (``YYYYMMDDTHHMMSS``, UTC). A full
backup is a restore point; so is every prefix ``level0 .. levelN`` of an
incremental chain. ``choose`` (pure) takes the newest point at or before the
wanted time whose archives all passed the probe's checks, says what it
skipped and how much older than the newest backup the choice is (the data
lost by falling back), and refuses a fallback beyond the allowed one.
``RestoreModule`` is the plan both restore modules share: probe, choose,
restore the choice, and check before the swap.
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
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1),
          "m": timedelta(minutes=1), "s": timedelta(seconds=1)}
#: What ``max_fallback`` accepts besides a duration: no limit.
UNLIMITED = "unlimited"
_WHY = {"mismatch": "its sha256 does not match its .sha256 file (truncated or corrupt)",
        "nosum": "it has no .sha256 file to verify it", "invalid": "pg_restore cannot read it",
        "gzip": "gzip -t fails (its .sha256 matches, but the archive was checksummed truncated or corrupt)",
        "tar": "tar cannot list its members", "unsafe": "it has members that would land outside the tree"}


@dataclass(frozen=True)
class Archive:
    """One backup file as the probe saw it.

    ``validity``: ok, mismatch, nosum, gzip, tar, unsafe (backups) or invalid
    (dumps); ``detail`` names the offending members of an unsafe archive.
    """

    kind: str  # full, inc (incremental), dump (pg_dump -Fc)
    name: str
    validity: str
    size: int
    time: datetime | None
    level: int | None
    detail: str = ""

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
        why = _WHY.get(self.validity, self.validity)
        return f"{why}: {self.detail}" if self.detail else why


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
class Point:
    """A restore point: the archives to apply in order, their time, and why it is unusable ("" if not)."""

    time: datetime
    full: bool  # a full backup (or dump) wins a tie with a chain of the same time
    archives: tuple[Archive, ...]
    why: str = ""

    def label(self) -> str:
        if len(self.archives) == 1:
            kind = {"full": "full", "inc": "incremental level 0", "dump": "pg_dump"}[self.archives[0].kind]
            return f"{self.archives[0].name} ({kind})"
        return (f"the incremental chain {self.archives[0].name} .. {self.archives[-1].name} "
                f"({len(self.archives)} archives)")


@dataclass(frozen=True)
class Choice:
    """The usable restore points to try, newest first (empty: none), and what was skipped.

    ``newest`` is the time of the newest point at or before the wanted time,
    usable or not: restoring anything older loses the data in between.
    ``refused`` says why the newest usable point is not used (too old).
    """

    points: tuple[Point, ...]
    skipped: tuple[str, ...]
    newest: datetime | None = None
    refused: str = ""

    @property
    def archives(self) -> tuple[Archive, ...]:
        return self.points[0].archives if self.points else ()

    @property
    def time(self) -> datetime | None:
        return self.points[0].time if self.points else None

    def label(self) -> str:
        return self.points[0].label() if self.points else "nothing"

    def loss(self, point: Point | None = None) -> str:
        """"restores T1, 2 days older than the newest backup T3: why" for a fallback; "" otherwise."""
        window = self.window(point or (self.points[0] if self.points else None))
        return f"restores {window}: {'; '.join(self.skipped)}" if window else ""

    def window(self, point: Point | None) -> str:
        """"T1, 2 days older than the newest backup T3" for a point older than the newest; "" otherwise."""
        if point is None or self.newest is None or point.time >= self.newest:
            return ""
        return (f"{stamp(point.time)}, {describe_age(self.newest - point.time)} older than the newest "
                f"backup {stamp(self.newest)}")

    def failure(self, point: datetime | None) -> str:
        if self.refused:
            return self.refused
        when = f" at or before {describe_point(point)}" if point else ""
        tried = "; ".join(self.skipped) or "no backup files found"
        return f"no valid backup{when}: {tried}; nothing was changed"

    def data(self) -> dict[str, Any]:
        return {"archives": [a.name for a in self.archives], "skipped": list(self.skipped),
                "time": self.time.isoformat() if self.time else None,
                "newest": self.newest.isoformat() if self.newest else None}


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


def parse_fallback(text: str) -> timedelta | None:
    """``max_fallback`` as a duration (``90m``, ``24h``, ``2d``, ``1w``; a bare number is hours);
    None for ``unlimited``.

    Raises:
        ValueError: for anything else.
    """
    match = _DURATION.match(text)
    if text.strip() != UNLIMITED and not match:
        raise ValueError(fallback_problem(text))
    return int(match.group(1)) * _UNITS[match.group(2) or "h"] if match else None


def fallback_problem(text: str) -> str:
    """What is wrong with a ``max_fallback`` argument; "" when nothing is."""
    ok = text.strip() == UNLIMITED or _DURATION.match(text)
    return "" if ok else f"max_fallback {text!r} is not a duration such as 24h, 2d or {UNLIMITED}"


def describe_point(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC") if when else "an unknown time"


def stamp(when: datetime) -> str:
    """A time as ``restore_point`` takes it: 2024-03-12T10:00:00Z."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def describe_age(delta: timedelta) -> str:
    """A time span in words, at most two units: "2 days", "1 day 6 hours", "45 minutes"."""
    seconds, parts = int(delta.total_seconds()), list[str]()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count and len(parts) < 2:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
        elif parts:
            break
    return " ".join(parts) or "0 seconds"


def _duration(delta: timedelta) -> str:
    """The shortest ``max_fallback`` value that allows ``delta``: 2d, 30h, 95m, 10s."""
    seconds = int(delta.total_seconds())
    unit, size = next((u, n) for u, n in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)) if seconds % n == 0)
    return f"{seconds // size}{unit}"


def restore_points(archives: Iterable[Archive]) -> list[Point]:
    """Every restore point, usable or not."""
    points: list[Point] = []
    incremental: list[Archive] = []
    for archive in archives:
        if archive.time is None:
            continue
        if archive.kind in ("full", "dump"):
            why = "" if archive.ok else f"{archive.name}: {archive.why()}"
            points.append(Point(archive.time, True, (archive,), why))
        elif archive.level is not None:
            incremental.append(archive)
    chain: list[Archive] = []
    for archive in sorted(incremental, key=lambda x: (x.time, x.level)):
        assert archive.time is not None
        if archive.level == 0:
            chain = [archive]
        elif chain and archive.level == len(chain):
            chain = [*chain, archive]
        else:
            chain = []
            points.append(Point(archive.time, False, (archive,), f"{archive.name}: its chain lacks level "
                                f"{(archive.level or 1) - 1} before it"))
            continue
        bad = [a for a in chain if not a.ok]
        why = f"{bad[0].name} (in its incremental chain): {bad[0].why()}" if bad else ""
        points.append(Point(archive.time, False, tuple(chain), why))
    return points


def choose(archives: Iterable[Archive], point: datetime | None, max_fallback: timedelta | None) -> Choice:
    """The usable restore points at or before ``point``, newest first (a full backup wins a tie).

    The first is the choice; the others follow it within ``max_fallback`` of
    the newest point (None: no limit), for a restore to try when the first
    fails a check that only extraction can make. A choice older than that
    limit is refused.
    """
    candidates = [p for p in restore_points(archives) if point is None or p.time <= point]
    candidates.sort(key=lambda p: (p.time, p.full), reverse=True)
    newest = candidates[0].time if candidates else None
    skipped: list[str] = []
    for index, chosen in enumerate(candidates):
        if chosen.why:
            if f"skipped {chosen.why}" not in skipped:
                skipped.append(f"skipped {chosen.why}")
            continue
        assert newest is not None
        oldest = None if max_fallback is None else newest - max_fallback
        usable = tuple(p for p in candidates[index:] if not p.why and (oldest is None or p.time >= oldest))
        choice = Choice(usable, tuple(skipped), newest)
        if max_fallback is not None and oldest is not None and chosen.time < oldest:
            return Choice((), tuple(skipped), newest, _refusal(choice, chosen, max_fallback))
        return choice
    return Choice((), tuple(skipped), newest)


def _refusal(choice: Choice, chosen: Point, max_fallback: timedelta) -> str:
    assert choice.newest is not None
    return (f"refusing to restore {choice.window(chosen)} ({'; '.join(choice.skipped)}): that is more "
            f"than the allowed fallback of {describe_age(max_fallback)} (max_fallback). To accept losing "
            f"the newer data, pass restore_point={stamp(chosen.time)} (or allow a fallback of "
            f"{_duration(choice.newest - chosen.time)}); nothing was changed")


def choose_for(a: Mapping[str, Any], archives: Iterable[Archive]) -> tuple[Choice, datetime | None]:
    """``choose`` with the module's ``restore_point`` and ``max_fallback``; also the parsed point."""
    point = parse_point(str(a["restore_point"])) if a["restore_point"] else None
    return choose(archives, point, parse_fallback(str(a["max_fallback"]))), point


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
