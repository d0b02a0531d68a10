"""Alerts -> targets: each firing alert's rule, its inventory host and its vars; or why none.

Alerts stage, after ``payload``. ``resolve`` takes a ``Notification``, the
``RuleSet`` and the inventory's hosts, and gives a ``Trigger`` per alert that
a rule applies to, and a ``Decision`` for each alert it ignores or rejects
(resolved, no rule, no such host, outside ``-l``). Label values are data:
they fill a rule's templates but are never rendered as templates themselves.

An alert names its host through the rule's ``limit`` (default
``{{ labels.instance }}``), mapped to an inventory host by ``HostIndex``:

1. the value is an inventory host name: that host;
2. without a ``:port`` suffix (``host02:9100``, ``[::1]:9100``) it is an
   inventory host name: that host;
3. that address is the ``ansible_host`` of exactly one inventory host: that
   host. Several hosts with that address, or none: the alert is rejected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from runner.alerts.payload import Alert, Notification
from runner.alerts.rules import Mode, Rule, RuleSet
from runner.errors import TemplateError
from runner.load import templating
from runner.load.inventory import Inventory
from runner.load.inventory.patterns import split_port


class Verdict(StrEnum):
    """What became of one alert."""

    RUN = "run"  # a run that may change the host
    PLAN = "plan"  # a plan only: the rule's mode, or a storm
    RESOLVED = "resolved"  # ignored: the alert is resolved
    UNMATCHED = "unmatched"  # ignored: no rule matches it
    REJECTED = "rejected"  # no inventory host, a label the rule needs is missing, outside -l
    DUPLICATE = "duplicate"  # a run for this alert is in flight
    COOLDOWN = "cooldown"  # its playbooks ran on the host too recently
    ESCALATED = "escalated"  # its fault was fixed too often on the host: not fixed again

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Decision:
    """One alert's verdict and the reason, in words."""

    fingerprint: str
    alertname: str
    verdict: Verdict
    reason: str
    host: str = ""
    rule: str = ""
    playbooks: tuple[str, ...] = ()  # playbook names

    def fields(self) -> dict[str, Any]:
        """The decision as an audit record's fields (and an HTTP answer's item)."""
        return {"fingerprint": self.fingerprint, "alertname": self.alertname,
                "verdict": str(self.verdict), "reason": self.reason, "host": self.host, "rule": self.rule,
                "playbooks": list(self.playbooks)}


@dataclass(frozen=True)
class Trigger:
    """A firing alert, its rule, its inventory host and its vars (rendered from its labels)."""

    alert: Alert
    rule: Rule
    host: str
    vars: Mapping[str, Any] = field(default_factory=dict)

    def decision(self, verdict: Verdict, reason: str, playbooks: Iterable[str] = ()) -> Decision:
        return Decision(self.alert.fingerprint, self.alert.name, verdict, reason, self.host, self.rule.name,
                        tuple(playbooks))


@dataclass(frozen=True)
class TriggeredRun:
    """One remedy run for one or more admitted alerts (same rule, mode, playbooks and vars)."""

    rule: str
    mode: Mode
    playbooks: tuple[str, ...]  # paths
    hosts: tuple[str, ...]
    vars: Mapping[str, Any]
    fingerprints: tuple[str, ...]
    reason: str = ""  # why a run of a mode: run rule plans only (a storm)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(playbook_name(p) for p in self.playbooks)


def playbook_name(path: str) -> str:
    return Path(path).stem


@dataclass(frozen=True)
class HostIndex:
    """Inventory host names, and which hosts each ``ansible_host`` address belongs to."""

    names: frozenset[str]
    addresses: Mapping[str, tuple[str, ...]]

    @classmethod
    def of(cls, inventory: Inventory) -> HostIndex:
        addresses: dict[str, list[str]] = {}
        for name in inventory.hosts:
            address = inventory.host_vars(name).get("ansible_host")
            if address is not None:
                addresses.setdefault(str(address), []).append(name)
        return cls(frozenset(inventory.hosts), {k: tuple(v) for k, v in addresses.items()})

    def host(self, value: str) -> tuple[str, str]:
        """(inventory host, '') for an alert's instance, or ('', why not)."""
        if value in self.names:
            return value, ""
        address, _ = split_port(value)
        address = address.strip("[]")
        if address in self.names:
            return address, ""
        owners = self.addresses.get(address, ())
        if len(owners) == 1:
            return owners[0], ""
        if owners:
            return "", (f"{value!r} is the address of several inventory hosts ({', '.join(owners)}); "
                        "label the alert with the inventory name")
        return "", f"{value!r} is not an inventory host, nor the ansible_host of one"


def resolve(notification: Notification, rules: RuleSet, index: HostIndex,
            allowed: frozenset[str] | None = None) -> tuple[list[Trigger], list[Decision]]:
    """The alerts a rule applies to, and a decision for each alert ignored or rejected.

    ``allowed``: the hosts alerts may act on (``-l``); None for every host.
    """
    triggers: list[Trigger] = []
    decisions: list[Decision] = []
    for alert in notification.alerts:
        rule = rules.rule_for(alert.labels)
        if not alert.firing:
            decisions.append(_ignored(alert, Verdict.RESOLVED, "the alert is resolved: nothing to do"))
        elif rule is None:
            known = alert.name in rules.alertnames
            why = "no rule matches its labels" if known else f"no rule for the alertname {alert.name!r}"
            decisions.append(_ignored(alert, Verdict.UNMATCHED, why))
        else:
            found = _target(alert, rule, index, allowed)
            if isinstance(found, Trigger):
                triggers.append(found)
            else:
                decisions.append(found)
    return triggers, decisions


def _ignored(alert: Alert, verdict: Verdict, reason: str) -> Decision:
    return Decision(alert.fingerprint, alert.name, verdict, reason)


def _target(alert: Alert, rule: Rule, index: HostIndex, allowed: frozenset[str] | None) -> Trigger | Decision:
    scope = {"labels": dict(alert.labels), "annotations": dict(alert.annotations)}
    try:
        limit = str(templating.render(rule.limit, scope, rule.location)).strip()
        values = {k: templating.render(v, scope, rule.location) for k, v in rule.vars.items()}
    except TemplateError as error:
        reason = f"rule {rule.name!r} needs what the alert does not have: {error.problems[0].message}"
        return Decision(alert.fingerprint, alert.name, Verdict.REJECTED, reason, rule=rule.name)
    host, why = index.host(limit)
    if not host:
        return Decision(alert.fingerprint, alert.name, Verdict.REJECTED, why, rule=rule.name)
    if allowed is not None and host not in allowed:
        return Decision(alert.fingerprint, alert.name, Verdict.REJECTED,
                        f"{host} is outside the hosts alerts may act on (-l)", host, rule.name)
    return Trigger(alert, rule, host, values)
