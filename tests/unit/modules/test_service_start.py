"""The ``service`` module's start on this machine's sh: attempts, settle time, crash loops.

A small daemon stands in for a service: it writes its pidfile and a line of
the start record, then exits a moment later with a fatal line in its error
log (a crash), unless its ``ok`` file exists. The start script must stop at
the crash limit instead of restarting it blindly, report the log's last
lines, and leave nothing of the service behind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.modules import MODULES
from runner.modules.base import Outcome
from tests.unit.modules.localrun import apply, gather, plan

DAEMON = """\
#!/bin/sh
# a daemon: pidfile, start record, then a crash after {lifetime}s unless {root}/ok exists
sh -c 'echo $$ >{root}/svc.pid; echo "$(date +%s) start $$" >>{root}/svc.starts
if [ -e {root}/ok ]; then exec sleep 4747; fi
sleep {lifetime}; echo "fatal: worker $$ died" >>{root}/error.log; exit 70' </dev/null >/dev/null 2>&1 &
exit 0
"""


def _args(root: Path, **extra: Any) -> dict[str, Any]:
    return {"name": "svc", "manager": "pidfile", "pidfile": str(root / "svc.pid"),
            "start": str(root / "start"), "match": "^sleep 4747", "start_record": str(root / "svc.starts"),
            "logs": [str(root / "error.log")], "log_lines": 2, "backoff": 0, "start_timeout": 20,
            "state": "started", **extra}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Path]:
    """A dir with the daemon's start command; its live instances are killed afterwards."""
    (tmp_path / "start").write_text(DAEMON.format(root=tmp_path, lifetime="0.3"))
    (tmp_path / "start").chmod(0o755)
    yield tmp_path
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if (proc / "cmdline").read_bytes() == b"sleep\x004747\x00":
                os.kill(int(proc.name), 9)
        except (FileNotFoundError, ProcessLookupError):
            pass


def _starts(root: Path) -> int:
    record = root / "svc.starts"
    return record.read_text().count(" start ") if record.exists() else 0


def _run(args: dict[str, Any]) -> tuple[Outcome, int]:
    module = MODULES["service"]()
    facts = gather(module, args)
    change = module.plan(args, facts)
    assert not change.failed, change.failed
    results = apply(change)
    return module.outcome(args, facts, change, results), results[-1].rc


def test_a_crashing_service_is_started_until_the_crash_limit_and_no_more(daemon: Path) -> None:
    outcome, rc = _run(_args(daemon, attempts=6, crash_limit=3))
    assert rc == 3
    assert _starts(daemon) == 3, "three crashes make the loop: no fourth start"
    assert outcome.failed.startswith("svc: crash loop: 3 starts in the last 300s without a clean stop")
    assert "attempt 3 of 6: it exited right after it started (pid " in outcome.failed
    assert not outcome.changed, "nothing of the service runs"
    assert outcome.data["crash_loop"] is True and outcome.data["attempts"] == 3
    assert outcome.data["log_tail"] == (daemon / "error.log").read_text().splitlines()[-2:]
    assert not (daemon / "svc.pid").exists(), "the crashed instance's pidfile is removed"

    again = plan("service", _args(daemon, attempts=6, crash_limit=3))
    assert again.failed and not again.steps, "a crash loop is refused before any start"
    assert "a crash loop (crash_limit 3); not started again" in again.failed
    assert again.data["log_tail"] == outcome.data["log_tail"]
    assert _starts(daemon) == 3


def test_attempts_end_with_the_last_lines_of_the_log_when_no_crash_limit_is_set(daemon: Path) -> None:
    outcome, rc = _run(_args(daemon, attempts=2))
    assert rc == 4 and _starts(daemon) == 2
    assert outcome.failed.startswith("svc did not stay up after 2 attempt(s) (attempt 1 of 2: it exited")
    assert len(outcome.data["log_tail"]) == 2 and outcome.data["crash_loop"] is False


def test_a_start_command_that_fails_fails_at_once(daemon: Path) -> None:
    (daemon / "start").write_text(f"#!/bin/sh\necho 'config error: port' >>{daemon}/error.log\nexit 2\n")
    began = time.monotonic()
    outcome, rc = _run(_args(daemon, start_timeout=30))
    assert time.monotonic() - began < 10, "not after start_timeout: the start command said it failed"
    assert rc == 4 and "attempt 1 of 1: the start command exited 2" in outcome.failed
    assert outcome.data["log_tail"] == ["config error: port"]


def test_settle_catches_a_service_that_dies_a_moment_after_it_started(daemon: Path) -> None:
    (daemon / "start").write_text(DAEMON.format(root=daemon, lifetime="1.5"))
    outcome, rc = _run(_args(daemon, settle=4))
    assert rc == 4 and "it exited " in outcome.failed and "s after it started (pid " in outcome.failed


def test_a_service_that_stays_up_is_started_and_inspected_as_running(daemon: Path) -> None:
    (daemon / "ok").touch()
    outcome, rc = _run(_args(daemon, attempts=3, settle=1, crash_limit=3))
    assert rc == 0 and not outcome.failed and outcome.changed
    args = _args(daemon, state="inspected", crash_limit=3)
    assert MODULES["service"]().reads_only(args)
    status = plan("service", args)
    assert not status.steps and status.data["running"] is True and status.data["crashes"] == 0


def test_a_slow_daemon_is_waited_for_not_mistaken_for_its_starter(daemon: Path) -> None:
    """The starter runs 3 s before the daemon writes its pidfile: the pidfile must name the daemon."""
    (daemon / "start").write_text(f"#!/bin/sh\nsleep 3\nsleep 4747 </dev/null >/dev/null 2>&1 &\n"
                                  f"echo $! >{daemon}/svc.pid\n")
    outcome, rc = _run(_args(daemon, match="sleep 4747"))
    assert rc == 0 and not outcome.failed
    pid = (daemon / "svc.pid").read_text().strip()
    assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x004747\x00", "the daemon, not its starter"


def test_an_instance_the_pidfile_does_not_name_is_a_stray_and_the_probe_is_not(daemon: Path) -> None:
    (daemon / "ok").touch()
    outcome, rc = _run(_args(daemon))
    assert rc == 0
    pid = int((daemon / "svc.pid").read_text())
    (daemon / "svc.pid").unlink()  # the instance runs on, unnamed
    status = plan("service", _args(daemon, state="inspected", match="sleep 4747|svc\\.pid"))
    assert status.data["running"] is False
    assert status.data["strays"] == [f"pid {pid} (sleep 4747)"], "the probe's own processes are left out"
