"""service_down on a small lab: start a stopped service; report a crash loop instead of restarting it.

One lab of ``LAB_SIZE`` hosts serves the module; the ``fleet`` fixture resets
every host a test broke. A cleanly stopped service and one killed outright
(its pid file names a dead process) are started, as the plan predicted,
beside a running host with another fault and a healthy host that stays
byte-identical. A crash-looping service is never started again: the host is
reported failed with error.log's last lines and, when they point at one, the
bundled playbook to run instead. A forced verification failure stops the
service again, leaving the host's files as they were.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from lab_faults import CRASH_MESSAGE, CRASH_STARTS

from tests.e2e.conftest import LabHandle
from tests.e2e.fleet import RUNTIME, Fleet, Outcome
from tests.e2e.test_playbooks import FORCE_FAILURE, check_fleet_run
from tests.support.waiting import wait_until

LAB_SIZE = 4
QUICK = ("-e", "start_backoff=0")  # attempts without pauses: the tests count starts, not seconds


@pytest.fixture(scope="module")
def lab4(shared_lab: Callable[[int], LabHandle], tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    """The session's lab of LAB_SIZE hosts (shared with the other modules of that size)."""
    return Fleet(shared_lab(LAB_SIZE), tmp_path_factory.mktemp("service_down"))


@pytest.fixture
def fleet(lab4: Fleet) -> Iterator[Fleet]:
    yield lab4
    lab4.reset_touched()


def kill_service(fleet: Fleet, host: str) -> None:
    """SIGKILL the service: it leaves its pid file naming a dead process."""
    fleet.touched.append(host)
    pid, _ = fleet.service_process(host)
    os.kill(int(pid), signal.SIGKILL)
    wait_until(lambda: fleet.service_process(host) == ("", "") or fleet.lab.health(host)[0] is None,
               timeout=15, what="the killed service to be gone")


def starts(fleet: Fleet, host: str) -> int:
    """How many starts the host's start record holds."""
    return (fleet.lab.root(host) / "run/coze/coze.starts").read_text().count(" start ")


def files_and_data(fleet: Fleet, host: str) -> dict[str, Any]:
    """``untouched_state`` but the process: a crashed instance may linger as a zombie until reaped."""
    return {k: v for k, v in fleet.untouched_state(host).items() if k != "process"}


def task(outcome: Outcome, host: str, name: str) -> dict[str, Any]:
    return next(t for t in outcome.host(host)["tasks"] if t["task"] == f"service_down:{name}")


def test_service_down_fleet(fleet: Fleet) -> None:
    """A stopped and a killed service are started; a running one with another fault is left alone."""
    fleet.break_host("host01", "service_stopped")
    kill_service(fleet, "host02")
    fleet.break_host("host03", "cache_stale_files")  # runs: not this playbook's business
    fleet.break_host("host04", "port_conflict_stale")  # an orphaned instance runs: port_conflict's
    check_fleet_run(fleet, "service_down", {"host01": ["start"], "host02": ["start"]})
    assert fleet.service_process("host02")[0] and (fleet.lab.root("host02") / "run/coze/coze.pid").exists()
    orphan = [r["pid"] for r in fleet.lab.state()["processes"] if r["role"] == "stale-service"]
    said = task(fleet.remedy("diagnose", "service_down", "-l", "host04"), "host04", "verdict")["message"]
    assert f"the pidfile does not name what runs: pid {orphan[0]} (" in said, said


def test_a_crash_loop_is_reported_with_the_log_and_never_restarted(fleet: Fleet) -> None:
    fleet.break_host("host01", "crash_loop")
    before = files_and_data(fleet, "host01")

    diagnosed = fleet.remedy("diagnose", "service_down", "-l", "host01")
    evidence = " ".join(diagnosed.host("host01")["faults"][0]["evidence"])
    assert f"{CRASH_STARTS} starts in the last 300s without a clean stop: a crash loop" in evidence
    assert CRASH_MESSAGE in evidence

    plan = fleet.remedy("plan", "service_down", "-l", "host01")
    assert task(plan, "host01", "start")["status"] == "failed", "the plan says it will not start it"
    run = fleet.remedy("run", "service_down", "-l", "host01")
    assert run.rc == 2 and run.status("host01") == "failed", run.explain()
    start = task(run, "host01", "start")
    assert "a crash loop (crash_limit 3); not started again" in start["message"], start
    said = task(run, "host01", "explain")["message"]
    assert said.startswith("coze does not stay up (a crash loop); the last lines of "), said
    assert said.count(f"fatal: {CRASH_MESSAGE}") == CRASH_STARTS
    assert said.endswith("no bundled playbook answers them: read "
                         f"{fleet.lab.root('host01')}/var/log/coze/error.log before starting it again")
    assert not run.changed("host01") and fleet.lab.health("host01")[0] is None
    assert files_and_data(fleet, "host01") == before, "not even one more start (files with mtimes)"


def test_starts_that_crash_stop_at_the_crash_limit_and_name_the_playbook_the_log_points_at(
        fleet: Fleet) -> None:
    """The crashes are an hour old (no loop yet): each new start crashes; the third ends the attempts."""
    fleet.break_host("host02", "crash_loop")
    root = fleet.lab.root("host02")
    record = root / "run/coze/coze.starts"
    hour_ago = int(time.time()) - 3600
    lines = record.read_text().splitlines()
    record.write_text("".join(f"{hour_ago} {line.split(' ', 1)[1]}\n" for line in lines))
    switch = root / "etc/coze/crash-after-start"
    switch.write_text("cannot open plugin dir /opt/coze/plugins: Permission denied\n")
    earlier = starts(fleet, "host02")

    run = fleet.remedy("run", "service_down", "-l", "host02", "-e", "start_attempts=10", *QUICK)
    assert run.rc == 2 and run.status("host02") == "failed", run.explain()
    assert starts(fleet, "host02") == earlier + 3, "the crash limit (3) ends the attempts, not start_attempts"
    start = task(run, "host02", "start")["message"]
    assert start.startswith("coze: crash loop: 3 starts in the last 300s without a clean stop; "
                            "no further attempt"), start
    # the crash comes before the pid file is seen ("right after") or during start_settle ("Ns after")
    assert re.search(r"attempt 3 of 10: it exited (right|\d+s) after it started \(pid \d+\)", start), start
    said = task(run, "host02", "explain")["message"]
    assert "fatal: cannot open plugin dir /opt/coze/plugins: Permission denied" in said
    assert said.endswith("they point at permission_error: run `remedy run permission_error -l host02` "
                         "instead of restarting it"), said
    assert not run.changed("host02") and fleet.lab.health("host02")[0] is None
    assert not (root / "run/coze/coze.pid").exists(), "the crashed instance's pid file is cleaned up"


def test_a_start_that_fails_leaves_the_host_as_it_was_and_says_what_to_run(fleet: Fleet) -> None:
    """Run alone on a config the service cannot read: the start fails at once, error.log names the cause."""
    fleet.break_host("host03", "permission_config")
    before = fleet.tree("host03", mtimes=False, skip=RUNTIME)
    run = fleet.remedy("run", "service_down", "-l", "host03", "-e", "start_attempts=2", *QUICK)
    assert run.rc == 2 and run.status("host03") == "failed", run.explain()
    start = task(run, "host03", "start")["message"]
    assert start == ("coze did not stay up after 2 attempt(s) (attempt 1 of 2: the start command exited 2; "
                     "attempt 2 of 2: the start command exited 2)"), start
    said = task(run, "host03", "explain")["message"]
    assert "cannot read config" in said and "Permission denied" in said
    assert said.endswith("run `remedy run permission_error -l host03` instead of restarting it"), said
    assert fleet.tree("host03", mtimes=False, skip=RUNTIME) == before
    assert fleet.service_process("host03") == ("", "")


def test_a_port_held_by_another_program_blocks_it_until_port_conflict_ran(fleet: Fleet) -> None:
    fleet.break_host("host04", "port_conflict_foreign")
    before = fleet.untouched_state("host04")
    alone = fleet.remedy("run", "service_down", "-l", "host04")
    assert alone.rc == 2 and alone.status("host04") == "blocked", alone.explain()
    fault = alone.host("host04")["faults"][0]
    assert fault["blocked_by"] == "port_conflict" and "run port_conflict first" in fault["detail"], fault
    assert "http.server" in fault["detail"]
    assert fleet.untouched_state("host04") == before

    both = fleet.remedy("run", "service_down port_conflict", "-l", "host04", "-e", "allow_stop_foreign=true")
    assert both.rc == 0, both.explain()
    states = {f["playbook"]: f["state"] for f in both.host("host04")["faults"]}
    assert states == {"port_conflict": "fixed", "service_down": "healthy"}, states
    assert fleet.health("host04")[0] == 200


def test_with_every_playbook_a_crash_loop_is_reported_and_the_other_hosts_fixed(fleet: Fleet) -> None:
    fleet.break_host("host01", "crash_loop")
    fleet.break_host("host02", "permission_exec", "service_stopped")
    run = fleet.remedy("run", "", "-l", "host01,host02")
    assert run.rc == 2, run.explain()
    assert run.status("host01") == "failed"
    states = {f["playbook"]: f["state"] for f in run.host("host01")["faults"]}
    assert states["service_down"] == "failed", states
    assert set(states.values()) == {"healthy", "failed"}, states
    assert {f["playbook"]: f["state"] for f in run.host("host02")["faults"]}["service_down"] == "fixed"
    assert run.status("host02") == "changed" and fleet.health("host02")[0] == 200


@pytest.mark.parametrize("faults", [("service_stopped",), ("service_stopped", "cache_stale_redis")],
                         ids=["alone", "with_another_fault"])
def test_failed_verification_stops_the_service_again_byte_for_byte(fleet: Fleet,
                                                                   faults: tuple[str, ...]) -> None:
    fleet.break_host("host03", *faults)
    before = {"tree": fleet.tree("host03", mtimes=False, skip=RUNTIME), "redis": fleet.redis_keys("host03"),
              "process": fleet.service_process("host03")}
    run = fleet.remedy("run", "service_down", "-l", "host03", "-e", FORCE_FAILURE)
    assert run.rc == 2 and run.status("host03") == "rolled_back", run.explain()
    assert task(run, "host03", "undo_start")["changed"], "the rollback stopped what the run started"
    after = {"tree": fleet.tree("host03", mtimes=False, skip=RUNTIME), "redis": fleet.redis_keys("host03"),
             "process": fleet.service_process("host03")}
    assert after == before


def test_a_crash_hint_that_is_not_a_regexp_fails_the_diagnosis_before_any_change(fleet: Fleet) -> None:
    fleet.break_host("host04", "service_stopped")
    before = fleet.untouched_state("host04")
    run = fleet.remedy("run", "service_down", "-l", "host04",
                       "-e", '{"crash_hints": [{"pattern": "(", "playbook": "config_error"}]}')
    assert run.rc == 2 and run.status("host04") == "failed", run.explain()
    hints = task(run, "host04", "hints")
    assert hints["status"] == "failed" and "missing ), unterminated subpattern" in hints["message"], hints
    assert not run.changed("host04") and fleet.untouched_state("host04") == before
