"""The guards: dedup while in flight, cooldown per host x playbook, storm control, restart-loop escalation;
and their state file, which survives a restart and is written whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner.alerts import store as store_module
from runner.alerts.guards import Admission, GuardState, InFlight, admit, settle, storm_reason
from runner.alerts.payload import Alert
from runner.alerts.rules import Guards, Mode, Rule
from runner.alerts.store import GuardStore, owner, state_path
from runner.alerts.targets import Trigger, TriggeredRun, Verdict
from runner.errors import InputError

GUARDS = Guards(cooldown=600, storm_hosts=2, storm_within=300, loop_fixes=3, loop_within=3600)
T0 = 1_700_000_000.0
ME = InFlight(os.getpid(), store_module.INSTANCE, T0)
FIX = Rule("fix", (), ("/books/port_conflict.yml", "/books/cache_flush.yml"), mode=Mode.RUN)
PLAN = Rule("look", (), ("/books/restore_from_backup.yml",), mode=Mode.PLAN)


def trigger(host: str, rule: Rule = FIX, name: str = "CozeDown") -> Trigger:
    alert = Alert("firing", {"alertname": name, "instance": host}, {}, fingerprint=f"{name}-{host}")
    return Trigger(alert, rule, host)


def decide(state: GuardState, *triggers: Trigger, at: float = T0) -> Admission:
    return admit(state, triggers, GUARDS, now=at, owner=ME)


def verdicts(admission: Admission) -> list[tuple[str, Verdict]]:
    return [(d.host, d.verdict) for d in admission.decisions]


def finish(admission: Admission, *fixed: tuple[str, str], at: float) -> GuardState:
    state = admission.state
    for run in admission.runs:
        state, _ = settle(state, run, [f for f in fixed if f[0] in run.hosts], GUARDS, at)
    return state


def test_an_alert_with_a_run_in_flight_is_a_duplicate_until_its_run_ends() -> None:
    first = decide(GuardState(), trigger("host02"))
    assert verdicts(first) == [("host02", Verdict.RUN)]
    again = decide(first.state, trigger("host02"), at=T0 + 1)
    assert verdicts(again) == [("host02", Verdict.DUPLICATE)]
    assert again.runs == ()
    assert "is in flight since" in again.decisions[0].reason
    after = finish(first, at=T0 + 2)
    assert after.in_flight == {}


def test_a_playbook_that_ran_on_a_host_is_held_back_there_for_the_cooldown_only() -> None:
    state = finish(decide(GuardState(), trigger("host02")), at=T0 + 5)
    soon = decide(state, trigger("host02"), trigger("host03"), at=T0 + 60)
    assert verdicts(soon) == [("host02", Verdict.COOLDOWN), ("host03", Verdict.RUN)]
    assert soon.decisions[0].reason == ("port_conflict ran on host02 1m ago, within the cooldown of 10m "
                                        "(until 2023-11-14 22:23:20 UTC); cache_flush ran on host02 1m ago, "
                                        "within the cooldown of 10m (until 2023-11-14 22:23:20 UTC)")
    later = decide(state, trigger("host02"), at=T0 + 600)
    assert verdicts(later) == [("host02", Verdict.RUN)]


def test_only_the_playbooks_in_cooldown_are_held_back() -> None:
    only_cache = Rule("cache", (), ("/books/cache_flush.yml",), mode=Mode.RUN)
    state = finish(decide(GuardState(), trigger("host02", only_cache, "CozeCacheStale")), at=T0)
    both = decide(state, trigger("host02"), at=T0 + 10)
    assert verdicts(both) == [("host02", Verdict.RUN)]
    assert both.decisions[0].playbooks == ("port_conflict",)
    assert both.decisions[0].reason.startswith("fix; held back: cache_flush ran on host02 10s ago")
    assert [r.playbooks for r in both.runs] == [("/books/port_conflict.yml",)]


def test_more_hosts_alerting_than_the_storm_limit_only_plan_and_say_so() -> None:
    calm = decide(GuardState(), trigger("host01"), trigger("host02"))
    assert [r.mode for r in calm.runs] == [Mode.RUN]
    storm = decide(GuardState(), trigger("host01"), trigger("host02"), trigger("host03"))
    assert verdicts(storm) == [("host01", Verdict.PLAN), ("host02", Verdict.PLAN), ("host03", Verdict.PLAN)]
    (run,) = storm.runs  # one plan over the three hosts
    assert (run.mode, run.hosts) == (Mode.PLAN, ("host01", "host02", "host03"))
    assert run.reason == storm.decisions[0].reason == (
        "storm: 3 hosts alerted within 5m (more than 2): planning only, nothing is changed")
    assert storm.state.last_run == {}  # a plan starts no cooldown


def test_a_storm_counts_the_hosts_of_earlier_notifications_within_its_window() -> None:
    first = decide(GuardState(), trigger("host01"), trigger("host02"))
    later = decide(first.state, trigger("host03", name="CozeCacheStale"), at=T0 + 100)
    assert verdicts(later) == [("host03", Verdict.PLAN)]
    assert storm_reason(later.state, GUARDS, T0 + 150).startswith("storm: 3 hosts")
    assert storm_reason(later.state, GUARDS, T0 + 301) == ""  # host01 and host02 left the window
    quiet = decide(later.state, trigger("host04"), at=T0 + 400)
    assert verdicts(quiet) == [("host04", Verdict.RUN)]


def test_a_fault_fixed_too_often_on_a_host_is_escalated_and_not_fixed_again() -> None:
    state = GuardState()
    notices: list[str] = []
    for round_ in range(3):
        at = T0 + round_ * 700  # past the cooldown each time
        admission = decide(state, trigger("host02"), at=at)
        assert verdicts(admission) == [("host02", Verdict.RUN)]
        (run,) = admission.runs
        state, notices = settle(admission.state, run, [("host02", "port_conflict")], GUARDS, at + 5)
    assert notices == ["port_conflict was fixed 3 times on host02 within 1h: the next alert for it will not "
                       "be fixed; the fault keeps coming back and needs a person"]
    fourth = decide(state, trigger("host02"), at=T0 + 2100)
    assert verdicts(fourth) == [("host02", Verdict.RUN)]  # cache_flush never needed fixing
    assert fourth.decisions[0].playbooks == ("cache_flush",)
    assert "held back: port_conflict was fixed 3 times on host02 within 1h" in fourth.decisions[0].reason
    alone = Rule("pc", (), ("/books/port_conflict.yml",), mode=Mode.RUN)
    escalated = decide(state, trigger("host02", alone, "CozePortConflict"), at=T0 + 2100)
    assert verdicts(escalated) == [("host02", Verdict.ESCALATED)]
    assert escalated.runs == ()
    assert "needs a person" in escalated.decisions[0].reason
    healed = decide(state, trigger("host02", alone, "CozePortConflict"), at=T0 + 3600 + 5 + 1)
    assert verdicts(healed) == [("host02", Verdict.RUN)]  # the first fix left the window


def test_a_plan_rule_plans_and_counts_no_fix() -> None:
    admission = decide(GuardState(), trigger("host02", PLAN, "CozeDataCorrupt"))
    assert verdicts(admission) == [("host02", Verdict.PLAN)]
    assert admission.decisions[0].reason == "the rule's mode is plan: nothing is changed"
    assert [(r.mode, r.reason) for r in admission.runs] == [(Mode.PLAN, "")]


def test_alerts_of_one_rule_share_one_run_and_differing_vars_do_not() -> None:
    one, two = trigger("host01"), trigger("host02")
    other = Trigger(trigger("host03").alert, FIX, "host03", {"coze_port": 8081})
    runs = decide(GuardState(), one, two).runs
    assert [(r.hosts, r.fingerprints) for r in runs] == [(("host01", "host02"),
                                                          ("CozeDown-host01", "CozeDown-host02"))]
    quiet = Guards(storm_hosts=10)
    runs = admit(GuardState(), [one, two, other], quiet, now=T0, owner=ME).runs
    assert [r.hosts for r in runs] == [("host01", "host02"), ("host03",)]
    assert runs[1].vars == {"coze_port": 8081}


# --- the state file -----------------------------------------------------------------------


def test_the_state_survives_a_new_store_and_sits_beside_the_audit_log(tmp_path: Path) -> None:
    path = state_path(tmp_path / "audit.jsonl")
    assert path == tmp_path / "audit.guards.json"
    first = GuardStore(path)
    admission = first.transact(lambda s: ((a := decide(s, trigger("host02"))).state, a))
    (run,) = admission.runs
    first.transact(lambda s: settle(s, run, [("host02", "port_conflict")], GUARDS, T0 + 1))
    reopened = GuardStore(path).load()
    assert reopened.fixes == {"host02": {"port_conflict": (T0 + 1,)}}
    assert reopened.last_run["host02"] == {"port_conflict": T0, "cache_flush": T0}
    assert verdicts(decide(reopened, trigger("host02"), at=T0 + 30)) == [("host02", Verdict.COOLDOWN)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.guards.json", "audit.guards.json.lock"]


def test_alerts_in_flight_of_a_process_that_is_gone_are_dropped_when_read(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(gone.stdout)
    state = GuardState(in_flight={"a": InFlight(dead_pid, "x", T0), "b": InFlight(os.getpid(), "old", T0),
                                  "c": owner(T0), "d": InFlight(1, "init", T0)})
    path = tmp_path / "guards.json"
    path.write_text(json.dumps(state.to_json()))
    assert sorted(GuardStore(path).load().in_flight) == ["c", "d"]  # b: an earlier process with my pid


def test_a_state_file_that_is_not_one_is_an_input_error_with_the_way_out(tmp_path: Path) -> None:
    path = tmp_path / "guards.json"
    for text in ("{not json", '{"fixes": {"h": {"p": ["soon"]}}}', "[]"):
        path.write_text(text)
        with pytest.raises(InputError) as caught:
            GuardStore(path).load()
        assert caught.value.problems[0].location.file == str(path)
        assert "remove it (and its .lock) to start the guards afresh" in caught.value.problems[0].hint


def test_a_change_that_fails_leaves_the_stored_state_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "guards.json"
    store = GuardStore(path)
    store.transact(lambda s: (decide(s, trigger("host02")).state, None))
    before = path.read_bytes()

    def broken(state: GuardState) -> tuple[GuardState, None]:
        raise RuntimeError("in the middle")

    with pytest.raises(RuntimeError):
        store.transact(broken)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_triggered_runs_name_their_playbooks() -> None:
    run = TriggeredRun("r", Mode.RUN, ("/x/port_conflict.yml",), ("h",), {}, ("fp",))
    assert run.names == ("port_conflict",)
