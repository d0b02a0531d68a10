"""``remedy trigger`` and ``remedy listen`` end to end on localhost (the demo sandbox, local connection):
restart-loop escalation across processes, SIGTERM draining the queue, guard state surviving a restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runner.cli.demo import DEMO_PLAYBOOK, make_sandbox
from tests.support.listener import REPO, Listener
from tests.support.waiting import wait_until


@dataclass
class Site:
    """A broken demo sandbox, an inventory for it, rules, a payload, an audit log."""

    root: Path

    @property
    def app(self) -> Path:
        return self.root / "app"

    def rules(self, guards: str) -> Path:
        path = self.root / "rules.yml"
        path.write_text(f"guards: {guards}\nrules:\n  - name: demo\n"
                        f"    matchers: ['alertname=\"DemoBroken\"']\n"
                        f"    playbooks: [{DEMO_PLAYBOOK}]\n    mode: run\n")
        return path

    def alert(self, fingerprint: str = "demo-localhost") -> dict[str, Any]:
        return {"version": "4", "status": "firing", "receiver": "remedy", "groupKey": "{}:{}", "alerts": [
            {"status": "firing", "labels": {"alertname": "DemoBroken", "instance": "localhost:9100"},
             "annotations": {}, "fingerprint": fingerprint}]}

    def common(self) -> list[str]:
        return ["-i", str(self.root / "hosts.ini"), "--audit-log", str(self.root / "audit.jsonl")]

    def broken(self) -> bool:
        return (self.app / "etc/config.yaml").stat().st_mode & 0o777 == 0o666

    def trigger(self, rules: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        payload = self.root / "alert.json"
        payload.write_text(json.dumps(self.alert()))
        return subprocess.run([sys.executable, "-m", "runner", "trigger", str(payload), "-r", str(rules),
                               *self.common(), *extra], capture_output=True, text=True, cwd=REPO, timeout=300,
                              check=False)

    def audit(self, event: str) -> list[dict[str, Any]]:
        records = [json.loads(line) for line in (self.root / "audit.jsonl").read_text().splitlines()]
        return [r for r in records if r["event"] == event]

    def results(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted((self.root / "runs").glob("*.json"))]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    here = Site(tmp_path)
    make_sandbox(here.app)
    (tmp_path / "hosts.ini").write_text(  # its own lock: other tests' runs on localhost never block it
        f"localhost ansible_connection=local app_root={here.app} remedy_lock_path={tmp_path}/host.lock\n")
    yield here


def test_a_fault_fixed_k_times_within_t_is_escalated_and_left_for_a_person(site: Site) -> None:
    rules = site.rules("{cooldown: 0, restart_loop: {fixes: 2, within: 1h}}")
    for _ in range(2):
        done = site.trigger(rules, "--format", "json")
        assert done.returncode == 0, done.stderr
        document = json.loads(done.stdout)  # one run, one document
        assert document["trigger"] == {"rule": "demo", "mode": "run", "alerts": ["demo-localhost"],
                                       "reason": ""}
        assert json.loads((site.root / "runs" / f"{document['run_id']}.json").read_text()) == document
        assert not site.broken()
        assert "alert run (demo): run " in done.stderr and "fixed demo on localhost" in done.stderr
        make_sandbox(site.app)  # the fault comes back
    assert "ESCALATION: demo was fixed 2 times on localhost within 1h" in done.stderr
    third = site.trigger(rules)
    assert third.returncode == 2, third.stderr
    assert site.broken()  # not touched
    assert ("alert DemoBroken on localhost [demo-localhost]: escalated: demo was fixed 2 times on localhost "
            "within 1h") in third.stderr
    assert "needs a person" in third.stderr
    assert [r["verdict"] for r in site.audit("alert")] == ["run", "run", "escalated"]
    assert [r["fixed"] for r in site.audit("alert_run")] == [["localhost demo"], ["localhost demo"]]
    assert len(site.audit("run_start")) == 2  # the third alert started no run


def test_sigterm_lets_the_queued_run_finish_and_the_cooldown_survives_a_restart(site: Site) -> None:
    rules = site.rules("{cooldown: 10m}")
    listener = Listener(["-r", str(rules), *site.common()])
    try:
        status, answer = listener.post(site.alert())
        assert status == 202 and answer["alerts"][0]["verdict"] == "run"
        assert listener.stop() == 0  # at once: the drain waits for the run
    finally:
        listener.kill()
    assert listener.said("stopping: no new alerts") and listener.said("remedy listen: stopped")
    (result,) = site.results()
    assert result["exit_code"] == 0 and result["trigger"]["alerts"] == ["demo-localhost"]
    assert not site.broken()
    state = json.loads((site.root / "audit.guards.json").read_text())
    assert list(state["fixes"]["localhost"]) == ["demo"] and state["in_flight"] == {}
    make_sandbox(site.app)
    again = Listener(["-r", str(rules), *site.common()])
    try:
        status, answer = again.post(site.alert())
        assert status == 202 and answer["alerts"][0]["verdict"] == "cooldown"
        assert "within the cooldown of 10m" in answer["alerts"][0]["reason"]
        assert again.healthy()
    finally:
        assert again.stop() == 0
    assert site.broken() and len(site.results()) == 1


def test_listen_refuses_to_start_without_a_token_or_unauthenticated_off_loopback(site: Site) -> None:
    rules = site.rules("{cooldown: 10m}")
    base = [sys.executable, "-m", "runner", "listen", "-r", str(rules), *site.common(), "--port", "0"]
    env = {k: v for k, v in os.environ.items() if k != "REMEDY_LISTEN_TOKEN"}
    for extra, message in (([], "<environment REMEDY_LISTEN_TOKEN>: the listener's token is not set"),
                           (["--no-auth", "--bind", "0.0.0.0"],
                            "--no-auth on 0.0.0.0: anyone who reaches it could run playbooks")):
        done = subprocess.run([*base, *extra], capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
                              check=False)
        assert done.returncode == 4 and message in done.stderr, done.stderr
    assert site.broken() and not (site.root / "audit.jsonl").exists()  # nothing ran, nothing opened


def test_a_listen_port_in_use_is_exit_4(site: Site) -> None:
    rules = site.rules("{cooldown: 10m}")
    first = Listener(["-r", str(rules), *site.common()])
    try:
        done = subprocess.run([sys.executable, "-m", "runner", "listen", "-r", str(rules), *site.common(),
                               "--port", str(first.port), "--no-auth"], capture_output=True, text=True,
                              cwd=REPO, timeout=120, check=False)
        assert done.returncode == 4
        assert f"cannot listen on 127.0.0.1 port {first.port}: Address already in use" in done.stderr
        wait_until(first.healthy, what="the first listener still serving")
    finally:
        assert first.stop() == 0
