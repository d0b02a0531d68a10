"""The dispatcher: a queued run re-checks the storm before it starts, a run that cannot start is logged
and frees its alert, and every decision and run lands in the audit log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runner.alerts.dispatch import Dispatcher, Setup
from runner.alerts.payload import Notification, read_notification
from runner.alerts.rules import Mode, load_rules
from runner.alerts.store import GuardStore
from runner.alerts.targets import HostIndex, TriggeredRun
from runner.errors import InputError, Location
from runner.load.inventory import load_inventory
from runner.output.audit import AuditLog
from runner.redaction import Redactor
from runner.results import Run

T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def alerts(*hosts: str) -> Notification:
    body = {"version": "4", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "CozeDown", "instance": f"{h}:9100"}, "fingerprint": h}
        for h in hosts]}
    return read_notification(json.dumps(body).encode(), "<test>")


@pytest.fixture
def parts(tmp_path: Path) -> Any:
    (tmp_path / "rules.yml").write_text(
        "guards: {cooldown: 10m, storm: {hosts: 2, within: 5m}}\n"
        "rules: [{name: down, matchers: ['alertname=CozeDown'], playbooks: [port_conflict], mode: run}]\n")
    (tmp_path / "hosts.ini").write_text("host01\nhost02\nhost03\n")
    audit = AuditLog(tmp_path / "audit.jsonl", Redactor())
    setup = Setup(load_rules(tmp_path / "rules.yml"), HostIndex.of(load_inventory([tmp_path / "hosts.ini"])),
                  GuardStore(tmp_path / "guards.json"), audit)
    yield setup, tmp_path
    audit.close()


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (path / "audit.jsonl").read_text().splitlines()]


def test_a_run_queued_before_a_storm_only_plans_and_starts_no_cooldown(parts: Any) -> None:
    setup, path = parts
    clock, started, lines = Clock(), [], []

    def run(triggered: TriggeredRun) -> tuple[int, Run]:
        started.append(triggered)
        return 0, Run("r1", ())

    dispatcher = Dispatcher(setup, run, lines.append, clock)
    _, (queued,) = dispatcher.receive(alerts("host01"))
    assert queued.mode is Mode.RUN
    clock.now += 10
    _, (storm,) = dispatcher.receive(alerts("host02", "host03"))  # three hosts now: a storm
    assert storm.mode is Mode.PLAN
    assert dispatcher.execute(queued) == 0
    assert [(t.mode, t.hosts) for t in started] == [(Mode.PLAN, ("host01",))]
    assert started[0].reason.startswith("storm: 3 hosts alerted within 5m")
    assert any(line.startswith("alert run (down): storm: 3 hosts alerted within 5m") for line in lines)
    clock.now += 301  # the storm is over; host01 was only planned, so no cooldown holds it
    decisions, (later,) = dispatcher.receive(alerts("host01"))
    assert later.mode is Mode.RUN and decisions[0].reason == "fix"


def test_a_run_that_cannot_start_is_logged_and_frees_its_alert(parts: Any) -> None:
    setup, path = parts
    lines: list[str] = []

    def run(triggered: TriggeredRun) -> tuple[int, Run]:
        raise InputError.at(Location("<host>"), "no host named 'host01'")

    dispatcher = Dispatcher(setup, run, lines.append, Clock())
    _, (first,) = dispatcher.receive(alerts("host01"))
    assert dispatcher.execute(first) == 4
    assert "alert run (down): could not start: <host>: no host named 'host01'" in lines
    assert json.loads((path / "guards.json").read_text())["in_flight"] == {}
    events = records(path)
    assert [(r["event"], r.get("verdict"), r.get("exit_code")) for r in events] == [
        ("alert", "run", None), ("alert_run", None, 4)]
    assert events[1]["triggered_run_id"] is None and events[1]["fingerprints"] == ["host01"]


def test_a_bug_in_a_run_is_logged_with_its_traceback_and_the_next_run_goes_on(parts: Any) -> None:
    setup, _ = parts
    lines: list[str] = []
    calls: list[str] = []

    def run(triggered: TriggeredRun) -> tuple[int, Run]:
        calls.append(triggered.hosts[0])
        if len(calls) == 1:
            raise ZeroDivisionError("a bug")
        return 0, Run("r2", ())

    dispatcher = Dispatcher(setup, run, lines.append, Clock())
    _, (first,) = dispatcher.receive(alerts("host01"))
    _, (second,) = dispatcher.receive(alerts("host02"))
    assert [dispatcher.execute(first), dispatcher.execute(second)] == [1, 0]
    assert any("internal error:" in line and "ZeroDivisionError: a bug" in line for line in lines)
