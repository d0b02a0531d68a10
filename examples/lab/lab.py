#!/usr/bin/env python3
"""lab: real SSH hosts on 127.0.0.1, each running a Coze-like service, and faults to inject.

    python3 examples/lab/lab.py [--dir DIR] up N          # N hosts, Redis, PostgreSQL, inventory
    python3 examples/lab/lab.py [--dir DIR] status [--json]
    python3 examples/lab/lab.py [--dir DIR] inventory [--format ini|yaml]
    python3 examples/lab/lab.py [--dir DIR] break HOST FAULT...  # faults injected in the order given
    python3 examples/lab/lab.py [--dir DIR] reset [HOST...]  # back to healthy (all hosts without HOST)
    python3 examples/lab/lab.py [--dir DIR] down          # stop everything the lab started
    python3 examples/lab/lab.py faults                    # the fault catalogue

The lab dir (``--dir``, else ``$REMEDY_LAB_DIR``, else ``./.lab``) holds its
state (``lab.json``: every process started, with pid and start time), the
inventories, the SSH client key and known_hosts, Redis and PostgreSQL, and
one root dir per host. ``Lab`` is the same as an API. Needs root (service
user, ownership faults, setpriv) and Linux. See README.md beside this file.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import http.client
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
try:
    import runner.testing  # noqa: F401
except ImportError:  # run from a checkout without remedy installed
    sys.path.insert(0, str(HERE.parents[1]))

import yaml  # noqa: E402
from lab_faults import FAULTS  # noqa: E402
from lab_layout import (  # noqa: E402
    PG_ROWS,
    STAMP,
    HostPaths,
    HostSpec,
    build_host,
    config_overrides,
    warm_caches,
    write_checksum,
)
from lab_packages import (  # noqa: E402
    COMMAND,
    PLUGIN,
    build_host_packages,
    build_repository,
    host_environment,
    repository,
    venv_dir,
)
from lab_processes import (  # noqa: E402
    LabError,
    ProcessRecord,
    alive,
    as_user,
    find_processes,
    free_port,
    keep,
    record,
    stop,
)
from lab_servers import (  # noqa: E402
    PG_DATABASE,
    PG_USER,
    Postgres,
    postgres_bin_dir,
    start_postgres,
    start_redis,
    stop_postgres,
    system_user,
)
from tabulate import tabulate  # noqa: E402

from runner.testing import SSHD_PATH, ClientKeys, Sshd  # noqa: E402

STATE = "lab.json"
SERVICE_USER = "coze"
INFRA = ("sshd", "redis", "postgres")
_SAFE_PATH = re.compile(r"[A-Za-z0-9._/+-]+")
_MANAGED = ("ssh", "hosts", "redis", "postgres", "foreign", "packages", "inventory.ini", "inventory.yml",
            STATE)


def fetch(port: int, path: str = "/health", *, timeout: float = 5.0) -> tuple[int | None, Any]:
    """GET ``http://127.0.0.1:port/path`` (never through a proxy): ``(status, JSON or text)``.

    The status is None when nothing answers; the body then says why.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    except OSError as exc:
        return None, f"no answer: {exc.strerror or exc}"
    finally:
        conn.close()
    try:
        return response.status, json.loads(body)
    except ValueError:
        return response.status, body.decode(errors="replace")


class Lab:
    """A lab in ``directory``: bring it up, inject faults, reset hosts, take it down."""

    def __init__(self, directory: Path | str) -> None:
        self.dir = Path(directory).absolute()
        self.state: dict[str, Any] = {}
        self._changing = threading.RLock()  # hosts are built and reset by concurrent threads
        with contextlib.suppress(FileNotFoundError):
            self.state = json.loads((self.dir / STATE).read_text())

    # --- state ---------------------------------------------------------------------------

    @property
    def hosts(self) -> list[str]:
        return sorted(self.state.get("hosts", {}))

    @property
    def inventory_path(self) -> Path:
        return self.dir / "inventory.ini"

    def save(self) -> None:
        with self._changing:
            temporary = self.dir / f".{STATE}.tmp"
            temporary.write_text(json.dumps(self.state, indent=2, sort_keys=True) + "\n")
            temporary.replace(self.dir / STATE)

    def host(self, name: str) -> dict[str, Any]:
        """The state of host ``name``. Raises ``LabError`` for an unknown host."""
        hosts = self.state.get("hosts", {})
        if name not in hosts:
            known = ", ".join(self.hosts) or "none"
            raise LabError(f"no host {name!r} in the lab in {self.dir} (hosts: {known})")
        host: dict[str, Any] = hosts[name]
        return host

    def paths(self, name: str) -> HostPaths:
        return HostPaths(Path(self.host(name)["root"]))

    def records(self) -> list[ProcessRecord]:
        return [ProcessRecord.from_json(item) for item in self.state.get("processes", [])]

    def remember(self, rec: ProcessRecord) -> None:
        with self._changing:
            self.state.setdefault("processes", []).append(rec.to_json())
            self.save()

    def forget(self, rec: ProcessRecord) -> None:
        self._drop({(rec.pid, rec.start)})

    def _drop(self, gone: set[tuple[int, int]]) -> None:
        """Remove the records of processes ``gone`` (pid, start time) from the state, and save it."""
        with self._changing:
            self.state["processes"] = [r.to_json() for r in self.records() if (r.pid, r.start) not in gone]
            self.save()

    def postgres(self) -> Postgres:
        info = self.state["postgres"]
        return Postgres(Path(info["bin_dir"]), Path(info["dir"]), info["port"])

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the lab's lock (one lab command at a time per lab dir)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / ".lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    # --- up ------------------------------------------------------------------------------

    def up(self, count: int) -> None:
        """Start ``count`` hosts with their services, Redis and PostgreSQL; write the inventory.

        On any failure everything started so far is stopped again.
        """
        if not 1 <= count <= 99:
            raise LabError(f"a lab has 1 to 99 hosts, not {count}")
        if self.state.get("status") in ("up", "starting"):
            raise LabError(f"a lab is already up in {self.dir}; run down first")
        _preflight(self.dir)
        self._prepare_dir()
        now = datetime.now(UTC).replace(microsecond=0)
        self.state = {
            "version": 1,
            "status": "starting",
            "created": now.isoformat(),
            "stamps": [(now - timedelta(days=days)).isoformat() for days in (2, 1, 0)],
            "processes": [],
            "sshd_dirs": [],
            "hosts": {},
        }
        self.save()
        try:
            self._bring_up(count)
        except BaseException:
            with contextlib.suppress(Exception):
                self.down()
            raise

    def _prepare_dir(self) -> None:
        if self.dir.exists():
            known = set(_MANAGED) | {".lock", ".gitignore", f".{STATE}.tmp"}
            strangers = [p.name for p in self.dir.iterdir() if p.name not in known]
            if strangers and not (self.dir / STATE).exists():
                raise LabError(f"{self.dir} is not empty and holds no lab ({', '.join(strangers[:3])})")
            for name in _MANAGED:
                path = self.dir / name
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)  # noqa: S103 - the service and postgres users must traverse it
        (self.dir / ".gitignore").write_text("# the remedy lab's state: never commit it\n*\n")

    def _bring_up(self, count: int) -> None:
        _ensure_user(SERVICE_USER)
        self.state["python"] = _service_python(SERVICE_USER)
        build_repository(self.dir)
        (self.dir / "hosts").mkdir()
        _check_reachable(self.dir / "hosts", SERVICE_USER)
        self._start_sshds(count)
        port, rec = start_redis(self.dir / "redis", databases=max(16, count + 1))
        self.state["redis"] = {"port": port, "dir": str(self.dir / "redis")}
        self.remember(rec)
        server, rec = start_postgres(self.dir / "postgres")
        self.state["postgres"] = {
            "port": server.port, "dir": str(server.directory), "bin_dir": str(server.bin_dir),
            "socket_dir": str(server.socket_dir), "data_dir": str(server.data_dir),
        }  # fmt: skip
        self.remember(rec)
        taken = {port, server.port, *(h["ssh_port"] for h in self.state["hosts"].values())}
        for index, name in enumerate(self.hosts, 1):
            service_port = free_port(taken)
            taken.add(service_port)
            self.host(name).update(
                service_port=service_port, redis_db=index, root=str(self.dir / "hosts" / name), faults=[]
            )
        self._each(self.hosts, self._build)
        self.inventory_path.write_text(self.inventory_ini())
        (self.dir / "inventory.yml").write_text(self.inventory_yaml())
        self.state["status"] = "up"
        self.save()

    def _start_sshds(self, count: int) -> None:
        keys_dir = self.dir / "ssh"
        keys_dir.mkdir(mode=0o700)
        keys = ClientKeys.create(keys_dir)
        width = max(2, len(str(count)))
        names = [f"host{index:0{width}d}" for index in range(1, count + 1)]
        # each host's sessions use its own package database (see lab_packages)
        servers = [Sshd(keys=keys, config="SetEnv " + " ".join(
            f"{key}={value}" for key, value in host_environment(self.dir / "hosts" / name).items()))
            for name in names]
        for server in servers:
            keep(server)
            self.state["sshd_dirs"].append(str(server.directory))
        self.save()
        with ThreadPoolExecutor(min(8, count)) as pool:
            futures = [pool.submit(server.start) for server in servers]
        failures = [f.exception() for f in futures if f.exception() is not None]
        for name, server, future in zip(names, servers, futures, strict=True):
            if future.exception() is None and server.pid is not None:
                self.state["hosts"][name] = {"ssh_port": server.port}
                self.remember(record(server.pid, "sshd", name))
        if failures:
            raise LabError(f"{len(failures)} of {count} sshd did not start: {failures[0]}")

    def _build(self, name: str) -> None:
        """(Re)create host ``name`` in its healthy state and start its service."""
        paths, spec = self.paths(name), self.spec(name)
        stamps = [datetime.fromisoformat(s) for s in self.state["stamps"]]
        build_host(paths, spec, stamps)
        build_host_packages(paths.root, self.dir, self.state["python"])
        self._create_table(name, paths, stamps[-1])
        warm_caches(paths, name, spec.redis_port, spec.redis_db)
        self.start_service(name)

    def spec(self, name: str) -> HostSpec:
        """What host ``name``'s service needs to know about its place in the lab."""
        host = self.host(name)
        return HostSpec(
            name, host["service_port"], self.state["redis"]["port"], host["redis_db"],
            self.state["postgres"]["port"], str(venv_dir(self.paths(name).root) / "bin/python"), SERVICE_USER,
        )  # fmt: skip

    def _create_table(self, name: str, paths: HostPaths, stamp: datetime) -> None:
        pg = self.postgres()
        pg.psql(  # name is the lab's own hostNN: safe as an identifier
            f"DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name};"  # noqa: S608
            f" CREATE TABLE {name}.conversations (id integer PRIMARY KEY, bot_id text NOT NULL,"
            " title text NOT NULL, created_at timestamptz NOT NULL);"
            f" INSERT INTO {name}.conversations SELECT g, 'bot-' || (1 + g % 3),"
            " 'conversation ' || g, timestamptz '2024-03-01 00:00:00+00' + g * interval '1 hour'"
            f" FROM generate_series(1, {PG_ROWS}) AS g;"
        )
        dump = paths.pg_dump(stamp.strftime(STAMP))
        done = subprocess.run(
            pg.client("pg_dump", "--format=custom", f"--schema={name}", f"--file={dump}"),
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise LabError(f"pg_dump of schema {name} failed: {done.stderr.strip()}")
        for path in (dump, write_checksum(dump)):
            os.utime(path, (stamp.timestamp(), stamp.timestamp()))

    # --- services ------------------------------------------------------------------------

    def start_service(self, name: str) -> ProcessRecord:
        """Run the host's ``bin/coze-start`` (as root, like a playbook would) and record the service."""
        paths = self.paths(name)
        done = subprocess.run(
            [str(paths.start)], capture_output=True, text=True, timeout=60, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if done.returncode != 0:
            raise LabError(f"{name}: {paths.start} exited {done.returncode}: {done.stderr.strip()}")
        rec = record(int(paths.pid_file.read_text().strip()), "service", name)
        self.remember(rec)
        return rec

    def stop_service(self, name: str) -> None:
        """Stop the host's service with ``bin/coze-stop``, then any instance of it still running."""
        paths = self.paths(name)
        if os.access(paths.stop, os.X_OK):
            subprocess.run([str(paths.stop)], capture_output=True, timeout=60, check=False)
        self._stop([r for r in self._host_processes(name) if r.role == "service"])

    def _host_processes(self, name: str) -> list[ProcessRecord]:
        """The host's recorded processes and every running instance of its service program."""
        recorded = [r for r in self.records() if r.host == name and r.role not in INFRA]
        program = str(self.paths(name).program)
        known = {r.pid for r in recorded}
        for pid in find_processes(lambda argv: program in argv):
            if pid not in known:
                with contextlib.suppress(LabError):
                    recorded.append(record(pid, "service", name))
        return recorded

    def _stop(self, records: list[ProcessRecord]) -> list[ProcessRecord]:
        survivors = stop(records)
        self._drop({(r.pid, r.start) for r in records} - {(r.pid, r.start) for r in survivors})
        return survivors

    def health(self, name: str) -> tuple[int | None, Any]:
        """``GET /health`` of host ``name``'s service port: ``(status or None, body)``."""
        return fetch(self.host(name)["service_port"])

    # --- faults --------------------------------------------------------------------------

    def break_host(self, name: str, fault: str) -> None:
        """Inject ``fault`` (a name from ``FAULTS``) into host ``name``."""
        self.host(name)
        if fault not in FAULTS:
            raise LabError(f"unknown fault {fault!r}; faults: {', '.join(FAULTS)}")
        FAULTS[fault].inject(self, name)
        self.host(name).setdefault("faults", []).append(fault)
        self.save()

    def reset(self, *names: str) -> None:
        """Put hosts ``names`` (every host if none) back into their healthy state, services running.

        The hosts are stopped and rebuilt concurrently; an unknown name changes nothing.
        """
        hosts = list(dict.fromkeys(names)) or self.hosts
        for host in hosts:
            self.host(host)
        self._each(hosts, self._reset_host)

    def _reset_host(self, name: str) -> None:
        survivors = self._stop(self._host_processes(name))
        if survivors:
            raise LabError(f"{name}: cannot stop {', '.join(r.describe() for r in survivors)}")
        self._build(name)
        with self._changing:
            self.host(name)["faults"] = []
            self.save()

    @staticmethod
    def _each(names: list[str], job: Callable[[str], None]) -> None:
        """``job(name)`` for every host name, at once (up to 8 threads); then the first failure, if any."""
        with ThreadPoolExecutor(max(1, min(8, len(names)))) as pool:
            futures = [pool.submit(job, name) for name in names]
        for future in futures:
            future.result()

    # --- down ----------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Stop every process the lab started (services first, then PostgreSQL, Redis, sshd).

        Removes the sshd servers' temporary dirs and nothing else. Returns the
        processes that would not stop (none, normally).
        """
        if not self.state:
            raise LabError(f"no lab in {self.dir}")
        built = [name for name in self.hosts if "root" in self.host(name)]
        # every host's processes in one stop: they exit side by side, not one host after the other
        survivors = stop([r for name in built for r in self._host_processes(name)])
        survivors += stop([r for r in self.records() if r.role not in INFRA])
        postgres = [r for r in self.records() if r.role == "postgres"]
        if "postgres" in self.state:
            survivors += stop_postgres(self.postgres(), postgres[0] if postgres else None)
        survivors += stop([r for r in self.records() if r.role in ("redis", "sshd")])
        for directory in self.state.get("sshd_dirs", []):
            shutil.rmtree(directory, ignore_errors=True)
        self.state["sshd_dirs"] = []
        self.state["processes"] = [r.to_json() for r in survivors]
        self.state["status"] = "down"
        self.save()
        return [r.describe() for r in survivors]

    # --- status and inventory ------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Per host: ssh port and whether sshd runs, service port, pid, /health; Redis, PostgreSQL."""
        records = self.records()
        rows = []
        for name in self.hosts:
            host = self.host(name)
            code, body = self.health(name) if "service_port" in host else (None, "not built")
            sshd = [r for r in records if r.role == "sshd" and r.host == name]
            pid = None
            with contextlib.suppress(OSError, LabError, ValueError):
                pid = int(self.paths(name).pid_file.read_text().strip())
            rows.append({
                "host": name, "ssh_port": host.get("ssh_port"), "sshd": bool(sshd) and alive(sshd[0]),
                "service_port": host.get("service_port"), "pid": pid, "health": code,
                "reasons": _reasons(code, body), "faults": host.get("faults", []),
            })  # fmt: skip
        servers = {}
        for role in ("redis", "postgres"):
            found = [r for r in records if r.role == role]
            servers[role] = {
                "port": self.state.get(role, {}).get("port"),
                "running": bool(found) and alive(found[0]),
            }
        return {"dir": str(self.dir), "status": self.state.get("status"), "hosts": rows, **servers}

    def host_variables(self, name: str) -> dict[str, Any]:
        """The inventory variables of host ``name`` (connection, paths, its Redis db, its schema)."""
        host, paths = self.host(name), self.paths(name)
        redis_port = self.state["redis"]["port"]
        return {
            "ansible_host": "127.0.0.1",
            "ansible_port": host["ssh_port"],
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(self.dir / "ssh" / "client_ed25519"),
            "remedy_known_hosts": str(self.dir / "ssh" / "known_hosts"),
            # hosts of every lab on this machine share names: keep their run locks apart
            "remedy_lock_path": str(self.dir / "hosts" / f"{name}.lock"),
            "coze_instance": name,
            "coze_root": str(paths.root),
            "coze_config": str(paths.config),
            "coze_program": str(paths.program),
            "coze_data_dir": str(paths.data_dir),
            "coze_manifest": str(paths.data_dir / "MANIFEST.sha256"),
            "coze_cache_dir": str(paths.cache_dir),
            "coze_log_dir": str(paths.log_dir),
            "coze_app_log": str(paths.log_dir / "app.log"),
            "coze_error_log": str(paths.log_dir / "error.log"),
            "coze_pid_dir": str(paths.pid_dir),
            "coze_pid_file": str(paths.pid_file),
            "coze_start_record": str(paths.start_record),
            "coze_bind_host": "127.0.0.1",
            "coze_port": host["service_port"],
            "coze_health_url": f"http://127.0.0.1:{host['service_port']}/health",
            "coze_config_check": f"{self.state['python']} {paths.program} --check-config %s",
            "coze_config_default": str(paths.default_config),
            "coze_config_overrides": config_overrides(self.spec(name)),
            "coze_service_start": str(paths.start),
            "coze_service_stop": str(paths.stop),
            "coze_backup_dir": str(paths.backup_dir),
            "coze_full_backup_dir": str(paths.full_dir),
            "coze_incremental_dir": str(paths.incremental_dir),
            "coze_snar": str(paths.snar),
            "coze_pg_backup_dir": str(paths.pg_backup_dir),
            "redis_db": host["redis_db"],
            "redis_url": f"redis://127.0.0.1:{redis_port}/{host['redis_db']}",
            "pg_schema": name,
            "pg_table": f"{name}.conversations",
            "coze_venv": str(venv_dir(paths.root)),
            "coze_path": f"{paths.root / 'usr/bin'}:/usr/local/bin:/usr/bin:/bin",
        }

    def group_variables(self) -> dict[str, Any]:
        """Variables shared by every host: the service user and modes, Redis, PostgreSQL."""
        pg = self.state["postgres"]
        return {
            "lab_dir": str(self.dir),
            "coze_user": SERVICE_USER,
            "coze_group": SERVICE_USER,
            "coze_config_owner": "root",
            "coze_config_group": SERVICE_USER,
            "coze_config_mode": "0640",
            "coze_dir_mode": "0755",
            "coze_start_mode": "0755",
            "redis_host": "127.0.0.1",
            "redis_port": self.state["redis"]["port"],
            "redis_cli": shutil.which("redis-cli") or "redis-cli",
            "redis_cache_pattern": "coze:cache:*",
            "pg_host": "127.0.0.1",
            "pg_port": pg["port"],
            "pg_socket_dir": pg["socket_dir"],
            "pg_database": PG_DATABASE,
            "pg_user": PG_USER,
            "pg_bin_dir": pg["bin_dir"],
            "pg_rows": PG_ROWS,
            "coze_dependencies": [{"command": COMMAND, "package": "coze-lab-tools"},
                                  {"module": PLUGIN, "pip": "coze-lab-plugin"}],
            "pip_find_links": str(repository(self.dir)[1]),
        }

    def inventory_ini(self) -> str:
        lines = [f"# remedy lab inventory, written by examples/lab/lab.py up in {self.dir}", "[coze]"]
        for name in self.hosts:
            pairs = " ".join(f"{key}={_ini_word(value)}" for key, value in self.host_variables(name).items())
            lines.append(f"{name} {pairs}")
        lines += ["", "[coze:vars]"]
        lines += [f"{key}={value}" for key, value in self.group_variables().items()]
        return "\n".join(lines) + "\n"

    def inventory_yaml(self) -> str:
        document = {
            "all": {
                "children": {
                    "coze": {
                        "hosts": {name: self.host_variables(name) for name in self.hosts},
                        "vars": self.group_variables(),
                    }
                }
            }
        }
        header = f"# remedy lab inventory, written by examples/lab/lab.py up in {self.dir}\n"
        return header + yaml.safe_dump(document, sort_keys=False, width=200)


def _ini_word(value: Any) -> str:
    """A host variable's value as one word of an INI host line (mappings as Python literals)."""
    if isinstance(value, dict):
        return shlex.quote(json.dumps(value, separators=(",", ":")))
    text = str(value)
    return shlex.quote(text) if any(c.isspace() for c in text) else text


def _reasons(code: int | None, body: Any) -> list[str]:
    if code == 200:
        return []
    if code is None:
        return [f"service down ({body})"]
    if isinstance(body, dict) and body.get("reasons"):
        return [str(reason) for reason in body["reasons"]]
    return [f"HTTP {code}: not the coze service" if code == 404 else f"HTTP {code}"]


# --- preflight ---------------------------------------------------------------------------


def _preflight(directory: Path) -> None:
    if sys.platform != "linux" or os.geteuid() != 0:
        raise LabError("the lab needs root on Linux (service user, ownership, setpriv)")
    if not _SAFE_PATH.fullmatch(str(directory)):
        raise LabError(f"lab dir {directory}: use only letters, digits and ._/+- in its path")
    if not os.access(SSHD_PATH, os.X_OK):
        raise LabError(f"OpenSSH server not found at {SSHD_PATH} (install openssh-server)")
    for tool, package in (("ssh-keygen", "openssh-client"), ("redis-server", "redis-server"),
                          ("setpriv", "util-linux"), ("tar", "tar"), ("useradd", "passwd"),
                          ("apt-get", "apt"), ("dpkg-deb", "dpkg"),
                          ("dpkg-scanpackages", "dpkg-dev")):  # fmt: skip
        if shutil.which(tool) is None:
            raise LabError(f"{tool} not found (install {package})")
    postgres_bin_dir()


def _ensure_user(name: str) -> None:
    """Create the unprivileged system user (and group) ``name`` once."""
    if system_user(name):
        return
    subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", name],
        capture_output=True, check=False,
    )  # fmt: skip
    if not system_user(name):
        raise LabError(f"cannot create the system user {name}")


def _service_python(user: str) -> str:
    """An interpreter that ``user`` can run and that imports yaml, with pip (the venvs' base)."""
    for candidate in dict.fromkeys([sys.executable, shutil.which("python3"), "/usr/bin/python3"]):
        if candidate and _runs_as(user, [candidate, "-c", "import yaml"]) and \
                _runs_as(None, [candidate, "-m", "pip", "--version"]):
            return candidate
    raise LabError(f"no python3 with PyYAML that user {user} can run and with pip for root "
                   "(install python3-yaml python3-pip)")


def _check_reachable(directory: Path, user: str) -> None:
    if not _runs_as(user, ["test", "-x", str(directory)]):
        raise LabError(f"user {user} cannot reach {directory}: every parent dir needs o+x; use another --dir")


def _runs_as(user: str | None, argv: list[str]) -> bool:
    done = subprocess.run([*as_user(user), *argv], capture_output=True, cwd="/", check=False)
    return done.returncode == 0


# --- command line ------------------------------------------------------------------------


def _print_status(status: dict[str, Any]) -> None:
    rows = []
    for host in status["hosts"]:
        reasons = host["reasons"]
        health = "ok" if host["health"] == 200 else (reasons[0] if reasons else "?")
        if len(reasons) > 1:
            health += f" (+{len(reasons) - 1} more)"
        code = host["health"] if host["health"] is not None else "down"
        rows.append([host["host"], host["ssh_port"], "up" if host["sshd"] else "DOWN",
                     host["service_port"], host["pid"] or "-", code, health[:90],
                     ",".join(host["faults"]) or "-"])  # fmt: skip
    headers = ["host", "ssh port", "sshd", "service port", "pid", "health", "detail", "faults"]
    print(tabulate(rows, headers=headers))
    for role in ("redis", "postgres"):
        server = status[role]
        print(f"{role}: 127.0.0.1:{server['port']} {'running' if server['running'] else 'NOT RUNNING'}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lab.py", description=__doc__.split("\n\n")[0])
    default = os.environ.get("REMEDY_LAB_DIR", ".lab")
    parser.add_argument("--dir", type=Path, default=Path(default), help="lab dir (default %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start N hosts, Redis and PostgreSQL")
    up.add_argument("count", type=int, metavar="N")
    commands.add_parser("down", help="stop everything the lab started")
    status = commands.add_parser("status", help="hosts, ports and health")
    status.add_argument("--json", action="store_true")
    inventory = commands.add_parser("inventory", help="print the inventory")
    inventory.add_argument("--format", choices=("ini", "yaml"), default="ini")
    fault = commands.add_parser("break", help="inject faults into a host, in the order given")
    fault.add_argument("host")
    fault.add_argument("fault", nargs="+", choices=sorted(FAULTS), metavar="FAULT")
    reset = commands.add_parser("reset", help="restore the healthy state (of every host without HOST)")
    reset.add_argument("host", nargs="*", metavar="HOST")
    commands.add_parser("faults", help="list the faults")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "faults":
        for name, fault in FAULTS.items():
            print(f"{name:36} {fault.summary}")
        return 0
    lab = Lab(args.dir)
    try:
        if args.command == "up":
            with lab.locked():
                lab.up(args.count)
            _print_status(lab.status())
            print(f"inventory: {lab.inventory_path}")
        elif args.command == "down":
            with lab.locked():
                survivors = lab.down()
            if survivors:
                print(f"lab: still running: {', '.join(survivors)}", file=sys.stderr)
                return 1
        elif args.command == "status":
            _require(lab)
            status = lab.status()
            print(json.dumps(status, indent=2)) if args.json else _print_status(status)
        elif args.command == "inventory":
            _require(lab)
            print(lab.inventory_ini() if args.format == "ini" else lab.inventory_yaml(), end="")
        elif args.command == "break":
            with lab.locked():
                for fault in args.fault:
                    _require(lab).break_host(args.host, fault)
        elif args.command == "reset":
            with lab.locked():
                _require(lab).reset(*args.host)
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1
    return 0


def _require(lab: Lab) -> Lab:
    if lab.state.get("status") != "up":
        raise LabError(f"no lab is up in {lab.dir} (state: {lab.state.get('status', 'none')})")
    return lab


if __name__ == "__main__":
    sys.exit(main())
