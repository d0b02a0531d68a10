"""Alerts on the lab: the recorded Alertmanager payloads of examples/alerts drive real runs.

With ``examples/alerts/rules.yml`` (storm above 2 hosts, cooldown 15m) and
the three-host session lab: a firing ``CozeDown`` for a broken host fixes it;
the same payload again within the cooldown changes nothing and says why; an
alert for every host (a storm) only plans; ``remedy listen`` answers 401,
400 and 202 as documented, keeps serving after bad requests, and fixes the
host the good one names.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.e2e.conftest import REPO
from tests.e2e.fleet import RUNTIME, Fleet
from tests.support.listener import Listener
from tests.support.waiting import wait_until

ALERTS = REPO / "examples" / "alerts"
RULES = ALERTS / "rules.yml"
PAYLOADS = ALERTS / "payloads"


@pytest.fixture
def fleet(lab_fleet: Fleet) -> Fleet:
    return lab_fleet


def inventories(fleet: Fleet) -> list[str]:
    return ["-i", str(fleet.inventory), "-i", str(fleet.locks()),
            "--audit-log", str(fleet.work / "audit.jsonl")]


def trigger(fleet: Fleet, payload: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "runner", "trigger", str(PAYLOADS / payload), "-r", str(RULES)]
    return subprocess.run([*argv, *inventories(fleet)], capture_output=True, text=True, cwd=REPO, timeout=900,
                          check=False)


def results(fleet: Fleet) -> list[dict[str, Any]]:
    """The JSON documents of the triggered runs, oldest first."""
    files = sorted((fleet.work / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    return [json.loads(p.read_text()) for p in files]


def audit(fleet: Fleet, event: str) -> list[dict[str, Any]]:
    lines = (fleet.work / "audit.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


def faults(document: dict[str, Any], host: str) -> dict[str, str]:
    entry = next(h for h in document["hosts"] if h["host"] == host)
    return {f["playbook"]: f["state"] for f in entry["faults"]}


def test_a_firing_alert_fixes_its_host_and_the_same_alert_again_changes_nothing(fleet: Fleet) -> None:
    fleet.break_host("host02", "port_conflict_stale")
    first = trigger(fleet, "coze-down-host02.json")
    assert first.returncode == 0, first.stderr
    assert "alert CozeDown on host02 [43d96c43dc764c6f]: run: fix" in first.stderr
    (document,) = results(fleet)
    assert document["check"] is False and document["exit_code"] == 0
    assert [h["host"] for h in document["hosts"]] == ["host02"]
    assert faults(document, "host02") == {"permission_error": "healthy", "port_conflict": "fixed",
                                          "restore_from_backup": "healthy", "cache_flush": "healthy"}
    assert document["trigger"] == {"rule": "coze down", "mode": "run", "alerts": ["43d96c43dc764c6f"],
                                   "reason": ""}
    assert fleet.health("host02")[0] == 200
    before = (fleet.tree("host02", mtimes=True, skip=RUNTIME), fleet.service_process("host02"))

    second = trigger(fleet, "coze-down-host02.json")
    assert second.returncode == 0, second.stderr
    said = "alert CozeDown on host02 [43d96c43dc764c6f]: cooldown: permission_error ran on host02"
    assert said in second.stderr
    assert "within the cooldown of 15m" in second.stderr
    assert (fleet.tree("host02", mtimes=True, skip=RUNTIME), fleet.service_process("host02")) == before
    assert len(results(fleet)) == 1 and len(audit(fleet, "run_start")) == 1
    assert [r["verdict"] for r in audit(fleet, "alert")] == ["run", "cooldown"]


def test_a_storm_of_alerts_only_plans_and_says_so(fleet: Fleet) -> None:
    fleet.break_host("host01", "cache_stale_files")
    before = fleet.tree("host01", mtimes=True, skip=RUNTIME)
    done = trigger(fleet, "storm.json")
    assert done.returncode == 0, done.stderr
    storm = "storm: 3 hosts alerted within 10m (more than 2): planning only, nothing is changed"
    assert done.stderr.count(f": plan: {storm}") == 3
    (document,) = results(fleet)
    assert document["check"] is True and document["trigger"]["reason"] == storm
    assert sorted(h["host"] for h in document["hosts"]) == ["host01", "host02", "host03"]
    assert faults(document, "host01")["cache_flush"] == "found"
    for host in ("host02", "host03"):
        assert set(faults(document, host).values()) == {"healthy"}
    assert fleet.tree("host01", mtimes=True, skip=RUNTIME) == before  # still broken: nothing changed
    host01 = next(h for h in document["hosts"] if h["host"] == "host01")
    assert any(t.get("predicted") == "change" for t in host01["tasks"] if t["phase"] == "tasks")  # the plan


def test_resolved_and_unknown_alerts_are_logged_and_ignored(fleet: Fleet) -> None:
    for payload, said in (
            ("resolved-host02.json", "resolved: the alert is resolved: nothing to do"),
            ("unknown-alert-host01.json", "unmatched: no rule for the alertname 'DiskAlmostFull'")):
        done = trigger(fleet, payload)
        assert done.returncode == 0 and said in done.stderr, done.stderr
    assert not (fleet.work / "runs").exists()
    assert [r["verdict"] for r in audit(fleet, "alert")] == ["resolved", "unmatched"]


def test_listen_answers_401_400_and_202_keeps_serving_and_fixes_the_host(fleet: Fleet) -> None:
    fleet.break_host("host03", "cache_stale_files")
    good = json.loads((PAYLOADS / "stale-cache-host03.json").read_text())
    listener = Listener(["-r", str(RULES), *inventories(fleet), "--max-body", "65536"])
    try:
        assert listener.post(good, token=None) == (401, {"error": "missing or wrong bearer token"})
        assert listener.post(good, token="not-the-token")[0] == 401
        bad = [(b'{"version": "4",', "invalid JSON: Expecting property name enclosed in double quotes"),
               ({**good, "version": "3"}, "version is '3'"),
               ({**good, "alerts": [{"status": "firing", "annotations": {}}]}, "alerts[0] has no labels"),
               (b" " * 70000, "the payload has 70000 bytes, more than the limit of 65536")]
        for body, reason in bad:
            status, answer = listener.post(body)
            assert status == 400 and reason in answer["error"], answer
            assert listener.healthy()
        status, answer = listener.post(good)
        assert status == 202 and answer["runs"] == 1
        assert [(a["host"], a["verdict"]) for a in answer["alerts"]] == [("host03", "run")]
        wait_until(lambda: results(fleet), timeout=600, what="the triggered run's JSON document")
    finally:
        code = listener.stop()
    assert code == 0, "\n".join(listener.lines)
    (document,) = results(fleet)
    assert faults(document, "host03") == {"cache_flush": "fixed"}
    assert [r["event"] for r in audit(fleet, "alert_run")] == ["alert_run"]
    assert listener.said("127.0.0.1 \"POST /alerts HTTP/1.1\" 401")
    assert listener.said("127.0.0.1 \"POST /alerts HTTP/1.1\" 400")
