"""The fault lab (examples/lab): real hosts, real service, real Redis and PostgreSQL, real faults.

Every fault must show where an SRE would look (``/health``, the start
script's exit status, error.log), ``reset`` must heal it, the backups must
restore what the README says they restore, and ``down`` must leave nothing
running.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from lab import fetch
from lab_faults import CRASH_MESSAGE, CRASH_STARTS, FAULTS, PG_ROWS_KEPT
from lab_layout import PG_ROWS, manifest_text, write_data_version
from lab_processes import ProcessRecord, alive, descendants, find_processes, free_port, listening

from runner.connection import ConnectionParams, open_connection
from runner.load.inventory import load_inventory
from tests.support.waiting import wait_until

if TYPE_CHECKING:
    from tests.e2e.conftest import LabHandle
    from tests.e2e.fleet import Fleet

SERVICE = Path(__file__).resolve().parents[2] / "examples/lab/cozeservice.py"


def sh(command: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a shell command as a playbook's ``shell`` task would."""
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=120, **kwargs)


def reasons(body: Any) -> list[str]:
    return list(body.get("reasons", [])) if isinstance(body, dict) else []


def wait_healthy(lab: LabHandle, host: str) -> None:
    wait_until(lambda: lab.health(host)[0] == 200, timeout=15, what=f"{host} /health 200")


def group_vars(lab: LabHandle) -> dict[str, Any]:
    return load_inventory([lab.dir / "inventory.ini"]).host_vars(lab.hosts[0])


# --- up ----------------------------------------------------------------------------------


def test_every_host_answers_health_200_over_loopback(lab: LabHandle) -> None:
    assert lab.hosts == ["host01", "host02", "host03"]
    for host in lab.hosts:
        code, body = lab.health(host)
        assert code == 200, body
        assert body["status"] == "ok" and body["instance"] == host
        pid_file = lab.root(host) / "run/coze/coze.pid"
        assert body["pid"] == int(pid_file.read_text())


def test_status_reports_every_host_and_server(lab: LabHandle) -> None:
    status = json.loads(lab.cli("status", "--json").stdout)
    assert [row["health"] for row in status["hosts"]] == [200, 200, 200]
    assert all(row["sshd"] and row["faults"] == [] for row in status["hosts"])
    assert status["redis"]["running"] and status["postgres"]["running"]
    table = lab.cli("status").stdout
    assert "host03" in table and "ssh port" in table


def test_services_run_as_the_unprivileged_coze_user(lab: LabHandle) -> None:
    for host in lab.hosts:
        pid = lab.health(host)[1]["pid"]
        uid = next(
            line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Uid:")
        )
        assert uid.split()[1] != "0"


def test_redis_really_answers_and_holds_the_warm_cache(lab: LabHandle) -> None:
    port = lab.state()["redis"]["port"]
    assert sh(f"redis-cli -h 127.0.0.1 -p {port} ping").stdout.strip() == "PONG"
    db = lab.host("host01")["redis_db"]
    keys = sh(f"redis-cli -h 127.0.0.1 -p {port} -n {db} --scan --pattern 'coze:cache:*'").stdout.split()
    data_dir = lab.root("host01") / "var/lib/coze/data"
    files = {p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*") if p.is_file()}
    assert {key.removeprefix("coze:cache:") for key in keys} == files - {"MANIFEST.sha256"}


def test_postgres_really_answers_over_tcp_and_its_socket(lab: LabHandle) -> None:
    pg = lab.state()["postgres"]
    psql = Path(pg["bin_dir"]) / "psql"
    for host_arg in ("127.0.0.1", pg["socket_dir"]):
        query = "SELECT count(*) FROM host01.conversations"
        done = sh(f"{psql} -h {host_arg} -p {pg['port']} -U coze -d coze -Atc '{query}'")
        assert done.returncode == 0, done.stderr
        assert int(done.stdout) == PG_ROWS


def test_inventory_ini_and_yaml_agree_and_name_every_variable(lab: LabHandle) -> None:
    ini = load_inventory([lab.dir / "inventory.ini"])
    yml = load_inventory([lab.dir / "inventory.yml"])
    assert list(ini.hosts) == list(yml.hosts) == lab.hosts
    for host in lab.hosts:
        variables = ini.host_vars(host)
        assert variables == yml.host_vars(host)
        assert variables["ansible_host"] == "127.0.0.1"
        assert variables["ansible_port"] == lab.host(host)["ssh_port"]
        assert variables["coze_port"] == lab.host(host)["service_port"]
        assert variables["coze_config_mode"] == "0640"
        for key in ("coze_config", "coze_data_dir", "coze_cache_dir", "coze_log_dir", "coze_pid_file",
                    "coze_service_start", "coze_backup_dir", "pg_socket_dir", "remedy_known_hosts",
                    "ansible_ssh_private_key_file"):  # fmt: skip
            assert Path(variables[key]).exists(), key
        for key in ("redis_port", "redis_db", "pg_port", "pg_database", "pg_user", "pg_schema"):
            assert variables[key], key


def test_every_host_is_reachable_over_ssh_with_the_inventory(lab: LabHandle) -> None:
    inventory = load_inventory([lab.dir / "inventory.ini"])
    for host in lab.hosts:
        variables = inventory.host_vars(host)
        params = ConnectionParams(
            name=host,
            address=variables["ansible_host"],
            port=variables["ansible_port"],
            user=variables["ansible_user"],
            key_file=variables["ansible_ssh_private_key_file"],
            known_hosts=variables["remedy_known_hosts"],
            ssh_config=os.devnull,
        )
        conn = open_connection(params)
        try:
            result = conn.run(f"cat {variables['coze_pid_file']}")
            packages = conn.run("dpkg-query -W -f '${Package} ${Version}\\n' 'coze-lab-*'")
        finally:
            conn.close()
        assert result.rc == 0
        assert int(result.stdout) == lab.health(host)[1]["pid"]
        # each host has its own package database under its root (lab_packages): the machine's has none
        assert packages.stdout.splitlines() == ["coze-lab-libs 1.0", "coze-lab-tools 1.0"], packages
        assert (lab.root(host) / "usr/bin/cozectl").exists()
    machine = subprocess.run(["dpkg-query", "-W", "coze-lab-tools"], capture_output=True, text=True,
                             env={"PATH": os.environ["PATH"]}, check=False)
    assert machine.returncode != 0, machine.stdout


def test_remedy_runs_a_playbook_on_the_lab_and_fails_only_the_unhealthy_host(
    lab: LabHandle, broken: Callable[[str, str], None], tmp_path: Path
) -> None:
    playbook = tmp_path / "health.yml"
    playbook.write_text(
        "- name: lab health\n"
        "  hosts: coze\n"
        "  tasks:\n"
        "    - name: read the pid file\n"
        "      command: cat {{ coze_pid_file }}\n"
        "    - name: health\n"
        "      uri:\n"
        '        url: "{{ coze_health_url }}"\n'
    )
    remedy = [sys.executable, "-m", "runner", "run", str(playbook), "-i", str(lab.dir / "inventory.ini")]
    healthy = subprocess.run(remedy, capture_output=True, text=True, timeout=300)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr

    broken("host02", "cache_stale_files")
    unhealthy = subprocess.run([*remedy, "--format", "json"], capture_output=True, text=True, timeout=300)
    assert unhealthy.returncode == 2, unhealthy.stdout + unhealthy.stderr
    assert "host02" in unhealthy.stdout


# --- faults ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """What a fault looks like from outside."""

    code: int | None  # /health status; None = nothing listens on the service port
    reason: str = ""  # a substring of one of /health's reasons
    restart: int = 0  # exit status of coze-stop; coze-start (via sh, as over SSH)
    error_log: str = ""  # a substring of error.log after the restart attempt
    restart_heals: bool = False  # the restart is the fix: /health answers 200 afterwards


EXPECT = {
    "port_conflict_stale": Expect(503, "pid_file: ", 3, "address already in use: port"),
    "port_conflict_foreign": Expect(404, "", 3, "address already in use: port"),
    "permission_config": Expect(None, "", 2, "Permission denied"),
    "permission_logdir": Expect(503, "log_dir: ", 4),
    "permission_datadir": Expect(503, "data: cannot read"),
    "permission_exec": Expect(None, "", 126),
    "cache_stale_redis": Expect(503, "redis: coze:cache:workflows.json: stale"),
    "cache_stale_files": Expect(503, "cache_dir: bots.json: stale"),
    "data_corrupt": Expect(503, "data: bots.json: checksum mismatch"),
    "data_lost": Expect(503, "data: bots.json: missing"),
    "backup_newest_corrupt": Expect(503, "data: bots.json: missing"),
    "backup_newest_checksummed_truncated": Expect(503, "data: bots.json: missing"),
    "backup_newest_manifest_mismatch": Expect(503, "data: bots.json: missing"),
    "backup_newest_tar_slip": Expect(503, "data: bots.json: missing"),
    "backup_newest_escaping_link": Expect(503, "data: bots.json: missing"),
    "backup_chain_broken": Expect(503, "data: bots.json: missing"),
    "pg_rows_lost": Expect(503, f"postgres: {PG_ROWS - PG_ROWS_KEPT} of {PG_ROWS} ids"),
    "config_syntax": Expect(None, "", 2, "line 7, column 11: invalid YAML: mapping values are not allowed"),
    "config_invalid_value": Expect(503, "config: config ", 2, "port: expected an integer 1-65535, got "),
    "config_missing_key": Expect(None, "", 2, "data_dir: missing"),
    "dependency_command": Expect(None, "", 127, "coze-start: cozectl: command not found"),
    "dependency_module": Expect(None, "", 5, "ModuleNotFoundError: No module named 'coze_lab_plugin'"),
    "service_stopped": Expect(None, restart_heals=True),
    "crash_loop": Expect(None, "", 0, f"fatal: {CRASH_MESSAGE}"),  # it starts, then crashes again
}


def test_every_fault_has_an_expectation() -> None:
    assert set(EXPECT) == set(FAULTS)


def _matches(expect: Expect, code: int | None, body: Any) -> bool:
    if code != expect.code:
        return False
    return not expect.reason or any(expect.reason in reason for reason in reasons(body))


@pytest.mark.parametrize("fault", list(EXPECT))
def test_fault_shows_in_health_survives_a_restart_and_reset_heals_it(
    lab: LabHandle, broken: Callable[[str, str], None], fault: str
) -> None:
    expect, host, root = EXPECT[fault], "host02", lab.root("host02")
    broken(host, fault)
    wait_until(lambda: _matches(expect, *lab.health(host)), timeout=15, what=f"{fault} in /health")
    assert lab.host(host)["faults"] == [fault]
    for other in ("host01", "host03"):
        assert lab.health(other)[0] == 200, f"{fault} leaked into {other}"

    assert sh(str(root / "bin/coze-stop")).returncode == 0
    started = sh(str(root / "bin/coze-start"))
    assert started.returncode == expect.restart, started.stderr
    if expect.error_log:
        assert expect.error_log in (root / "var/log/coze/error.log").read_text()
    if expect.restart_heals:
        assert lab.health(host)[0] == 200
    elif expect.restart == 0:  # the service starts, and still reports the fault
        wait_until(lambda: _matches(expect, *lab.health(host)), timeout=15, what=f"{fault} after restart")

    lab.cli("reset", host)
    code, body = lab.health(host)
    assert code == 200, body
    assert lab.host(host)["faults"] == []


def test_one_break_injects_several_faults_and_one_reset_heals_several_hosts(lab_fleet: Fleet) -> None:
    lab = lab_fleet.lab
    lab_fleet.break_host("host01", "permission_config", "cache_stale_redis")
    lab_fleet.break_host("host03", "port_conflict_foreign")
    status = json.loads(lab.cli("status", "--json").stdout)
    assert [row["faults"] for row in status["hosts"]] == [
        ["permission_config", "cache_stale_redis"], [], ["port_conflict_foreign"]], status
    assert [row["health"] for row in status["hosts"]] == [None, 200, 404], status

    lab.cli("reset", "host01", "host03")
    lab_fleet.touched.clear()  # healed: nothing left for the fixture to reset
    status = json.loads(lab.cli("status", "--json").stdout)
    assert [(row["health"], row["faults"]) for row in status["hosts"]] == [(200, [])] * 3, status
    for host in ("host01", "host03"):
        code, body = lab.health(host)
        assert code == 200 and body["instance"] == host, body
    assert not [r for r in lab.state()["processes"] if r["role"] == "foreign"]


def test_the_start_record_tells_clean_stops_from_crashes(
    lab: LabHandle, broken: Callable[[str, str], None]
) -> None:
    record = lab.root("host03") / "run/coze/coze.starts"
    error_log = lab.root("host03") / "var/log/coze/error.log"
    broken("host03", "service_stopped")
    assert [line.split()[1] for line in record.read_text().splitlines()] == ["start", "stop"]
    broken("host03", "crash_loop")
    events = [line.split()[1] for line in record.read_text().splitlines()]
    assert events == ["start", "stop", *["start"] * CRASH_STARTS], "a crash records no stop"
    assert error_log.read_text().count(f"fatal: {CRASH_MESSAGE}") == CRASH_STARTS
    assert lab.health("host03")[0] is None, "nothing answers: the last start crashed too"


def test_port_conflict_stale_is_the_same_program_without_its_pid_file(
    lab: LabHandle, broken: Callable[[str, str], None]
) -> None:
    broken("host03", "port_conflict_stale")
    stale = [r for r in lab.state()["processes"] if r["role"] == "stale-service"]
    assert len(stale) == 1
    argv = Path(f"/proc/{stale[0]['pid']}/cmdline").read_bytes().split(b"\0")
    assert argv[1].endswith(b"cozeservice.py")
    pid_file = lab.root("host03") / "run/coze/coze.pid"
    assert int(pid_file.read_text()) != stale[0]["pid"]
    assert lab.health("host03")[1]["pid"] == stale[0]["pid"]


def test_port_conflict_foreign_holder_is_another_program(
    lab: LabHandle, broken: Callable[[str, str], None]
) -> None:
    broken("host03", "port_conflict_foreign")
    foreign = [r for r in lab.state()["processes"] if r["role"] == "foreign"]
    assert len(foreign) == 1
    assert b"http.server" in Path(f"/proc/{foreign[0]['pid']}/cmdline").read_bytes()
    port = lab.host("host03")["service_port"]
    assert f":{port}" in sh(f"ss -ltnpH 'sport = :{port}'").stdout


def test_data_corrupt_keeps_size_and_mtime_and_fails_sha256sum(
    lab: LabHandle, broken: Callable[[str, str], None]
) -> None:
    data = lab.root("host03") / "var/lib/coze/data"
    before = (data / "bots.json").stat()
    broken("host03", "data_corrupt")
    after = (data / "bots.json").stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    check = sh("sha256sum -c --quiet MANIFEST.sha256", cwd=data)
    assert check.returncode != 0 and "bots.json: FAILED" in check.stdout


# --- backups: the layout the restore playbook relies on ----------------------------------


def _verified(archive: Path) -> bool:
    return sh(f"sha256sum -c --status {archive.name}.sha256", cwd=archive.parent).returncode == 0


def _flush_caches(lab: LabHandle, host: str, variables: dict[str, Any]) -> None:
    for entry in Path(variables["coze_cache_dir"]).iterdir():
        sh(f"rm -rf -- {entry}")
    port, db = variables["redis_port"], variables["redis_db"]
    keys = sh(f"redis-cli -p {port} -n {db} --scan --pattern 'coze:cache:*'").stdout.split()
    if keys:
        sh(f"redis-cli -p {port} -n {db} DEL {' '.join(keys)}")


def test_newest_valid_full_backup_restores_after_backup_newest_corrupt(
    lab: LabHandle, broken: Callable[[str, str], None]
) -> None:
    host = "host01"
    variables = load_inventory([lab.dir / "inventory.ini"]).host_vars(host)
    broken(host, "backup_newest_corrupt")
    archives = sorted(Path(variables["coze_full_backup_dir"]).glob("backup-*.tar.gz"))
    assert len(archives) >= 3
    valid = [archive for archive in archives if _verified(archive)]
    assert valid == archives[:-1], "only the newest archive is corrupt"

    data_dir = Path(variables["coze_data_dir"])
    staging = data_dir.with_name("data.restore")
    staging.mkdir()
    assert sh(f"tar -xzf {valid[-1]} -C {staging}").returncode == 0
    assert sh("sha256sum -c --quiet MANIFEST.sha256", cwd=staging).returncode == 0
    data_dir.rename(data_dir.with_name("data.broken"))
    staging.rename(data_dir)
    assert data_dir.stat().st_uid != 0, "the archive keeps the service user as owner"

    wait_until(
        lambda: any("stale" in r for r in reasons(lab.health(host)[1])), timeout=15, what="stale caches"
    )
    _flush_caches(lab, host, variables)
    wait_healthy(lab, host)


def test_incremental_chain_restores_exactly_the_current_data(lab: LabHandle, tmp_path: Path) -> None:
    variables = load_inventory([lab.dir / "inventory.ini"]).host_vars("host02")
    chain = sorted(Path(variables["coze_incremental_dir"]).glob("data-*.level*.tar.gz"))
    assert [p.name.rsplit(".", 3)[1] for p in chain] == ["level0", "level1", "level2"]
    assert all(_verified(archive) for archive in chain)
    assert Path(variables["coze_snar"]).is_file()
    members = sh(f"tar -tzf {chain[-1]}").stdout.split()
    assert "./bots.json" not in members, "level 2 holds only what changed since level 1"

    for archive in chain:
        done = sh(f"tar --listed-incremental=/dev/null -xzf {archive} -C {tmp_path}")
        assert done.returncode == 0, done.stderr
    live = Path(variables["coze_data_dir"])

    def tree(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    assert tree(tmp_path) == tree(live)
    assert not (tmp_path / "plugins/weather-legacy.json").exists(), "deleted in level 2"


def test_pg_dump_restores_the_lost_rows(lab: LabHandle, broken: Callable[[str, str], None]) -> None:
    host = "host03"
    variables = load_inventory([lab.dir / "inventory.ini"]).host_vars(host)
    broken(host, "pg_rows_lost")
    psql = f"{variables['pg_bin_dir']}/psql -h 127.0.0.1 -p {variables['pg_port']} -U coze -d coze -At"
    count = f"{psql} -c 'SELECT count(*) FROM {variables['pg_table']}'"
    assert int(sh(count).stdout) == PG_ROWS_KEPT

    dumps = sorted(Path(variables["coze_pg_backup_dir"]).glob("coze-*.dump"))
    assert dumps and _verified(dumps[-1])
    restore = sh(
        f"{variables['pg_bin_dir']}/pg_restore -h 127.0.0.1 -p {variables['pg_port']} -U coze -d coze "
        f"--clean --if-exists {dumps[-1]}"
    )
    assert restore.returncode == 0, restore.stderr
    assert int(sh(count).stdout) == PG_ROWS
    wait_healthy(lab, host)


# --- down --------------------------------------------------------------------------------


def test_down_stops_every_process_the_lab_started(make_lab: Callable[[], LabHandle]) -> None:
    handle = make_lab()
    try:
        handle.cli("up", "1")
        handle.cli("break", "host01", "port_conflict_stale")
        handle.cli("break", "host01", "port_conflict_foreign")
        state = handle.state()
        records = [ProcessRecord.from_json(r) for r in state["processes"]]
        assert {r.role for r in records} >= {"sshd", "redis", "postgres", "stale-service", "foreign"}
        backends = [pid for r in records if r.role == "postgres" for pid in descendants(r.pid)]
        assert backends, "the postmaster has its helper processes"
        ports = [state["redis"]["port"], state["postgres"]["port"]]
        ports += [p for h in state["hosts"].values() for p in (h["ssh_port"], h["service_port"])]
    finally:
        down = handle.cli("down", check=False)
    assert down.returncode == 0, down.stderr
    assert not [r.describe() for r in records if alive(r)]
    assert not [pid for pid in backends if _not_zombie(pid)]
    assert not [port for port in ports if listening(port)]
    assert not find_processes(lambda argv: any(str(handle.dir) in arg for arg in argv))
    after = handle.state()
    assert after["status"] == "down" and after["processes"] == []
    assert (handle.dir / "hosts/host01/var/lib/coze/data/bots.json").exists(), "down removes no data"


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# --- the service on its own --------------------------------------------------------------


def _config(tmp_path: Path, **overrides: Any) -> Path:
    for name in ("data", "logs", "cache", "run"):
        (tmp_path / name).mkdir(exist_ok=True)
    write_data_version(tmp_path / "data", "solo", 3)
    values = {
        "instance": "solo",
        "host": "127.0.0.1",
        "port": overrides.pop("port", 0) or free_port(),
        "data_dir": str(tmp_path / "data"),
        "log_dir": str(tmp_path / "logs"),
        "pid_file": str(tmp_path / "run/coze.pid"),
        "cache_dir": str(tmp_path / "cache"),
        **overrides,
    }
    config = tmp_path / "config.yaml"
    config.write_text("".join(f"{key}: {json.dumps(value)}\n" for key, value in values.items()))
    return config


def _service(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(SERVICE), "--config", str(config), *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_service_refuses_a_bad_config_with_exit_2_and_an_error_log_line(tmp_path: Path) -> None:
    config = _config(tmp_path, port="eighty", colour="blue")
    done = _service(config)
    assert done.returncode == 2
    error_log = (tmp_path / "logs/error.log").read_text()
    assert "port: expected an integer 1-65535, got 'eighty'" in error_log
    assert "colour: unknown key" in error_log
    assert not (tmp_path / "run/coze.pid").exists()


def test_service_reports_a_taken_port_with_exit_3(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = _service(_config(tmp_path, port=port), "--daemon")
    assert done.returncode == 3
    assert f"address already in use: port {port}" in (tmp_path / "logs/error.log").read_text()
    assert not (tmp_path / "run/coze.pid").exists()


def test_service_health_serves_data_through_its_cache_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    config = _config(tmp_path)
    port = int(config.read_text().split("port: ")[1].split()[0])
    proc = subprocess.Popen([sys.executable, str(SERVICE), "--config", str(config)])
    try:
        wait_until(lambda: fetch(port)[0] == 200, timeout=15, what="solo service healthy")
        assert fetch(port, "/data/bots.json")[0] == 200
        assert (tmp_path / "cache/bots.json").read_bytes() == (tmp_path / "data/bots.json").read_bytes()
        (tmp_path / "cache/bots.json").write_text("stale\n")
        code, body = fetch(port)
        assert code == 503 and "cache_dir: bots.json: stale (differs from the data file)" in body["reasons"]
        assert fetch(port, "/data/../config.yaml")[0] in (400, 404)
        assert int((tmp_path / "run/coze.pid").read_text()) == proc.pid
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (tmp_path / "run/coze.pid").exists()
    assert "stopped" in (tmp_path / "logs/app.log").read_text()


def test_manifest_text_is_sha256sum_format(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"a\n")
    (tmp_path / "MANIFEST.sha256").write_text(manifest_text({"a.txt": b"a\n"}))
    assert sh("sha256sum -c MANIFEST.sha256", cwd=tmp_path).stdout.strip() == "a.txt: OK"
