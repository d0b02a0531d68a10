"""The rules file: which alerts run which playbooks, on which host, with which vars, in which mode.

Alerts stage. ``load_rules`` reads a rules file strictly (through
``runner.load``'s YAML loader: every problem at once, each with file, line
and a hint; exit 4) into a ``RuleSet``:

    guards:                                  # all optional; the defaults are shown
      cooldown: 15m                          # per host x playbook, between two runs that may change
      storm: {hosts: 5, within: 10m}         # more hosts alerting than this: plan only
      restart_loop: {fixes: 3, within: 1h}   # this many fixes of one fault: stop fixing it
    rules:
      - name: coze down                      # optional, unique
        matchers: ['alertname="CozeDown"', 'severity=~"critical|page"']
        playbooks: [port_conflict]           # bundled names, or files relative to the rules file
        limit: "{{ labels.instance }}"       # the default; mapped to an inventory host
        vars: {coze_port: "{{ labels.port }}"}
        mode: run                            # or plan (the default)

Matchers use Alertmanager's syntax (``=``, ``!=``, ``=~``, ``!~``; a regex
matches the whole value; a missing label is the empty string). The first
rule whose matchers all match an alert is its rule. ``limit`` and ``vars``
are templates over ``labels`` and ``annotations`` only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from runner.errors import InputError, Location, ProblemCollector, suggest
from runner.load import templating
from runner.load.argcheck import describe
from runner.load.inputs import bundled_playbooks
from runner.load.marked import MarkedDict, MarkedList
from runner.load.yamlfile import load_file

TOP_KEYS = frozenset({"guards", "rules"})
RULE_KEYS = frozenset({"name", "matchers", "playbooks", "limit", "vars", "mode"})
GUARD_KEYS = frozenset({"cooldown", "storm", "restart_loop"})
DEFAULT_LIMIT = "{{ labels.instance }}"
#: What a rule's templates may read.
TEMPLATE_NAMES = frozenset({"labels", "annotations"})
_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MATCHER_HINT = ("write label=value, label!=value, label=~regex or label!~regex "
                 "(Alertmanager's syntax), e.g. 'alertname=\"CozeDown\"'")


class Mode(StrEnum):
    """What a triggered run does: ``plan`` changes nothing, ``run`` fixes."""

    PLAN = "plan"
    RUN = "run"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Matcher:
    """One label matcher: ``label``, operator, and the value or the (whole-value) regex."""

    label: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op in ("=", "!="):
            return (actual == self.value) == (self.op == "=")
        return (re.fullmatch(self.value, actual) is not None) == (self.op == "=~")

    def __str__(self) -> str:
        return f"{self.label}{self.op}{json.dumps(self.value)}"


@dataclass(frozen=True)
class Rule:
    """Alerts matching every matcher run ``playbooks`` on the host ``limit`` names."""

    name: str
    matchers: tuple[Matcher, ...]
    playbooks: tuple[str, ...]  # resolved paths
    limit: str = DEFAULT_LIMIT
    vars: Mapping[str, Any] = field(default_factory=dict)
    mode: Mode = Mode.PLAN
    location: Location = Location("<rules>")

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)


@dataclass(frozen=True)
class Guards:
    """The guards' settings; durations in seconds."""

    cooldown: float = 900.0
    storm_hosts: int = 5
    storm_within: float = 600.0
    loop_fixes: int = 3
    loop_within: float = 3600.0


@dataclass(frozen=True)
class RuleSet:
    """A rules file: its rules in order, and its guards."""

    path: str
    rules: tuple[Rule, ...]
    guards: Guards = Guards()

    def rule_for(self, labels: Mapping[str, str]) -> Rule | None:
        """The first rule that matches ``labels``, or None."""
        return next((rule for rule in self.rules if rule.matches(labels)), None)

    @property
    def alertnames(self) -> frozenset[str]:
        """The alert names the rules name with an exact ``alertname=`` matcher."""
        return frozenset(m.value for r in self.rules for m in r.matchers
                         if (m.label, m.op) == ("alertname", "="))

    @property
    def playbooks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for rule in self.rules for p in rule.playbooks))


def load_rules(path: str | Path) -> RuleSet:
    """Read and check a rules file.

    Raises:
        InputError: the YAML or the schema is wrong (every problem at once).
    """
    name = str(path)
    data = load_file(path)
    problems = ProblemCollector()
    if not isinstance(data, MarkedDict):
        problems.add(Location(name, 1, 1), f"a rules file must be a mapping, not {describe(data)}",
                     "start it with 'rules:' (and optionally 'guards:')")
        problems.raise_if_any()
    _unknown(data, TOP_KEYS, "top-level", problems)
    reader = _RuleReader(Path(name).resolve().parent, problems)
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, MarkedList) or not raw_rules:
        problems.add(data.value_loc("rules") if "rules" in data else data.loc,
                     "'rules' must be a non-empty list of rules",
                     "rules: [{matchers: ['alertname=\"CozeDown\"'], playbooks: [port_conflict]}]")
        raw_rules = MarkedList(data.loc)
    rules = [reader.read(item, raw_rules.item_loc(i), i) for i, item in enumerate(raw_rules)]
    guards = _guards(data.get("guards", MarkedDict(data.loc)), data.value_loc("guards"), problems)
    _check_unique_names([r for r in rules if r is not None], problems)
    problems.raise_if_any()
    return RuleSet(path=name, rules=tuple(r for r in rules if r is not None), guards=guards)


def _unknown(raw: MarkedDict, allowed: frozenset[str], what: str, problems: ProblemCollector) -> None:
    for key in raw:
        if key not in allowed:
            problems.add(raw.key_loc(key), f"unknown {what} key '{key}'" + suggest(str(key), allowed),
                         "allowed: " + ", ".join(sorted(allowed)))


def _check_unique_names(rules: list[Rule], problems: ProblemCollector) -> None:
    seen: dict[str, Location] = {}
    for rule in rules:
        if rule.name in seen:
            problems.add(rule.location, f"a second rule named {rule.name!r} (the first is at line "
                         f"{seen[rule.name].line})", "give each rule its own name")
        seen.setdefault(rule.name, rule.location)


class _RuleReader:
    """Reads one rule mapping into a ``Rule``, reporting problems to a collector."""

    def __init__(self, base: Path, problems: ProblemCollector) -> None:
        self.base = base
        self.problems = problems

    def read(self, raw: Any, loc: Location, index: int) -> Rule | None:
        if not isinstance(raw, MarkedDict):
            self.problems.add(loc, f"a rule must be a mapping, not {describe(raw)}",
                              "- matchers: [...]\n    playbooks: [...]")
            return None
        _unknown(raw, RULE_KEYS, "rule", self.problems)
        name = raw.get("name", f"rule {index + 1}")
        if not isinstance(name, str) or not name.strip():
            self.problems.add(raw.value_loc("name"), f"'name' must be a string, not {describe(name)}")
            name = f"rule {index + 1}"
        mode = raw.get("mode", str(Mode.PLAN))
        if mode not in tuple(str(m) for m in Mode):
            self.problems.add(raw.value_loc("mode"), f"'mode' must be plan or run, not {describe(mode)}",
                              "mode: plan shows what would change; mode: run fixes")
            mode = str(Mode.PLAN)
        limit = raw.get("limit", DEFAULT_LIMIT)
        if not isinstance(limit, str) or not limit.strip():
            self.problems.add(raw.value_loc("limit"), f"'limit' must be a string, not {describe(limit)}",
                              f'e.g. limit: "{DEFAULT_LIMIT}"')
            limit = DEFAULT_LIMIT
        self._template(limit, raw.value_loc("limit"))
        return Rule(name=name.strip(), matchers=self._matchers(raw), playbooks=self._playbooks(raw),
                    limit=limit, vars=self._vars(raw), mode=Mode(mode), location=raw.loc)

    def _matchers(self, raw: MarkedDict) -> tuple[Matcher, ...]:
        items = raw.get("matchers")
        if not isinstance(items, MarkedList) or not items:
            self.problems.add(raw.value_loc("matchers") if "matchers" in raw else raw.loc,
                              "a rule needs 'matchers': a non-empty list", _MATCHER_HINT)
            return ()
        found = [matcher_of(item, items.item_loc(i), self.problems) for i, item in enumerate(items)]
        return tuple(m for m in found if m is not None)

    def _playbooks(self, raw: MarkedDict) -> tuple[str, ...]:
        items = raw.get("playbooks")
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
            self.problems.add(raw.value_loc("playbooks") if "playbooks" in raw else raw.loc,
                              "a rule needs 'playbooks': a playbook name or a list of them",
                              "bundled: " + ", ".join(bundled_playbooks()))
            return ()
        where = raw.value_loc("playbooks")
        paths = [self._playbook(item, items.item_loc(i) if isinstance(items, MarkedList) else where)
                 for i, item in enumerate(items)]
        return tuple(p for p in paths if p)

    def _playbook(self, name: str, loc: Location) -> str:
        bundled = bundled_playbooks()
        if name in bundled:
            return str(bundled[name])
        path = self.base / name
        if name.endswith((".yml", ".yaml")) and path.is_file():
            return str(path)
        self.problems.add(loc, f"no bundled playbook or playbook file named {name!r}"
                          + suggest(name, bundled),
                          "name a bundled playbook (remedy playbooks) or a .yml file relative to "
                          "the rules file")
        return ""

    def _vars(self, raw: MarkedDict) -> dict[str, Any]:
        values = raw.get("vars", {})
        if not isinstance(values, dict):
            self.problems.add(raw.value_loc("vars"), f"'vars' must be a mapping, not {describe(values)}",
                              'e.g. vars: {coze_port: "{{ labels.port }}"}')
            return {}
        for key, value in values.items():
            where = values.value_loc(key) if isinstance(values, MarkedDict) else raw.value_loc("vars")
            if not isinstance(key, str) or not _NAME.match(key):
                self.problems.add(values.key_loc(key) if isinstance(values, MarkedDict) else where,
                                  f"{key!r} is not a variable name",
                                  "a variable name is letters, digits and _")
            for text in _strings_in(value):
                self._template(text, where)
        return dict(values)

    def _template(self, text: str, loc: Location) -> None:
        templating.check_syntax(text, loc, self.problems)
        unknown = sorted(templating.undeclared(text) - TEMPLATE_NAMES)
        if unknown:
            self.problems.add(loc, "a rule's template may read only labels and annotations, "
                              f"not {unknown[0]}",
                              'e.g. "{{ labels.instance }}" or "{{ annotations.summary }}"')


def matcher_of(text: Any, loc: Location, problems: ProblemCollector) -> Matcher | None:
    """A ``Matcher`` from Alertmanager's matcher syntax, or None with a problem reported."""
    match = _MATCHER.match(text) if isinstance(text, str) else None
    if match is None:
        problems.add(loc, f"cannot read the matcher {text!r}", _MATCHER_HINT)
        return None
    label, op, value = match.groups()
    if value.startswith('"'):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
        if not isinstance(value, str):
            problems.add(loc, f"the matcher {text!r} has a badly quoted value", _MATCHER_HINT)
            return None
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as error:
            problems.add(loc, f"invalid regex in the matcher {text!r}: {error}",
                         "the regex matches the whole label value (Python syntax)")
            return None
    return Matcher(label, op, value)


def duration(value: Any, loc: Location, problems: ProblemCollector, default: float) -> float:
    """Seconds from ``30``, ``30s``, ``15m``, ``1h`` or ``1d``; ``default`` with a problem if unreadable."""
    match = _DURATION.match(value.strip()) if isinstance(value, str) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if match:
        return float(match.group(1)) * _UNITS[match.group(2)]
    problems.add(loc, f"{describe(value)} is not a duration", "e.g. 90, 90s, 15m, 1h or 1d")
    return default


def _guards(raw: Any, loc: Location, problems: ProblemCollector) -> Guards:
    if not isinstance(raw, MarkedDict):
        problems.add(loc, f"'guards' must be a mapping, not {describe(raw)}",
                     "guards: {cooldown: 15m, storm: {hosts: 5, within: 10m}}")
        return Guards()
    _unknown(raw, GUARD_KEYS, "guards", problems)
    default = Guards()
    cooldown = duration(raw.get("cooldown", default.cooldown), raw.value_loc("cooldown"), problems,
                        default.cooldown)
    storm = _window(raw, "storm", "hosts", (default.storm_hosts, default.storm_within), problems)
    loop = _window(raw, "restart_loop", "fixes", (default.loop_fixes, default.loop_within), problems)
    return Guards(cooldown=cooldown, storm_hosts=storm[0], storm_within=storm[1],
                  loop_fixes=loop[0], loop_within=loop[1])


def _window(raw: MarkedDict, key: str, count_key: str, default: tuple[int, float],
            problems: ProblemCollector) -> tuple[int, float]:
    """A ``{COUNT_KEY: N, within: DURATION}`` guard, N a positive count."""
    value = raw.get(key)
    if value is None:
        return default
    example = f"{key}: {{{count_key}: {default[0]}, within: {int(default[1] // 60)}m}}"
    if not isinstance(value, MarkedDict) or set(value) != {count_key, "within"}:
        problems.add(raw.value_loc(key), f"'{key}' must be a mapping of {count_key} and within", example)
        return default
    count = value[count_key]
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        problems.add(value.value_loc(count_key), f"'{count_key}' must be a positive count, not "
                     f"{describe(count)}", example)
        count = default[0]
    within = duration(value["within"], value.value_loc("within"), problems, default[1])
    return count, within


def _strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings_in(v)]
    return []


def require_rules(path: str) -> RuleSet:
    """``load_rules``, with a missing file said as the command line's ``-r`` problem."""
    if not Path(path).is_file():
        raise InputError.at(Location("<command line -r>"), f"no rules file {path!r}",
                            "pass -r rules.yml (see examples/alerts/rules.yml)")
    return load_rules(path)
