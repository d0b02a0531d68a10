"""The guards between an alert and a run: dedup, cooldown, storm control, restart-loop escalation.

Alerts stage, after ``targets``. Pure functions over a ``GuardState`` (the
store keeps it in a file): ``admit`` decides, for the triggers of one
notification, which run, which only plan and which are held back, and
groups the admitted ones into ``TriggeredRun``s; ``settle`` records what a
finished run fixed. Times are Unix seconds (they outlive a restart).

- **dedup**: an alert whose fingerprint has a run queued or running is a
  duplicate.
- **cooldown**: a playbook that ran (in mode run) on a host less than
  ``cooldown`` ago is not run there again.
- **storm**: when more than ``storm_hosts`` hosts have had a firing alert
  within ``storm_within`` (the notification's own hosts included), runs only
  plan: nothing is changed, and every decision says so.
- **restart loop**: a fault that was fixed ``loop_fixes`` times on a host
  within ``loop_within`` is not fixed again there (``escalated``): a fix
  that does not hold needs a person.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from runner.alerts.rules import Guards, Mode
from runner.alerts.targets import Decision, Trigger, TriggeredRun, Verdict, playbook_name


@dataclass(frozen=True)
class InFlight:
    """Who runs an alert now: the process (pid and a per-start id) and since when."""

    pid: int
    instance: str
    since: float


@dataclass(frozen=True)
class GuardState:
    """What the guards remember; hosts and playbooks by name."""

    in_flight: Mapping[str, InFlight] = field(default_factory=dict)  # fingerprint ->
    last_run: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # host -> playbook ->
    fixes: Mapping[str, Mapping[str, tuple[float, ...]]] = field(default_factory=dict)  # host -> playbook ->
    alerting: Mapping[str, float] = field(default_factory=dict)  # host -> its latest firing alert

    def to_json(self) -> dict[str, object]:
        return {"version": 1,
                "in_flight": {fp: {"pid": f.pid, "instance": f.instance, "since": f.since}
                              for fp, f in self.in_flight.items()},
                "last_run": {h: dict(p) for h, p in self.last_run.items()},
                "fixes": {h: {p: list(t) for p, t in books.items()} for h, books in self.fixes.items()},
                "alerting": dict(self.alerting)}

    @classmethod
    def from_json(cls, data: Any) -> GuardState:
        """The state a ``to_json`` document holds.

        Raises:
            ValueError: it is not one (KeyError, TypeError and AttributeError become ValueError).
        """
        try:
            flights = {str(fp): InFlight(int(f["pid"]), str(f["instance"]), float(f["since"]))
                       for fp, f in _mapping(data, "in_flight").items()}
            last = {str(h): {str(p): float(t) for p, t in books.items()}
                    for h, books in _mapping(data, "last_run").items()}
            fixes = {str(h): {str(p): tuple(float(t) for t in times) for p, times in books.items()}
                     for h, books in _mapping(data, "fixes").items()}
            alerting = {str(h): float(t) for h, t in _mapping(data, "alerting").items()}
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise ValueError(f"not remedy's guard state ({error})") from None
        return cls(flights, last, fixes, alerting)

    def pruned(self, guards: Guards, now: float) -> GuardState:
        """Without what no guard looks at any more."""
        return GuardState(
            in_flight=self.in_flight,
            last_run={h: kept for h, books in self.last_run.items()
                      if (kept := {p: t for p, t in books.items() if now - t < guards.cooldown})},
            fixes={h: recent for h, books in self.fixes.items()
                   if (recent := {p: live for p, times in books.items()
                                  if (live := tuple(t for t in times if now - t < guards.loop_within))})},
            alerting={h: t for h, t in self.alerting.items() if now - t < guards.storm_within})


def _mapping(data: Any, key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise TypeError(f"{key} is not a mapping")
    return {str(k): v for k, v in value.items()}


@dataclass(frozen=True)
class Admission:
    """``admit``'s answer: the new state, a decision per trigger, and the runs to start."""

    state: GuardState
    decisions: tuple[Decision, ...]
    runs: tuple[TriggeredRun, ...]


class _Draft:
    """A mutable copy of a ``GuardState`` while ``admit`` decides."""

    def __init__(self, state: GuardState) -> None:
        self.in_flight = dict(state.in_flight)
        self.last_run = {h: dict(p) for h, p in state.last_run.items()}
        self.fixes = state.fixes
        self.alerting = dict(state.alerting)

    def frozen(self) -> GuardState:
        return GuardState(self.in_flight, self.last_run, self.fixes, self.alerting)


def admit(state: GuardState, triggers: Iterable[Trigger], guards: Guards, *, now: float,
          owner: InFlight) -> Admission:
    """Decide each trigger of one notification (in order) and group the admitted ones into runs."""
    triggers = list(triggers)
    draft = _Draft(state.pruned(guards, now))
    for trigger in triggers:
        draft.alerting[trigger.host] = now
    storm = storm_reason(draft.frozen(), guards, now)
    decided = [(trigger, _admit_one(draft, trigger, guards, now, owner, storm)) for trigger in triggers]
    admitted = [(t, d) for t, d in decided if d.verdict in (Verdict.RUN, Verdict.PLAN)]
    return Admission(draft.frozen(), tuple(d for _, d in decided), _group(admitted, storm))


def storm_reason(state: GuardState, guards: Guards, now: float) -> str:
    """Why runs only plan now (a storm), or ''."""
    hosts = [h for h, t in state.alerting.items() if now - t < guards.storm_within]
    if len(hosts) <= guards.storm_hosts:
        return ""
    return (f"storm: {len(hosts)} hosts alerted within {span(guards.storm_within)} (more than "
            f"{guards.storm_hosts}): planning only, nothing is changed")


def _admit_one(draft: _Draft, trigger: Trigger, guards: Guards, now: float, owner: InFlight,
               storm: str) -> Decision:
    fingerprint = trigger.alert.fingerprint
    if fingerprint in draft.in_flight:
        since = draft.in_flight[fingerprint].since
        return trigger.decision(Verdict.DUPLICATE, f"a run for this alert (fingerprint {fingerprint}) "
                                f"is in flight since {clock(since)}")
    names = [playbook_name(p) for p in trigger.rule.playbooks]
    if trigger.rule.mode is Mode.PLAN or storm:
        draft.in_flight[fingerprint] = InFlight(owner.pid, owner.instance, now)
        return trigger.decision(Verdict.PLAN, storm or "the rule's mode is plan: nothing is changed", names)
    held = {name: why for name in names if (why := _held(draft, trigger.host, name, guards, now))}
    left = [name for name in names if name not in held]
    if not left:
        verdict = Verdict.ESCALATED if any(v is Verdict.ESCALATED for v, _ in held.values()) \
            else Verdict.COOLDOWN
        return trigger.decision(verdict, "; ".join(why for _, why in held.values()), names)
    draft.in_flight[fingerprint] = InFlight(owner.pid, owner.instance, now)
    for name in left:
        draft.last_run.setdefault(trigger.host, {})[name] = now
    reason = "fix" + ("; held back: " + "; ".join(why for _, why in held.values()) if held else "")
    return trigger.decision(Verdict.RUN, reason, left)


def _held(draft: _Draft, host: str, name: str, guards: Guards, now: float) -> tuple[Verdict, str] | None:
    """Why ``name`` must not run on ``host`` now (escalated, cooldown), or None."""
    fixes = [t for t in draft.fixes.get(host, {}).get(name, ()) if now - t < guards.loop_within]
    if len(fixes) >= guards.loop_fixes:
        return Verdict.ESCALATED, (f"{name} was fixed {len(fixes)} times on {host} within "
                                   f"{span(guards.loop_within)} (last at {clock(max(fixes))}): not fixing "
                                   "it again, the fault keeps coming back and needs a person")
    last = draft.last_run.get(host, {}).get(name)
    if last is not None and now - last < guards.cooldown:
        return Verdict.COOLDOWN, (f"{name} ran on {host} {span(now - last)} ago, within the cooldown of "
                                  f"{span(guards.cooldown)} (until {clock(last + guards.cooldown)})")
    return None


def _group(admitted: list[tuple[Trigger, Decision]], storm: str) -> tuple[TriggeredRun, ...]:
    """One run per rule, mode, playbooks and vars: their hosts in one run."""
    groups: dict[tuple[str, str, tuple[str, ...], str], list[tuple[Trigger, Decision]]] = {}
    for trigger, decision in admitted:
        key = (trigger.rule.name, str(decision.verdict), decision.playbooks,
               json.dumps(trigger.vars, sort_keys=True, default=str))
        groups.setdefault(key, []).append((trigger, decision))
    runs = []
    for (rule, verdict, names, _), members in groups.items():
        first = members[0][0]
        mode = Mode.RUN if verdict == str(Verdict.RUN) else Mode.PLAN
        runs.append(TriggeredRun(
            rule=rule, mode=mode,
            playbooks=tuple(p for p in first.rule.playbooks if playbook_name(p) in names),
            hosts=tuple(dict.fromkeys(t.host for t, _ in members)), vars=dict(first.vars),
            fingerprints=tuple(dict.fromkeys(t.alert.fingerprint for t, _ in members)),
            reason=storm if first.rule.mode is Mode.RUN else ""))
    return tuple(runs)


def settle(state: GuardState, run: TriggeredRun, fixed: Iterable[tuple[str, str]], guards: Guards,
           now: float) -> tuple[GuardState, list[str]]:
    """The state after ``run`` ended (its alerts no longer in flight, its fixes counted), and the
    restart loops it completed, in words."""
    fixes = {h: dict(books) for h, books in state.fixes.items()}
    notices = []
    for host, name in fixed:
        times = (*fixes.setdefault(host, {}).get(name, ()), now)
        fixes[host][name] = times
        recent = [t for t in times if now - t < guards.loop_within]
        if len(recent) >= guards.loop_fixes:
            notices.append(f"{name} was fixed {len(recent)} times on {host} within "
                           f"{span(guards.loop_within)}: the next alert for it will not be fixed; "
                           "the fault keeps coming back and needs a person")
    flights = {fp: f for fp, f in state.in_flight.items() if fp not in run.fingerprints}
    return GuardState(flights, state.last_run, fixes, state.alerting).pruned(guards, now), notices


def withdraw(state: GuardState, run: TriggeredRun, *, in_flight: bool = False) -> GuardState:
    """The state as if ``run`` had not been admitted (it was not queued, or never started); with
    ``in_flight``, its alerts stay in flight (it starts, but only plans)."""
    flights = {fp: f for fp, f in state.in_flight.items() if in_flight or fp not in run.fingerprints}
    last = state.last_run
    if run.mode is Mode.RUN:
        last = {h: kept for h, books in last.items()
                if (kept := {p: t for p, t in books.items() if h not in run.hosts or p not in run.names})}
    return GuardState(flights, last, state.fixes, state.alerting)


def span(seconds: float) -> str:
    """A duration in words: 90s, 15m, 2h, 1d."""
    whole = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def clock(moment: float) -> str:
    """A moment in UTC, to the second."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
