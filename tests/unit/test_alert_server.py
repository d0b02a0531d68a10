"""The HTTP receiver over loopback: 401, 400 and 202 as documented, still serving after bad requests,
dedup while a run is in flight, a bounded queue (503), drain and abort.

The run function is a stand-in that records each run and can be held
until the test lets it finish; tests/e2e/test_alerts.py serves real runs.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runner.alerts.dispatch import Dispatcher, Setup
from runner.alerts.rules import load_rules
from runner.alerts.server import Receiver, ServerOptions
from runner.alerts.store import GuardStore
from runner.alerts.targets import HostIndex, TriggeredRun
from runner.cli.program import main
from runner.load.inventory import load_inventory
from runner.output.audit import AuditLog
from runner.redaction import Redactor
from runner.results import Fault, FaultState, HostResult, Run, Status

TOKEN = "t0ken-for-the-tests-0123456789"
PAYLOADS = Path(__file__).resolve().parents[2] / "examples" / "alerts" / "payloads"
WAIT = 30.0


@dataclass
class Served:
    """A receiver on a loopback port, with a run function the test holds and watches."""

    port: int
    receiver: Receiver
    audit: Path
    gate: threading.Event = field(default_factory=threading.Event)
    started: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    runs: list[TriggeredRun] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def run(self, triggered: TriggeredRun) -> tuple[int, Run]:
        self.runs.append(triggered)
        self.started.release()
        assert self.gate.wait(WAIT)
        hosts = tuple(HostResult(h, (), Status.CHANGED, (Fault(n, FaultState.FIXED),))
                      for h in triggered.hosts for n in triggered.names)
        return 0, Run(f"run{len(self.runs)}", hosts)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, json.loads(response.read()), dict(response.getheaders())
        finally:
            connection.close()

    def post(self, body: bytes | dict[str, Any], token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        status, document, _ = self.request("POST", "/alerts", data, headers)
        return status, document

    def alive(self) -> bool:
        status, document, _ = self.request("GET", "/healthz")
        return status == 200 and document["status"] in ("ok", "draining")

    def wait_started(self, count: int = 1) -> None:
        for _ in range(count):
            assert self.started.acquire(timeout=WAIT), "a run did not start"


def firing(host: str, name: str = "CozeDown") -> dict[str, Any]:
    body = json.loads((PAYLOADS / "coze-down-host02.json").read_text())
    body["alerts"][0]["labels"].update(alertname=name, instance=f"{host}:9100")
    body["alerts"][0]["fingerprint"] = f"{name}-{host}"
    return body


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    (tmp_path / "rules.yml").write_text(
        "guards: {cooldown: 10m, storm: {hosts: 5, within: 10m}}\n"
        "rules: [{name: down, matchers: ['alertname=CozeDown'], playbooks: [port_conflict], mode: run}]\n")
    (tmp_path / "hosts.ini").write_text("host01\nhost02\nhost03\nhost04\n")
    audit_path = tmp_path / "audit.jsonl"
    audit = AuditLog(audit_path, Redactor())
    setup = Setup(load_rules(tmp_path / "rules.yml"), HostIndex.of(load_inventory([tmp_path / "hosts.ini"])),
                  GuardStore(tmp_path / "guards.json"), audit)
    stop = threading.Event()
    holder: list[Served] = []
    dispatcher = Dispatcher(setup, lambda t: holder[0].run(t), lambda line: holder[0].lines.append(line))
    receiver = Receiver(dispatcher, ServerOptions(port=0, token=TOKEN, max_body=8192, queue_size=1), stop)
    holder.append(Served(0, receiver, audit_path))
    holder[0].port = receiver.start()[1]
    try:
        yield holder[0]
    finally:
        receiver.abort()
        holder[0].gate.set()
        receiver.drain()
        audit.close()


def test_requests_without_the_right_token_are_401_and_run_nothing(served: Served) -> None:
    for token in (None, "wrong-token", TOKEN[:-1], ""):
        status, document = served.post(firing("host02"), token=token)
        assert (status, document) == (401, {"error": "missing or wrong bearer token"})
    status, _, headers = served.request("POST", "/alerts", b"{}", {"Authorization": f"Basic {TOKEN}"})
    assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="remedy"'
    assert served.runs == [] and not served.audit.read_text()


@pytest.mark.parametrize(("body", "reason"), [
    (b'{"version": "4", "alerts": [}', "invalid JSON: Expecting value (line 1 column 29)"),
    ({**firing("host02"), "version": "3"},
     "version is '3', and remedy reads Alertmanager webhook version '4'"),
    ({**firing("host02"), "alerts": [{"status": "firing", "annotations": {}}]}, "alerts[0] has no labels"),
    ({**firing("host02"), "alerts": [{"status": "firing", "labels": {"job": "x"}}]},
     "alerts[0].labels has no alertname"),
    (b"x" * 9000, "the payload has 9000 bytes, more than the limit of 8192"),
])
def test_a_bad_payload_is_400_with_the_reason_and_the_listener_keeps_serving(
        served: Served, body: Any, reason: str) -> None:
    assert served.post(body) == (400, {"error": reason})
    assert served.alive()
    status, document = served.post(firing("host02"))
    assert status == 202 and document["alerts"][0]["verdict"] == "run"
    served.wait_started()
    assert [r.hosts for r in served.runs] == [("host02",)]


def test_requests_that_are_not_http_or_lack_a_length_never_stop_the_server(served: Served) -> None:
    for raw in (b"\x00\xff garbage\r\n\r\n",
                b"POST /alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n\r\n",
                b"POST /alerts HTTP/1.1\r\nContent-Length: 10\r\nAuthorization: Bearer "
                + TOKEN.encode() + b"\r\n\r\n{}"):  # the body ends early
        with socket.create_connection(("127.0.0.1", served.port), timeout=WAIT) as client:
            client.sendall(raw)
            client.shutdown(socket.SHUT_WR)
            answer = b"".join(iter(lambda c=client: c.recv(4096), b""))  # type: ignore[misc]
        assert answer.split(b" ", 2)[1] == b"400", answer
    assert served.request("GET", "/nowhere")[0] == 404
    assert served.request("POST", "/nowhere", b"{}")[0] == 404
    assert served.alive()


def test_a_good_payload_is_202_with_every_alerts_decision(served: Served) -> None:
    body = json.loads((PAYLOADS / "storm.json").read_text())
    body["alerts"].append({**body["alerts"][0], "status": "resolved", "fingerprint": "gone"})
    body["alerts"].append({**body["alerts"][0], "labels": {"alertname": "DiskAlmostFull"},
                           "fingerprint": "df"})
    status, document = served.post(body)
    assert status == 202 and document["status"] == "accepted" and document["runs"] == 1
    assert [(a["host"], a["verdict"]) for a in document["alerts"]] == [
        ("host01", "run"), ("host02", "run"), ("host03", "run"), ("", "resolved"), ("", "unmatched")]
    served.wait_started()
    assert served.runs[0].hosts == ("host01", "host02", "host03")
    records = [json.loads(line) for line in served.audit.read_text().splitlines()]
    assert [(r["event"], r["verdict"]) for r in records] == [("alert", "run")] * 3 + [
        ("alert", "resolved"), ("alert", "unmatched")]


def test_an_alert_is_a_duplicate_while_its_run_is_in_flight_then_cooled_down(served: Served) -> None:
    assert served.post(firing("host02"))[0] == 202
    served.wait_started()
    status, document = served.post(firing("host02"))
    assert status == 202 and document["alerts"][0]["verdict"] == "duplicate"
    assert document["runs"] == 0
    served.gate.set()
    served.receiver.drain()  # the run ends; its alert is no longer in flight
    assert any("exit 0, fixed port_conflict on host02" in line for line in served.lines)
    run_record = json.loads(served.audit.read_text().splitlines()[-1])
    assert (run_record["event"], run_record["triggered_run_id"], run_record["fixed"]) == (
        "alert_run", "run1", ["host02 port_conflict"])
    assert len(served.runs) == 1


def test_a_full_queue_is_503_and_the_alert_is_not_left_in_flight(served: Served) -> None:
    assert served.post(firing("host01"))[0] == 202
    served.wait_started()  # running: the queue is empty again
    assert served.post(firing("host02"))[0] == 202  # queued: the queue (1) is full
    status, document = served.post(firing("host03"))
    assert status == 503
    assert "not queued: the queue is full" in document["error"]
    served.gate.set()
    served.wait_started()  # host02's run
    status, document = served.post(firing("host03"))  # Alertmanager retries: now it runs
    assert status == 202 and document["alerts"][0]["verdict"] == "run"
    served.wait_started()
    assert [r.hosts for r in served.runs] == [("host01",), ("host02",), ("host03",)]


def test_drain_finishes_the_queued_runs_and_abort_releases_them(served: Served) -> None:
    served.post(firing("host01"))
    served.wait_started()
    served.post(firing("host02"))
    drained = threading.Thread(target=served.receiver.drain)
    drained.start()
    assert served.receiver.draining.wait(WAIT)
    served.gate.set()
    drained.join(WAIT)
    assert not drained.is_alive()
    assert [r.hosts for r in served.runs] == [("host01",), ("host02",)]
    with pytest.raises(OSError):
        served.post(firing("host03"))  # no longer listening


def test_abort_stops_the_running_run_and_drops_the_queued_ones(served: Served) -> None:
    served.post(firing("host01"))
    served.wait_started()
    served.post(firing("host02"))
    served.receiver.abort()
    assert served.receiver.stop.is_set()  # the running run's stop event: it stops as on SIGINT
    served.gate.set()
    served.receiver.drain()
    assert [r.hosts for r in served.runs] == [("host01",)]
    assert any("not run: interrupted" in line for line in served.lines)
    state = json.loads((served.audit.parent / "guards.json").read_text())
    assert state["in_flight"] == {}



@pytest.mark.parametrize("option", [["--workers", "0"], ["--queue-size", "0"], ["--max-body", "0"],
                                    ["--port", "70000"]])
def test_listen_numbers_out_of_range_are_exit_4_before_anything_is_loaded(
        option: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["listen", "-r", str(tmp_path / "missing.yml"), "-i", "host02,", "--no-auth", *option])
    assert code == 4
    assert f"<command line {option[0]}>: {option[0]} {option[1]} is not between" in capsys.readouterr().err
