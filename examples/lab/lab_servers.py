"""The lab's shared servers: one real redis-server and one real PostgreSQL cluster.

Both listen on 127.0.0.1 only, on free ports, with every file under the lab
dir. Redis runs without persistence (``--save ''``, no AOF) as the ``redis``
user when it exists. PostgreSQL is a fresh cluster (initdb) owned by the
``postgres`` user (initdb refuses root), ``trust`` authentication on loopback
and on its unix socket, which lives in the lab dir, not in /var/run.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cozeservice import Redis, RedisError
from lab_processes import (
    LabError,
    ProcessRecord,
    alive,
    as_user,
    free_port,
    record,
    spawn,
    stop,
    wait_for,
)

PG_DATABASE = "coze"
PG_USER = "coze"


def system_user(name: str) -> str | None:
    """``name`` if such a local user exists, else None."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return None
    return name


def _chown_tree(path: Path, user: str | None) -> None:
    if user is None or os.geteuid() != 0:
        return
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.chown(name, entry.pw_uid, entry.pw_gid)


# --- Redis -------------------------------------------------------------------------------


def redis_ping(port: int) -> bool:
    with contextlib.suppress(RedisError), Redis("127.0.0.1", port, timeout=1) as redis:
        return bool(redis.command("PING") == "PONG")
    return False


def start_redis(directory: Path, databases: int) -> tuple[int, ProcessRecord]:
    """Start redis-server with its dir and log in ``directory``; return its port and record."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise LabError("redis-server not found (install the redis-server package)")
    directory.mkdir(parents=True, exist_ok=True)
    user = system_user("redis")
    _chown_tree(directory, user)
    log = directory / "redis.log"
    for _attempt in range(5):
        port = free_port()
        argv = [
            *as_user(user), binary, "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(directory),
            "--databases", str(databases), "--daemonize", "no", "--protected-mode", "yes",
        ]  # fmt: skip
        rec = spawn(argv, role="redis", log=log, cwd=directory)
        with contextlib.suppress(LabError):
            wait_for(
                lambda: redis_ping(port) or not alive(rec),  # noqa: B023
                timeout=20,
                what=f"redis on port {port}",
            )
        if redis_ping(port):
            return port, rec
        stop([rec])
    raise LabError(f"redis-server did not start; see {log}")


# --- PostgreSQL --------------------------------------------------------------------------


@dataclass(frozen=True)
class Postgres:
    """Where the lab's cluster lives and how to reach it."""

    bin_dir: Path
    directory: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def socket_dir(self) -> Path:
        return self.directory / "run"

    @property
    def log(self) -> Path:
        return self.directory / "postgres.log"

    def client(self, tool: str, *args: str, database: str = PG_DATABASE) -> list[str]:
        """argv for a client tool (psql, pg_dump, pg_restore) connecting as the coze role."""
        return [
            str(self.bin_dir / tool), "-h", "127.0.0.1", "-p", str(self.port),
            "-U", PG_USER, "-d", database, *args,
        ]  # fmt: skip

    def psql(self, sql: str, *, database: str = PG_DATABASE, user: str = PG_USER) -> str:
        """Run SQL with psql (stop on the first error); return its unaligned output."""
        argv = [
            str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", user,
            "-d", database, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql,
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise LabError(f"psql failed ({sql[:60]!r}): {done.stderr.strip()}")
        return done.stdout.strip()


def postgres_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/*/bin`` with initdb and pg_ctl."""
    found = sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if Path(p, "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        raise LabError("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin")
    return found[-1]


def _run_as_postgres(argv: list[str], directory: Path, what: str) -> None:
    done = subprocess.run(
        [*as_user(system_user("postgres")), *argv],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise LabError(f"{what} failed: {(done.stderr or done.stdout).strip()}")


def start_postgres(directory: Path) -> tuple[Postgres, ProcessRecord]:
    """initdb a cluster in ``directory``/data, start it, create the coze role and database."""
    bin_dir = postgres_bin_dir()
    if os.geteuid() == 0 and system_user("postgres") is None:
        raise LabError("user postgres not found (the postgresql package creates it)")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "run").mkdir(exist_ok=True)
    _chown_tree(directory, system_user("postgres"))
    os.chmod(directory, 0o700)
    data = directory / "data"
    _run_as_postgres(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
         "-E", "UTF8", "--locale=C", "--no-sync"],
        directory, "initdb",
    )  # fmt: skip
    for _attempt in range(5):
        server = Postgres(bin_dir, directory, free_port())
        _configure(server)
        try:
            _run_as_postgres(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(server.log), "-w",
                 "-t", "60", "start"],
                directory, "pg_ctl start",
            )  # fmt: skip
        except LabError:
            if "already in use" in _tail(server.log):
                continue
            raise
        rec = record(int((data / "postmaster.pid").read_text().split()[0]), "postgres")
        server.psql(f"CREATE ROLE {PG_USER} LOGIN CREATEDB", database="postgres", user="postgres")
        server.psql(f"CREATE DATABASE {PG_DATABASE} OWNER {PG_USER}", database="postgres",
                    user="postgres")  # fmt: skip
        return server, rec
    raise LabError(f"PostgreSQL did not start; see {directory / 'postgres.log'}")


def _configure(server: Postgres) -> None:
    settings = (
        f"\n# remedy lab\nlisten_addresses = '127.0.0.1'\nport = {server.port}\n"
        f"unix_socket_directories = '{server.socket_dir}'\nfsync = off\n"
        "max_connections = 40\nshared_buffers = 16MB\n"
    )
    (server.data_dir / "postgresql.auto.conf").write_text(
        "# Written by the remedy lab (ALTER SYSTEM would write here too).\n" + settings
    )


def _tail(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-4000:]
    return ""


def stop_postgres(server: Postgres, rec: ProcessRecord | None) -> list[ProcessRecord]:
    """``pg_ctl stop -m fast``; then make sure the postmaster's process group is gone."""
    if (server.data_dir / "postmaster.pid").exists():
        with contextlib.suppress(LabError, subprocess.TimeoutExpired):
            _run_as_postgres(
                [str(server.bin_dir / "pg_ctl"), "-D", str(server.data_dir), "-m", "fast",
                 "-w", "-t", "30", "stop"],
                server.directory, "pg_ctl stop",
            )  # fmt: skip
    return stop([rec]) if rec is not None else []
