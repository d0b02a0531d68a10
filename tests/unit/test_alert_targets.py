"""From an alert to its rule, its inventory host and its vars; or the reason it is ignored."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.alerts.payload import Notification, read_notification
from runner.alerts.rules import load_rules
from runner.alerts.targets import HostIndex, Trigger, Verdict, resolve
from runner.cli.alerting import unsafe_vars
from runner.load.inputs import parse_extra_vars
from runner.load.inventory import load_inventory
from runner.load.marked import UnsafeText
from runner.load.templating import render

INVENTORY = """
host01 ansible_host=10.0.0.1
host02 ansible_host=10.0.0.2
host03.example.com
[pair]
twin1 ansible_host=10.0.0.9 ansible_port=2201
twin2 ansible_host=10.0.0.9 ansible_port=2202
"""
RULES = """
rules:
  - name: down
    matchers: ['alertname="CozeDown"']
    playbooks: [port_conflict]
    vars: {coze_port: "{{ labels.port | int }}", reason: "{{ annotations.summary | default('') }}"}
    mode: run
  - name: by label
    matchers: ['alertname="CozeCacheStale"']
    playbooks: [cache_flush]
    limit: "{{ labels.node }}"
"""


@pytest.fixture
def index(write: Callable[..., Path]) -> HostIndex:
    return HostIndex.of(load_inventory([write("hosts.ini", INVENTORY)]))


@pytest.fixture
def rules(write: Callable[..., Path]) -> Any:
    return load_rules(write("rules.yml", RULES))


def notification(*alerts: dict[str, Any]) -> Notification:
    body = {"version": "4", "status": "firing", "receiver": "remedy", "groupKey": "{}", "alerts": [
        {"status": "firing", "annotations": {}, **alert} for alert in alerts]}
    return read_notification(json.dumps(body).encode(), "<test>")


@pytest.mark.parametrize(("instance", "host"), [
    ("host02", "host02"),  # 1. an inventory name
    ("host02:9100", "host02"),  # 2. an inventory name with a port
    ("host03.example.com:9100", "host03.example.com"),
    ("10.0.0.1:9100", "host01"),  # 3. the ansible_host of one host
    ("10.0.0.1", "host01"),
    ("[10.0.0.1]:9100", "host01"),
])
def test_an_instance_label_names_its_inventory_host(index: HostIndex, instance: str, host: str) -> None:
    assert index.host(instance) == (host, "")


@pytest.mark.parametrize(("instance", "why"), [
    ("10.0.0.9:9100", "'10.0.0.9:9100' is the address of several inventory hosts (twin1, twin2); "
                      "label the alert with the inventory name"),
    ("host09:9100", "'host09:9100' is not an inventory host, nor the ansible_host of one"),
    ("all", "'all' is not an inventory host, nor the ansible_host of one"),  # never a pattern
    ("host0*", "'host0*' is not an inventory host, nor the ansible_host of one"),
])
def test_an_instance_that_names_no_single_host_is_rejected_with_why(
        index: HostIndex, instance: str, why: str) -> None:
    assert index.host(instance) == ("", why)


def test_a_firing_alert_gives_its_rule_host_and_vars_from_labels(rules: Any, index: HostIndex) -> None:
    triggers, ignored = resolve(notification({"labels": {"alertname": "CozeDown", "instance": "host02:9100",
                                                         "port": "8081"},
                                              "annotations": {"summary": "{{ lookup('env', 'HOME') }}"}}),
                                rules, index)
    assert ignored == []
    (trigger,) = triggers
    assert (trigger.rule.name, trigger.host) == ("down", "host02")
    assert trigger.vars == {"coze_port": 8081, "reason": "{{ lookup('env', 'HOME') }}"}  # data, not rendered


def test_label_values_reach_the_run_as_unsafe_text_that_is_never_rendered() -> None:
    values = {"reason": "{{ ansible_password }}", "port": 8081, "nested": ["{{ x }}", {"k": "it's \"q\"\n"}]}
    extra = parse_extra_vars([unsafe_vars(values)])
    assert extra == values
    assert isinstance(extra["reason"], UnsafeText) and isinstance(extra["nested"][1]["k"], UnsafeText)
    assert render(extra["reason"], {"ansible_password": "secret"}) == "{{ ansible_password }}"


def test_resolved_unknown_and_unmatched_alerts_are_ignored_with_their_reason(
        rules: Any, index: HostIndex) -> None:
    triggers, ignored = resolve(notification(
        {"status": "resolved", "labels": {"alertname": "CozeDown", "instance": "host01"}},
        {"labels": {"alertname": "DiskAlmostFull", "instance": "host01"}},
        {"labels": {"alertname": "CozeCacheStale", "instance": "host01"}},  # its rule needs labels.node
        {"labels": {"alertname": "CozeDown", "instance": "db07:9100", "port": "8080"}},
    ), rules, index)
    assert triggers == []
    assert [(d.verdict, d.reason) for d in ignored] == [
        (Verdict.RESOLVED, "the alert is resolved: nothing to do"),
        (Verdict.UNMATCHED, "no rule for the alertname 'DiskAlmostFull'"),
        (Verdict.REJECTED, "rule 'by label' needs what the alert does not have: 'dict object' has no "
                           "attribute 'node' in ' labels.node '"),
        (Verdict.REJECTED, "'db07:9100' is not an inventory host, nor the ansible_host of one"),
    ]


def test_a_known_alertname_whose_labels_match_no_rule_says_so(
        write: Callable[..., Path], index: HostIndex) -> None:
    rules = load_rules(write("strict.yml", "rules: [{matchers: [alertname=CozeDown, team=web], "
                                           "playbooks: port_conflict}]\n"))
    alert = {"labels": {"alertname": "CozeDown", "instance": "host01"}}
    _, ignored = resolve(notification(alert), rules, index)
    assert [(d.verdict, d.reason) for d in ignored] == [(Verdict.UNMATCHED, "no rule matches its labels")]


def test_hosts_outside_the_limit_are_rejected(rules: Any, index: HostIndex) -> None:
    triggers, ignored = resolve(notification(
        {"labels": {"alertname": "CozeDown", "instance": "host01:9100", "port": "1"}},
        {"labels": {"alertname": "CozeDown", "instance": "host02:9100", "port": "1"}},
    ), rules, index, allowed=frozenset({"host02"}))
    assert [t.host for t in triggers] == ["host02"]
    assert [(d.host, d.reason) for d in ignored] == [
        ("host01", "host01 is outside the hosts alerts may act on (-l)")]
    assert all(isinstance(t, Trigger) for t in triggers)
