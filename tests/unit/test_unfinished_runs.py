"""``audit.unfinished_runs``: the runs a log says started and never ended, whose process is gone."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from runner.output.audit import unfinished_runs


def gone_pid() -> int:
    """The pid of a process that has ended."""
    done = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    return int(done.stdout)


def write(path: Path, *records: dict[str, object]) -> None:
    with path.open("a") as handle:
        for record in records:
            handle.write(json.dumps(record, sort_keys=True) + "\n")


def start(run_id: str, pid: int) -> dict[str, object]:
    return {"event": "run_start", "run_id": run_id, "pid": pid, "ts": "2026-01-01T00:00:00.000+00:00"}


def end(run_id: str) -> dict[str, object]:
    return {"event": "run_end", "run_id": run_id, "exit_code": 0}


def test_a_killed_run_since_the_last_finished_one_is_unfinished(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    dead = gone_pid()
    write(log, start("old-crash", dead), start("done", dead), {"event": "task_end", "run_id": "done"},
          end("done"), start("killed", dead), {"event": "task_end", "run_id": "killed"})
    assert [r["run_id"] for r in unfinished_runs(log)] == ["killed"]


def test_a_run_still_going_and_a_run_that_ended_are_not(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    write(log, start("running", os.getpid()), start("ended", gone_pid()), end("ended"),
          start("running-too", os.getpid()))
    assert unfinished_runs(log) == []


def test_a_torn_last_line_and_a_missing_log_are_no_trouble(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    write(log, start("killed", gone_pid()))
    with log.open("a") as handle:
        handle.write('{"event": "run_start", "run_id": "tor')
    assert [r["run_id"] for r in unfinished_runs(log)] == ["killed"]
    assert unfinished_runs(tmp_path / "missing.jsonl") == []
