"""The four bundled fault playbooks on a 10-host lab: break, plan, fix, verify, roll back.

One lab (``LAB_SIZE`` real sshd hosts, Redis, PostgreSQL) serves every test
here; each test breaks some hosts and the ``fleet`` fixture resets them
afterwards. For each playbook one run covers every fault variant it fixes,
on different hosts, beside healthy hosts and a host with an unrelated fault:

* ``remedy plan -o plan.json`` predicts changes on exactly the faulty hosts;
* ``remedy run --compare-plan plan.json`` fixes them (exit 0), and every
  host x task changed exactly what the plan predicted (checked by remedy
  and again here from the two JSON documents);
* every faulty host answers ``/health`` 200; the other hosts are untouched
  (files with their mtimes, the service process, Redis keys, PostgreSQL rows);
* a second run changes nothing, and a plan of the healthy fleet predicts nothing.

A forced verification failure (``coze_health_path`` pointing at a missing
endpoint) makes each playbook roll back, leaving the host's files as they
were, byte for byte (logs and the pid file aside: the service restarts).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import socketserver
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lab_processes import free_port

from runner.load.inputs import bundled_playbooks
from runner.load.playbook import load_playbook
from runner.modules import MODULES
from tests.e2e.conftest import LabHandle
from tests.e2e.fleet import RUNTIME, Fleet, Outcome

LAB_SIZE = 10
FORCE_FAILURE = "coze_health_path=/no-such-endpoint"


PLAYBOOKS = ("port_conflict", "permission_error", "cache_flush", "restore_from_backup", "config_error",
             "missing_dependency", "service_down")


# --- the playbooks as documents (no lab needed) ---------------------------------------------


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_the_header_documents_every_variable_and_every_section(name: str) -> None:
    book = load_playbook(bundled_playbooks()[name])
    for play in book.plays:
        undocumented = [k for k in play.vars if not re.search(rf"^\s+{re.escape(k)}\s", book.header, re.M)]
        assert not undocumented, f"{name}: variables missing from the header: {undocumented}"
        for section in ("diagnose", "tasks", "verify", "rollback"):
            assert play.section(section), f"{name} has no {section}"
    for word in ("Guide:", "Symptoms", "Diagnosis", "Verify", "Rollback", "Variables", "May change",
                 "Assumptions"):
        assert word in book.header, f"{name}: the header does not say {word}"


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_diagnose_and_verify_only_read(name: str) -> None:
    """Every diagnose/verify task is a read-only module, or a command that declares it changes nothing.

    A verify task that requires the play's health check runs only once the fix is verified: it may
    write (config_error keeps the verified config as a known good copy).
    """
    book = load_playbook(bundled_playbooks()[name])
    for play in book.plays:
        for section in ("diagnose", "verify"):
            for task in play.section(section):
                if section == "verify" and "health" in (task.requires or ()):
                    continue
                if task.module in ("shell", "command"):
                    assert task.changed_when is not None, f"{name} {section}: {task.label}"
                else:
                    module = MODULES[task.module]()
                    assert module.read_only or module.reads_only(task.args), f"{name} {section}: {task.label}"


@pytest.fixture(scope="module")
def lab10(shared_lab: Callable[[int], LabHandle], tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    """The session's lab of LAB_SIZE hosts (shared with the other modules of that size)."""
    return Fleet(shared_lab(LAB_SIZE), tmp_path_factory.mktemp("playbooks"))


@pytest.fixture
def fleet(lab10: Fleet) -> Iterator[Fleet]:
    """The shared lab; every host a test broke is reset afterwards."""
    yield lab10
    lab10.reset_touched()


def assert_plan_equals_run(plan: Outcome, run: Outcome) -> None:
    """Every host x task of the tasks and handlers changed exactly as planned."""
    planned = {(h["host"], t["task"]): t.get("predicted") for h in plan.doc["hosts"] for t in h["tasks"]
               if t.get("phase") in ("tasks", "handlers")}
    mismatches = []
    for host in run.doc["hosts"]:
        for task in host["tasks"]:
            key = (host["host"], task["task"])
            if task.get("phase") not in ("tasks", "handlers"):
                continue
            assert planned.get(key) != "unknown", f"{key}: a bundled playbook must predict exactly"
            if (planned.get(key) == "change") != bool(task.get("changed")):
                mismatches.append(f"{key}: planned {planned.get(key)}, changed={task.get('changed')}")
    assert not mismatches, "\n".join(mismatches)
    assert "changed exactly what the saved plan predicted" in run.stderr, run.stderr[-2000:]


def check_fleet_run(fleet: Fleet, playbook: str, faulty: dict[str, list[str]],
                    inventories: tuple[Path, ...] = (), health_ports: dict[str, int] | None = None) -> None:
    """plan -> run -> health -> untouched -> second run -> plan, on the whole lab."""
    others = [h for h in fleet.hosts if h not in faulty]
    before = {h: fleet.untouched_state(h) for h in others}
    plan_file = fleet.work / f"{playbook}.plan.json"
    plan = fleet.remedy("plan", playbook, "-o", str(plan_file), inventories=inventories)
    assert plan.rc == 0, plan.explain()
    for host, tasks in faulty.items():
        assert plan.status(host) == "changed", (host, plan.explain())
        assert sorted(plan.predicted_changes(host)) == sorted(f"{playbook}:{t}" for t in tasks), host
    for host in others:
        assert plan.status(host) == "healthy", (host, plan.host(host))
        assert plan.predicted_changes(host) == []

    run = fleet.remedy("run", playbook, "--compare-plan", str(plan_file), inventories=inventories)
    assert run.rc == 0, run.explain()
    assert_plan_equals_run(plan, run)
    for host in faulty:
        assert run.status(host) == "changed", (host, run.explain())
        code, body = fleet.health(host, (health_ports or {}).get(host))
        assert code == 200, (host, body)
    for host in others:
        assert run.status(host) == "healthy", host
        assert fleet.untouched_state(host) == before[host], f"{host} was touched"

    again = fleet.remedy("run", playbook, inventories=inventories)
    assert again.rc == 0, again.explain()
    assert {again.status(h) for h in fleet.hosts} == {"healthy"}, again.explain()
    assert not any(again.changed(h) for h in fleet.hosts)
    replan = fleet.remedy("plan", playbook, inventories=inventories)
    assert replan.rc == 0 and not any(replan.predicted_changes(h) for h in fleet.hosts)


# --- one run per playbook across the fleet ----------------------------------------------


def test_port_conflict_fleet(fleet: Fleet) -> None:
    """Stale instances are stopped; a foreign program is stopped (allowed) or avoided (fallback port)."""
    fleet.break_host("host01", "port_conflict_stale")
    fleet.break_host("host02", "port_conflict_foreign")
    fleet.break_host("host03", "port_conflict_foreign")
    fleet.break_host("host04", "port_conflict_stale")
    fleet.break_host("host05", "cache_stale_files")  # another fault: not this playbook's business
    fallback = free_port(h["service_port"] for h in fleet.lab.state()["hosts"].values())
    extra = fleet.extra_inventory("port", {"host02": {"fallback_port": fallback},
                                           "host03": {"allow_stop_foreign": True}})
    check_fleet_run(
        fleet, "port_conflict",
        {"host01": ["stop_stale", "start"], "host02": ["use_fallback", "start"],
         "host03": ["stop_foreign", "start"], "host04": ["stop_stale", "start"]},
        inventories=(extra,), health_ports={"host02": fallback},
    )
    assert f"port: {fallback}" in (fleet.lab.root("host02") / "etc/coze/config.yaml").read_text()


def test_permission_error_fleet(fleet: Fleet) -> None:
    for host, faults in {"host01": ["permission_config"], "host02": ["permission_logdir"],
                         "host03": ["permission_datadir"], "host04": ["permission_exec"],
                         "host06": ["permission_config", "permission_exec", "permission_datadir"],
                         "host07": ["cache_stale_redis"]}.items():
        fleet.break_host(host, *faults)
    fixed = ["fix", "restart"]
    check_fleet_run(fleet, "permission_error", {h: fixed for h in ("host01", "host02", "host03",
                                                                   "host04", "host06")})


def test_cache_flush_fleet(fleet: Fleet) -> None:
    fleet.break_host("host02", "cache_stale_redis")
    fleet.break_host("host03", "cache_stale_files")
    fleet.break_host("host05", "cache_stale_files", "cache_stale_redis")
    fleet.break_host("host08", "pg_rows_lost")  # not a cache fault
    check_fleet_run(fleet, "cache_flush", {"host02": ["flush_redis"], "host03": ["flush_files"],
                                           "host05": ["flush_redis", "flush_files"]})
    assert fleet.redis_keys("host03"), "a healthy Redis cache is not flushed"


def test_restore_from_backup_fleet(fleet: Fleet) -> None:
    """Full backup, incremental chain past a truncated newest backup, PostgreSQL, and both at once."""
    fleet.break_host("host01", "data_lost")
    fleet.break_host("host03", "data_corrupt")
    fleet.break_host("host04", "backup_newest_corrupt")
    fleet.break_host("host06", "pg_rows_lost")
    fleet.break_host("host07", "data_corrupt", "pg_rows_lost")
    fleet.break_host("host10", "cache_stale_redis")  # not a data fault
    flush = ["flush_redis", "flush_files", "start"]  # every restore flushes the caches
    files, pg = ["stage_files", "stop", "restore_files", *flush], ["stop", "restore_postgres", *flush]
    check_fleet_run(fleet, "restore_from_backup", {
        "host01": files, "host03": files, "host04": files, "host06": pg,
        "host07": ["stage_files", "stop", "restore_files", "restore_postgres", *flush]})


def test_a_truncated_newest_backup_is_skipped_with_a_message(fleet: Fleet) -> None:
    fleet.break_host("host05", "backup_newest_corrupt")
    plan = fleet.remedy("plan", "restore_from_backup", "-l", "host05")
    restore = next(t for t in plan.host("host05")["tasks"] if t["task"].endswith(":stage_files"))
    assert "incremental chain" in restore["message"], restore
    assert "skipped backup-" in restore["message"] and "does not match its .sha256" in restore["message"]


# --- variants ------------------------------------------------------------------------------


def test_port_conflict_without_ss_uses_proc(fleet: Fleet) -> None:
    """The /proc/net/tcp + /proc/*/fd fallback finds the same holders as ss."""
    fleet.break_host("host06", "port_conflict_stale")
    fleet.break_host("host07", "port_conflict_foreign")
    args = ("-e", "port_probe_method=proc", "-e", "allow_stop_foreign=true", "-l", "host06,host07,host08")
    plan_file = fleet.work / "proc.plan.json"
    plan = fleet.remedy("plan", "port_conflict", "-o", str(plan_file), *args)
    holders = {h: next(t for t in plan.host(h)["tasks"] if t["task"].endswith(":holder"))
               for h in ("host06", "host07")}
    assert "stale: pid" in holders["host06"]["message"] and "http.server" in holders["host07"]["message"]
    run = fleet.remedy("run", "port_conflict", "--compare-plan", str(plan_file), *args)
    assert run.rc == 0, run.explain()
    assert_plan_equals_run(plan, run)
    assert fleet.health("host06")[0] == fleet.health("host07")[0] == 200


def test_restore_to_a_point_in_time(fleet: Fleet) -> None:
    """restore_point picks the backup of the day before; the caches of newer data are flushed."""
    day_before = fleet.lab.state()["stamps"][1]
    args = ("-l", "host09", "-e", f"restore_point={day_before}", "-e", "force_restore=true",
            "-e", "restore_target=files")
    fleet.touched.append("host09")
    plan_file = fleet.work / "pit.plan.json"
    plan = fleet.remedy("plan", "restore_from_backup", "-o", str(plan_file), *args)
    assert sorted(plan.predicted_changes("host09")) == sorted(
        f"restore_from_backup:{t}"
        for t in ("stage_files", "stop", "restore_files", "flush_redis", "flush_files", "start"))
    run = fleet.remedy("run", "restore_from_backup", "--compare-plan", str(plan_file), *args)
    assert run.rc == 0, run.explain()
    assert_plan_equals_run(plan, run)
    assert fleet.health("host09")[0] == 200
    index = (fleet.lab.root("host09") / "var/lib/coze/data/conversations.idx").read_text().split()
    assert len(index) == 35  # data version 2 (the newest has 40)


class MemcachedStandIn(socketserver.ThreadingTCPServer):
    """Just enough of memcached's text protocol for the flush: stats, flush_all, quit."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _MemcachedHandler)
        self.items = 7
        self.commands: list[str] = []


class _MemcachedHandler(socketserver.StreamRequestHandler):
    server: MemcachedStandIn

    def handle(self) -> None:
        for raw in self.rfile:
            command = raw.decode().strip()
            self.server.commands.append(command)
            if command == "stats":
                self.wfile.write(f"STAT pid 1\r\nSTAT curr_items {self.server.items}\r\nEND\r\n".encode())
            elif command == "flush_all":
                self.server.items = 0
                self.wfile.write(b"OK\r\n")
            elif command == "quit":
                return


def test_cache_flush_also_flushes_memcached(fleet: Fleet) -> None:
    fleet.break_host("host06", "cache_stale_files")
    server = MemcachedStandIn()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        servers = [f"127.0.0.1:{server.server_address[1]}"]
        args = ("-l", "host06", "-e", json.dumps({"memcached_servers": servers}))
        plan_file = fleet.work / "memcached.plan.json"
        plan = fleet.remedy("plan", "cache_flush", "-o", str(plan_file), *args)
        assert sorted(plan.predicted_changes("host06")) == [
            "cache_flush:flush_files", "cache_flush:flush_memcached"]
        assert server.items == 7 and "flush_all" not in server.commands  # the plan only read its stats
        run = fleet.remedy("run", "cache_flush", "--compare-plan", str(plan_file), *args)
        assert run.rc == 0, run.explain()
        assert_plan_equals_run(plan, run)
        assert server.items == 0 and server.commands.count("flush_all") == 1
    finally:
        server.shutdown()
        server.server_close()


def test_permission_error_fixes_a_data_dir_with_every_kind_of_file_name(fleet: Fleet) -> None:
    """Names with a newline, a tab, spaces, quotes, a backslash, a leading dash, non-UTF-8 bytes."""
    fleet.break_host("host08", "permission_datadir")
    data = os.fsencode(fleet.lab.root("host08") / "var/lib/coze/data")
    names = [b"a\nb", b"tab\there", b" spaces ", b"q\"uo'te", b"back\\slash", b"-dash", b"bad\xff\xfe"]
    for name in names:
        with open(os.path.join(data, name), "wb") as handle:
            handle.write(b"x")
        os.chmod(os.path.join(data, name), 0o600)  # root's, like the rest of the broken tree
    plan = fleet.remedy("plan", "permission_error", "-l", "host08")
    assert plan.rc == 0 and plan.status("host08") == "changed", plan.explain()
    assert plan.predicted_changes("host08") == ["permission_error:fix", "permission_error:restart"]
    run = fleet.remedy("run", "permission_error", "-l", "host08")
    assert run.rc == 0, run.explain()
    assert run.status("host08") == "changed"
    coze = pwd.getpwnam("coze")
    for name in names:
        info = os.lstat(os.path.join(data, name))
        owner = (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode))
        assert owner == (coze.pw_uid, coze.pw_gid, 0o644), name
    assert fleet.health("host08")[0] == 200


def test_a_failed_canary_stops_a_bundled_playbook_before_any_other_host_is_touched(fleet: Fleet) -> None:
    """--serial 1,100% --max-fail-percentage 0: the first host fails its verification; no other runs."""
    hosts = ["host01", "host02", "host03"]
    for host in hosts:
        fleet.break_host(host, "permission_config")
    failing = fleet.extra_inventory("canary", {"host01": {"coze_health_path": "/no-such-endpoint"}})
    before = {h: fleet.untouched_state(h) for h in hosts[1:]}
    run = fleet.remedy("run", "permission_error", "-l", ",".join(hosts), "--serial", "1,100%",
                       "--max-fail-percentage", "0", inventories=(failing,))
    assert run.rc == 2, run.explain()
    assert run.status("host01") == "rolled_back", run.explain()
    assert "max_fail_percentage 0% exceeded in a batch of 1" in run.doc["aborted"]
    for host in hosts[1:]:
        assert run.status(host) == "not_run"
        assert {t["status"] for t in run.host(host)["tasks"]} == {"not_run"}
        assert fleet.untouched_state(host) == before[host], f"{host} was touched"


# --- a host that differs: a clear diagnosis, nothing changed ----------------------------------


def test_no_valid_backup_stops_before_the_service_is_touched(fleet: Fleet) -> None:
    fleet.break_host("host08", "data_lost")
    backups = fleet.lab.root("host08") / "var/backups/coze"
    for archive in [*backups.glob("full/*.tar.gz"), *backups.glob("incremental/*.tar.gz")]:
        archive.write_bytes(archive.read_bytes()[:100])  # every backup truncated
    before = fleet.untouched_state("host08")
    run = fleet.remedy("run", "restore_from_backup", "-l", "host08")
    assert run.rc == 2 and run.status("host08") == "failed", run.explain()
    choose = next(t for t in run.host("host08")["tasks"] if t["task"].endswith(":stage_files"))
    assert choose["status"] == "failed" and "no valid backup" in choose["message"], choose
    assert "does not match its .sha256" in choose["message"]
    assert not run.changed("host08")
    assert fleet.untouched_state("host08") == before  # the service was not even stopped


def test_unreachable_redis_is_a_failed_diagnosis_not_a_change(fleet: Fleet) -> None:
    fleet.break_host("host09", "cache_stale_files")
    before = fleet.untouched_state("host09")
    run = fleet.remedy("run", "cache_flush", "-l", "host09", "-e", f"redis_port={free_port()}")
    assert run.rc == 2 and run.status("host09") == "failed", run.explain()
    probe = next(t for t in run.host("host09")["tasks"] if t["task"].endswith(":redis_check"))
    assert "cannot reach Redis" in probe["message"], probe
    assert not run.changed("host09")
    assert fleet.untouched_state("host09") == before


def test_a_config_without_a_port_line_is_a_failed_diagnosis(fleet: Fleet) -> None:
    fleet.break_host("host10", "port_conflict_foreign")
    run = fleet.remedy("run", "port_conflict", "-l", "host10", "-e", "coze_port_regexp=^listen_port:")
    assert run.rc == 2 and run.status("host10") == "failed", run.explain()
    probe = next(t for t in run.host("host10")["tasks"] if t["task"].endswith(":configured_port"))
    assert "cannot read a port line" in probe["message"], probe
    assert not run.changed("host10")


# --- rollback ------------------------------------------------------------------------------


ROLLBACKS: dict[str, tuple[str, list[str], list[str]]] = {
    "port_conflict": ("host02", ["port_conflict_foreign"], []),
    "permission_error": ("host03", ["permission_datadir", "permission_exec"], []),
    "cache_flush": ("host04", ["cache_stale_redis", "cache_stale_files"], []),
    "restore_from_backup": ("host05", ["data_corrupt", "pg_rows_lost"], []),
}


@pytest.mark.parametrize("playbook", sorted(ROLLBACKS))
def test_failed_verification_rolls_back_byte_for_byte(fleet: Fleet, playbook: str) -> None:
    host, faults, extra = ROLLBACKS[playbook]
    fleet.break_host(host, *faults)
    if playbook == "port_conflict":  # a free fallback port of its own
        extra = ["-e", f"fallback_port={free_port()}"]
    before: dict[str, Any] = {"tree": fleet.tree(host, mtimes=False, skip=RUNTIME),
                              "redis": fleet.redis_keys(host), "postgres": fleet.pg_rows(host)}
    run = fleet.remedy("run", playbook, "-l", host, "-e", FORCE_FAILURE, *extra)
    assert run.rc == 2, run.explain()
    assert run.status(host) == "rolled_back", run.explain()
    rolled = [t for t in run.host(host)["tasks"] if t["phase"] == "rollback" and t["changed"]]
    assert rolled, "the rollback undid something"
    after = {"tree": fleet.tree(host, mtimes=False, skip=RUNTIME), "redis": fleet.redis_keys(host),
             "postgres": fleet.pg_rows(host)}
    assert after == before
