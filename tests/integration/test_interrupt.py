"""SIGINT/SIGTERM mid-run: stop scheduling, kill in-flight commands, release locks, flush, exit 99."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.waiting import wait_until


def _pgrep(marker: str) -> bool:
    return subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_run_kills_the_command_releases_the_lock_and_exits_99(
        tmp_path: Path, signum: int) -> None:
    marker = f"remedy-sleep-{uuid.uuid4().hex}"
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"a ansible_connection=local remedy_lock_path={tmp_path}/lock\n")
    book = tmp_path / "book.yml"
    book.write_text(f"""
- hosts: all
  tasks:
    - name: long fix
      shell: "cp /bin/sleep {tmp_path}/{marker} && touch {tmp_path}/started && {tmp_path}/{marker} 120"
    - name: never reached
      command: "touch {tmp_path}/reached"
""")
    audit = tmp_path / "audit.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "runner", "run", str(book), "-i", str(inventory),
                             "--audit-log", str(audit)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_until(lambda: (tmp_path / "started").exists() and _pgrep(marker), timeout=30,
                   what="the remote command to start")
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 99, err
    assert not _pgrep(marker)
    assert not (tmp_path / "reached").exists()
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    ends = {r["name"]: r["status"] for r in records if r["event"] == "task_end"}
    assert ends == {"long fix": "indeterminate", "never reached": "not_run"}
    assert records[-1]["event"] == "run_end" and records[-1]["exit_code"] == 99
    free = subprocess.run(["flock", "-n", str(tmp_path / "lock"), "true"])
    assert free.returncode == 0
