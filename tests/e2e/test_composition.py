"""Several faults on one host: one run diagnoses them all, fixes them in order, verifies each.

One lab of ``LAB_SIZE`` hosts serves the module. ``remedy run -i lab`` with no
playbook named runs every bundled playbook; for every pair of the lab's faults
that can exist together on one host (on hosts of up to ``FAULTS_PER_HOST``), it must
leave each faulty host answering ``/health`` 200, change nothing on a second
run, and leave a healthy host byte-identical. A correct fix is never undone
because of another fault on the host.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lab_faults import FAULTS

from tests.e2e.conftest import LabHandle
from tests.e2e.fleet import Fleet

LAB_SIZE = 10
#: Faults that cannot be on one host together: one port, one data dir (a lost or corrupt data
#: dir, with or without a bad newest backup), one config file.
EXCLUSIVE = [
    {"port_conflict_stale", "port_conflict_foreign"},
    {"data_corrupt", "data_lost"} | {name for name in FAULTS if name.startswith("backup_")},
    {name for name in FAULTS if name.startswith("config_")},
]
#: Faults a run must refuse to fix, by design: covered by their playbook's own tests.
REFUSED = {"backup_chain_broken", "crash_loop"}
#: Injection order: faults that start or stop the service go first, as they would happen
#: (service_stopped, last in FAULTS, is the service stopped after the others happened).
INJECTION = [name for name in FAULTS if name not in REFUSED]
FAULTS_PER_HOST = 6


def compatible(faults: tuple[str, ...] | list[str]) -> bool:
    return all(len(set(faults) & group) <= 1 for group in EXCLUSIVE)


PAIRS = [pair for pair in itertools.combinations(INJECTION, 2) if compatible(pair)]


def covering_hosts(pairs: list[tuple[str, ...]], size: int) -> list[tuple[str, ...]]:
    """Hosts of up to ``size`` compatible faults such that every pair is on one host together.

    Greedy: each host starts with the first pair not yet covered and takes the fault that
    covers the most uncovered pairs with those already on it, while compatible.
    """
    uncovered = set(pairs)
    hosts = []
    while uncovered:
        chosen = list(min(uncovered, key=pairs.index))
        while len(chosen) < size:
            gains = {f: sum(tuple(sorted((f, c), key=INJECTION.index)) in uncovered for c in chosen)
                     for f in INJECTION if f not in chosen and compatible([*chosen, f])}
            best = max(gains, key=lambda f: (gains[f], -INJECTION.index(f)), default=None)
            if best is None or gains[best] == 0:
                break
            chosen.append(best)
        chosen.sort(key=INJECTION.index)
        uncovered -= set(itertools.combinations(chosen, 2))
        hosts.append(tuple(chosen))
    return hosts


HOSTS = covering_hosts(PAIRS, FAULTS_PER_HOST)
FAULTY_PER_ROUND = LAB_SIZE - 1  # one host stays healthy in every round
ROUNDS = [HOSTS[i:i + FAULTY_PER_ROUND] for i in range(0, len(HOSTS), FAULTY_PER_ROUND)]


@pytest.fixture(scope="module")
def lab(shared_lab: Callable[[int], LabHandle], tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return Fleet(shared_lab(LAB_SIZE), tmp_path_factory.mktemp("composition"))


@pytest.fixture
def fleet(lab: Fleet) -> Iterator[Fleet]:
    yield lab
    lab.reset_touched()


def allow_stop_foreign(fleet: Fleet) -> Path:
    return fleet.extra_inventory("foreign", {h: {"allow_stop_foreign": True} for h in fleet.hosts})


def test_every_pair_of_faults_is_on_some_host_together() -> None:
    together = {pair for host in HOSTS for pair in itertools.combinations(host, 2)}
    assert set(PAIRS) <= together
    assert all(compatible(host) for host in HOSTS)
    assert any(len(host) >= 3 for host in HOSTS)


@pytest.mark.parametrize("number", range(len(ROUNDS)), ids=lambda n: f"round{n + 1}")
def test_run_with_no_playbook_fixes_every_fault_on_every_host(fleet: Fleet, number: int) -> None:
    faulty = dict(zip(fleet.hosts, ROUNDS[number], strict=False))
    healthy = next(h for h in fleet.hosts if h not in faulty)
    for host, faults in faulty.items():
        fleet.break_host(host, *faults)
    before = fleet.untouched_state(healthy)
    extra = (allow_stop_foreign(fleet),)

    run = fleet.remedy("run", "", inventories=extra)
    assert run.rc == 0, run.explain()
    for host, faults in faulty.items():
        assert run.status(host) == "changed", (host, faults, run.explain())
        states = {f["playbook"]: f["state"] for f in run.host(host)["faults"]}
        assert set(states.values()) <= {"fixed", "healthy"}, (host, faults, states)
        code, body = fleet.health(host)
        assert code == 200, (host, faults, body)
        assert run.host(host)["health"]["ok"], (host, run.host(host)["health"])
    assert run.status(healthy) == "healthy"
    assert fleet.untouched_state(healthy) == before, f"{healthy} was touched"

    again = fleet.remedy("run", "", inventories=extra)
    assert again.rc == 0, again.explain()
    assert {again.status(h) for h in fleet.hosts} == {"healthy"}, again.explain()
    assert not any(again.changed(h) for h in fleet.hosts)


def test_fault_order_follows_the_playbooks_declarations(fleet: Fleet) -> None:
    fleet.break_host("host01", "port_conflict_stale", "permission_config", "data_corrupt",
                     "cache_stale_redis", "config_missing_key", "dependency_module")
    plan = fleet.remedy("plan", "", "-l", "host01", inventories=(allow_stop_foreign(fleet),))
    assert plan.rc == 0, plan.explain()
    faults = [(f["playbook"], f["state"]) for f in plan.host("host01")["faults"]]
    assert faults == [("permission_error", "found"), ("config_error", "found"),
                      ("missing_dependency", "found"), ("port_conflict", "found"),
                      ("restore_from_backup", "found"), ("cache_flush", "waiting"),
                      ("service_down", "healthy")], faults  # the orphan is an instance of the service
    assert "1. permission_error: found; 2. config_error: found; 3. missing_dependency: found; " \
           "4. port_conflict: found; 5. restore_from_backup: found; 6. cache_flush: waits" \
           in " ".join(plan.stderr.split())  # wrapped


def test_a_correct_fix_stays_while_another_fault_keeps_the_service_unhealthy(fleet: Fleet) -> None:
    fleet.break_host("host02", "permission_config", "data_corrupt")
    run = fleet.remedy("run", "permission_error", "-l", "host02")
    assert run.rc == 0, run.explain()
    host = run.host("host02")
    assert run.status("host02") == "changed"
    assert [(f["playbook"], f["state"]) for f in host["faults"]] == [("permission_error", "fixed")]
    assert not [t for t in host["tasks"] if t["phase"] == "rollback" and t["status"] != "skipped"]
    config = fleet.lab.root("host02") / "etc/coze/config.yaml"
    assert oct(config.stat().st_mode & 0o777) == "0o640"  # the fix stayed
    health = host["health"]
    # the caches hold the good data, which the corrupt data file no longer matches
    assert health["status"] == 503 and health["failing"] == ["cache_dir", "data", "redis"], health
    assert any("bots.json: checksum mismatch" in r for r in health["reasons"]), health
    assert health["next"] == ["restore_from_backup", "cache_flush"], health
    verify = next(t for t in host["tasks"] if t["task"] == "permission_error:health")
    other = "other checks still fail (another fault): data: bots.json: checksum mismatch"
    assert other in verify["message"], verify
    assert "next: remedy run restore_from_backup cache_flush -l host02" in run.stderr


def test_cache_flush_alone_on_corrupt_data_is_blocked_by_restore(fleet: Fleet) -> None:
    fleet.break_host("host03", "data_corrupt", "cache_stale_files")
    before = fleet.untouched_state("host03")
    run = fleet.remedy("run", "cache_flush", "-l", "host03")
    assert run.rc == 2, run.explain()
    assert run.status("host03") == "blocked"
    fault = run.host("host03")["faults"][0]
    assert fault["state"] == "blocked" and fault["blocked_by"] == "restore_from_backup", fault
    assert "run restore_from_backup first" in fault["detail"]
    assert fleet.untouched_state("host03") == before


def test_cache_flush_waits_for_restore_and_is_then_healthy(fleet: Fleet) -> None:
    fleet.break_host("host04", "data_corrupt", "cache_stale_files")
    run = fleet.remedy("run", "cache_flush restore_from_backup", "-l", "host04")
    assert run.rc == 0, run.explain()
    states = [(f["playbook"], f["state"]) for f in run.host("host04")["faults"]]
    # fixed by its own flush, or already by the restore's (the restore flushes the caches it outdates)
    assert states[0] == ("restore_from_backup", "fixed") and states[1][0] == "cache_flush", states
    assert states[1][1] in ("fixed", "healthy"), states
    assert fleet.health("host04")[0] == 200


def test_the_port_moved_by_port_conflict_is_the_one_the_other_playbooks_check(fleet: Fleet) -> None:
    from lab_processes import free_port

    fleet.break_host("host05", "port_conflict_foreign", "permission_exec")
    fallback = free_port(h["service_port"] for h in fleet.lab.state()["hosts"].values())
    extra = fleet.extra_inventory("fallback", {"host05": {"fallback_port": fallback}})
    run = fleet.remedy("run", "", "-l", "host05", inventories=(extra,))
    assert run.rc == 0, run.explain()
    states = {f["playbook"]: f["state"] for f in run.host("host05")["faults"]}
    assert states["permission_error"] == "fixed" and states["port_conflict"] == "fixed", states
    assert fleet.health("host05", fallback)[0] == 200


def test_diagnose_names_each_fault_on_its_host_and_the_command_that_fixes_it(fleet: Fleet) -> None:
    one_each = {"host01": "port_conflict_stale", "host02": "permission_config",
                "host03": "cache_stale_redis", "host04": "data_corrupt", "host05": "pg_rows_lost"}
    for host, fault in one_each.items():
        fleet.break_host(host, fault)
    before = {h: fleet.untouched_state(h) for h in fleet.hosts}
    found = fleet.remedy("diagnose", "", "--detailed-exitcode")
    assert found.rc == 10, found.explain()
    faults = {(row["host"], row["playbook"]) for row in found.doc["diagnosis"] if row["diagnosis"] == "fault"}
    # permission_config leaves the service down: service_down finds it too (in a run it comes last and
    # finds the service started by permission_error's restart); port_conflict_stale's orphan runs
    assert faults == {("host01", "port_conflict"), ("host02", "permission_error"), ("host02", "service_down"),
                      ("host03", "cache_flush"), ("host04", "restore_from_backup"),
                      ("host04", "cache_flush"), ("host05", "restore_from_backup")}, faults
    blocked = next(r for r in found.doc["diagnosis"]
                   if r["host"] == "host04" and r["playbook"] == "cache_flush")
    assert blocked["blocked_by"] == "restore_from_backup"
    for host in set(fleet.hosts) - set(one_each):
        assert {r["diagnosis"] for r in found.doc["diagnosis"] if r["host"] == host} == {"healthy"}, host
    text = found.stderr
    assert "host04: 2 faults" in text and "cache_flush (runs after restore_from_backup)" in text
    inventory = f"-i {fleet.inventory}"
    assert f"remedy run restore_from_backup cache_flush {inventory}" in text and "-l host04" in text
    assert f"remedy run port_conflict {inventory}" in text and "-l host01" in text
    assert f"remedy run permission_error service_down {inventory}" in text and "-l host02" in text
    assert "healthy: " + ", ".join(h for h in fleet.hosts if h not in one_each) in " ".join(text.split())
    assert "RECAP" not in text and "ok:" not in text  # the diagnosis, not a check-mode run
    assert {h: fleet.untouched_state(h) for h in fleet.hosts} == before
