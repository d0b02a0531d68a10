"""Alertmanager webhook payloads: the recorded examples read as sent, a bad one refused with its reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runner.alerts.payload import PayloadError, read_notification
from runner.cli.program import main

PAYLOADS = Path(__file__).resolve().parents[2] / "examples" / "alerts" / "payloads"


def payload(**changes: Any) -> dict[str, Any]:
    body = json.loads((PAYLOADS / "coze-down-host02.json").read_text())
    body.update(changes)
    return body


def reason(body: Any) -> str:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(PayloadError) as caught:
        read_notification(data, "<test>")
    return caught.value.reason


def test_the_recorded_firing_payload_reads_as_alertmanager_sent_it() -> None:
    notification = read_notification((PAYLOADS / "coze-down-host02.json").read_bytes(), "coze-down")
    assert notification.status == "firing" and notification.receiver == "remedy"
    (alert,) = notification.alerts
    assert alert.firing and alert.name == "CozeDown"
    assert alert.labels["instance"] == "host02:9100"
    assert alert.fingerprint == "43d96c43dc764c6f"
    assert alert.annotations["summary"].startswith("coze on host02")
    assert alert.starts_at == "2024-05-14T03:12:07.123Z"


def test_a_resolved_alert_keeps_the_fingerprint_of_the_firing_one() -> None:
    firing = read_notification((PAYLOADS / "coze-down-host02.json").read_bytes(), "a").alerts[0]
    resolved = read_notification((PAYLOADS / "resolved-host02.json").read_bytes(), "b").alerts[0]
    assert not resolved.firing and resolved.fingerprint == firing.fingerprint


def test_the_storm_payload_holds_one_alert_per_host() -> None:
    notification = read_notification((PAYLOADS / "storm.json").read_bytes(), "storm")
    instances = [a.labels["instance"] for a in notification.alerts]
    assert instances == ["host01:9100", "host02:9100", "host03:9100"]


def test_invalid_json_names_the_line_and_column() -> None:
    with pytest.raises(PayloadError) as caught:
        read_notification(b'{"version": "4",\n  "alerts": [,]}', "alert.json")
    problem = caught.value.problems[0]
    assert (problem.location.file, problem.location.line, problem.location.column) == ("alert.json", 2, 14)
    assert "invalid JSON: Expecting value (line 2 column 14)" in caught.value.reason


@pytest.mark.parametrize(("body", "expected"), [
    (payload(version="3"), "version is '3', and remedy reads Alertmanager webhook version '4'"),
    (payload(status="pending"), "status is 'pending', not 'firing' or 'resolved'"),
    (payload(alerts=[]), "'alerts' must be a non-empty list of alerts"),
    ([1, 2], "the payload is a JSON array, not an object"),
    (payload(alerts=[{"status": "firing"}]), "alerts[0] has no labels"),
    (payload(alerts=[{"status": "firing", "labels": {"instance": "h:1"}}]),
     "alerts[0].labels has no alertname"),
    (payload(alerts=[{"status": "firing", "labels": {"alertname": "A", "port": 9100}}]),
     "alerts[0].labels.port is a JSON number, not a string"),
    (payload(alerts=[{"status": "firing", "labels": {"alertname": "A", "bad-name": "x"}}]),
     "alerts[0].labels: 'bad-name' is not a label name"),
    (payload(alerts=["CozeDown"]), "alerts[0] is a JSON string, not an alert object"),
    (payload(alerts=[{"status": "gone", "labels": {"alertname": "A"}}]),
     "alerts[0].status is 'gone', not 'firing' or 'resolved'"),
    (payload(receiver=7), "receiver is a JSON number, not a string"),
])
def test_a_payload_that_is_not_a_version_4_notification_is_refused_with_the_reason(
        body: Any, expected: str) -> None:
    assert reason(body) == expected


def test_a_duplicate_key_is_refused_rather_than_the_last_one_winning() -> None:
    assert reason(b'{"version": "4", "version": "4"}') == "duplicate key 'version' in a JSON object"


def test_a_payload_over_the_limit_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(PayloadError) as caught:
        read_notification(b"x" * 2049, "<body>", limit=2048)
    assert caught.value.reason == "the payload has 2049 bytes, more than the limit of 2048"


def test_nesting_too_deep_and_bad_bytes_are_reasons_not_crashes() -> None:
    assert reason(b"[" * 100_000).startswith("invalid JSON")
    assert reason(b'{"version": "\xff"}').startswith("the payload is not UTF-8")


def test_an_alert_without_a_fingerprint_gets_a_stable_one_from_its_labels() -> None:
    labels = {"alertname": "CozeDown", "instance": "host02:9100"}
    first = payload(alerts=[{"status": "firing", "labels": labels}])
    again = payload(alerts=[{"status": "firing", "labels": dict(reversed(labels.items()))}])
    other = payload(alerts=[{"status": "firing", "labels": {**labels, "instance": "host03:9100"}}])
    prints = [read_notification(json.dumps(b).encode(), "x").alerts[0].fingerprint
              for b in (first, again, other)]
    assert prints[0] == prints[1] != prints[2]
    assert len(prints[0]) == 16


def test_trigger_with_a_bad_payload_is_exit_4_naming_file_line_and_fix(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    alert = tmp_path / "alert.json"
    alert.write_text('{"version": "4",\n  "alerts": [,]}\n')
    code = main(["trigger", str(alert), "-r", str(PAYLOADS.parent / "rules.yml"),
                 "-i", "host02,", "--audit-log", str(tmp_path / "a.jsonl")])
    err = capsys.readouterr().err
    assert code == 4
    assert f"{alert}:2:14: invalid JSON: Expecting value (line 2 column 14)" in err
    assert '    2 |   "alerts": [,]}' in err
    assert "hint: send the notification as Alertmanager's JSON" in err
    assert not (tmp_path / "a.jsonl").exists()
