"""One lab host's filesystem: the Coze layout under the host's root dir, data and backups.

Every lab host is an sshd on 127.0.0.1; they share one filesystem, so each
host's files live under its own root, e.g. ``<lab>/hosts/host01``, laid out
like a real host (``etc/coze/config.yaml``, ``var/log/coze``, ...). The data
dir goes through three versions while the backups are taken, so that every
backup differs from the next one and the newest equals the current data.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from cozeservice import MANIFEST, REDIS_PREFIX, Redis
from lab_packages import PLUGIN
from lab_processes import LabError
from lab_servers import PG_DATABASE, PG_USER

STAMP = "%Y%m%dT%H%M%S"
VERSIONS = (1, 2, 3)  # data versions; the full backups and incremental levels follow them
INDEXED_ROWS = {1: 30, 2: 35, 3: 40}  # conversations listed in conversations.idx per version
PG_ROWS = INDEXED_ROWS[VERSIONS[-1]]  # rows of <host>.conversations in PostgreSQL

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class HostPaths:
    """Every path of one lab host, under ``root``."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "etc/coze/config.yaml"

    @property
    def default_config(self) -> Path:
        """The config the package installed (``coze_config_default``)."""
        return self.root / "usr/share/coze/config.yaml"

    @property
    def config_backup_dir(self) -> Path:
        """Known good copies of the config (``coze_config_good_dir``)."""
        return self.root / "var/backups/coze/config"

    @property
    def program(self) -> Path:
        return self.root / "opt/coze/cozeservice.py"

    @property
    def start(self) -> Path:
        return self.root / "bin/coze-start"

    @property
    def stop(self) -> Path:
        return self.root / "bin/coze-stop"

    @property
    def data_dir(self) -> Path:
        return self.root / "var/lib/coze/data"

    @property
    def cache_dir(self) -> Path:
        return self.root / "var/cache/coze"

    @property
    def log_dir(self) -> Path:
        return self.root / "var/log/coze"

    @property
    def pid_dir(self) -> Path:
        return self.root / "run/coze"

    @property
    def pid_file(self) -> Path:
        return self.root / "run/coze/coze.pid"

    @property
    def start_record(self) -> Path:
        return self.root / "run/coze/coze.starts"

    @property
    def crash_switch(self) -> Path:
        return self.root / "etc/coze/crash-after-start"

    @property
    def backup_dir(self) -> Path:
        return self.root / "var/backups/coze"

    @property
    def full_dir(self) -> Path:
        return self.root / "var/backups/coze/full"

    @property
    def incremental_dir(self) -> Path:
        return self.root / "var/backups/coze/incremental"

    @property
    def snar(self) -> Path:
        return self.root / "var/backups/coze/incremental/data.snar"

    @property
    def pg_backup_dir(self) -> Path:
        return self.root / "var/backups/coze/postgres"

    def config_copy(self, stamp: str) -> Path:
        return self.config_backup_dir / f"config.yaml.{stamp}"

    def full_backup(self, stamp: str) -> Path:
        return self.full_dir / f"backup-{stamp}.tar.gz"

    def incremental(self, level: int, stamp: str) -> Path:
        return self.incremental_dir / f"data-{stamp}.level{level}.tar.gz"

    def pg_dump(self, stamp: str) -> Path:
        return self.pg_backup_dir / f"coze-{stamp}.dump"


@dataclass(frozen=True)
class HostSpec:
    """What a host's service needs to know about its place in the lab."""

    name: str
    service_port: int
    redis_port: int
    redis_db: int
    pg_port: int
    python: str  # interpreter that runs the service: its venv's (must import yaml as the service user)
    user: str  # the service user


# --- data --------------------------------------------------------------------------------


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


def data_files(instance: str, version: int) -> dict[str, bytes]:
    """The data dir's files (without the manifest) at ``version`` 1, 2 or 3."""
    bots = [
        {"id": "bot-1", "name": "Support assistant", "model": "doubao-pro", "enabled": True},
        {"id": "bot-2", "name": "Sales helper", "model": "doubao-lite", "enabled": True},
    ]
    if version >= 2:
        bots.append({"id": "bot-3", "name": "Onboarding guide", "model": "doubao-pro",
                     "enabled": False})  # fmt: skip
    workflows = [{"id": "wf-1", "name": "ticket triage", "steps": ["classify", "route"]}]
    if version >= 3:
        workflows.append({"id": "wf-2", "name": "refund", "steps": ["verify", "approve", "pay"]})
    faq = "# FAQ\n\nQ: How do I reset my token?\nA: Settings > API > Reset.\n"
    if version >= 2:
        faq += "\nQ: Where are the logs?\nA: /var/log/coze/app.log and error.log.\n"
    files = {
        "bots.json": _json({"instance": instance, "bots": bots}),
        "workflows.json": _json({"instance": instance, "workflows": workflows}),
        "plugins/search.json": _json({"plugin": "search", "endpoint": "/v1/search"}),
        "knowledge/faq.md": faq.encode(),
        "conversations.idx": "".join(f"{i}\n" for i in range(1, INDEXED_ROWS[version] + 1)).encode(),
    }
    if version < 3:
        files["plugins/weather-legacy.json"] = _json({"plugin": "weather", "deprecated": True})
    if version >= 2:
        files["knowledge/onboarding.md"] = f"# Welcome to {instance}\n".encode()
    return files


def manifest_text(files: dict[str, bytes]) -> str:
    """``sha256sum`` output for ``files``, sorted by path (check with ``sha256sum -c``)."""
    return "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in sorted(files))


def write_data_version(data_dir: Path, instance: str, version: int) -> list[Path]:
    """Make ``data_dir`` hold exactly ``version``; return the files written or rewritten."""
    files = data_files(instance, version)
    files[MANIFEST] = manifest_text(files).encode()
    changed = []
    for existing in sorted(data_dir.rglob("*"), reverse=True):
        name = existing.relative_to(data_dir).as_posix()
        if existing.is_file() and name not in files:
            existing.unlink()
        elif existing.is_dir() and not any(existing.iterdir()):
            existing.rmdir()
    for name, content in files.items():
        path = data_dir / name
        if path.exists() and path.read_bytes() == content:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        changed.append(path)
    return changed


# --- backups -----------------------------------------------------------------------------


def _tar(*args: str) -> None:
    done = subprocess.run(["tar", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LabError(f"tar {' '.join(args)} failed: {done.stderr.strip()}")


def write_checksum(path: Path) -> Path:
    """``path.sha256`` beside ``path``, in ``sha256sum`` format (check it from that dir)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    checksum = path.with_name(path.name + ".sha256")
    checksum.write_text(f"{digest}  {path.name}\n")
    return checksum


def _snapshot_time(snar: Path) -> float:
    """The dump time GNU tar stored in a ``--listed-incremental`` snapshot (format 2)."""
    fields = snar.read_bytes().split(b"\n", 1)[1].split(b"\0")
    return int(fields[0]) + int(fields[1]) / 1e9


def build_data_and_backups(
    paths: HostPaths, instance: str, stamps: list[datetime], owner: tuple[int, int]
) -> None:
    """Write data versions 1..3 into the data dir, backing up after each one.

    After version k (taken at ``stamps[k-1]``): a full tar.gz backup with its
    .sha256, and incremental level k-1 of the GNU tar ``--listed-incremental``
    chain. Files changed by a version get an mtime just after the previous
    dump, so that the next level holds exactly the changes.
    """
    previous_dump: float | None = None
    for level, (version, stamp) in enumerate(zip(VERSIONS, stamps, strict=True)):
        changed = write_data_version(paths.data_dir, instance, version)
        for path in changed:
            # Only what changed is touched: tar dumps a file whose mtime or ctime is
            # newer than the previous dump, and chown or utime set the ctime.
            for item in (path, *path.relative_to(paths.data_dir).parents):
                os.chown(paths.data_dir / item, *owner)
            when = stamp.timestamp() if previous_dump is None else previous_dump + 0.001
            os.utime(path, (when, when))
        name = stamp.strftime(STAMP)
        full = paths.full_backup(name)
        _tar("--create", "--gzip", "--sort=name", f"--file={full}", "-C", str(paths.data_dir), ".")
        increment = paths.incremental(level, name)
        _tar("--create", "--gzip", "--sort=name", f"--listed-incremental={paths.snar}",
             f"--file={increment}", "-C", str(paths.data_dir), ".")  # fmt: skip
        previous_dump = _snapshot_time(paths.snar)
        for archive in (full, increment):
            os.utime(archive, (stamp.timestamp(), stamp.timestamp()))
            checksum = write_checksum(archive)
            os.utime(checksum, (stamp.timestamp(), stamp.timestamp()))


# --- config and scripts ------------------------------------------------------------------


def config_document(paths: HostPaths, spec: HostSpec) -> dict[str, Any]:
    return {**default_config_document(paths, spec), **config_overrides(spec)}


def default_config_document(paths: HostPaths, spec: HostSpec) -> dict[str, Any]:
    """The required keys only: the config as the package installed it."""
    return {
        "instance": spec.name,
        "host": "127.0.0.1",
        "port": spec.service_port,
        "data_dir": str(paths.data_dir),
        "log_dir": str(paths.log_dir),
        "pid_file": str(paths.pid_file),
        "cache_dir": str(paths.cache_dir),
    }


def config_overrides(spec: HostSpec) -> dict[str, Any]:
    """What the site added to the packaged config: the host's Redis and PostgreSQL."""
    return {
        "redis_url": f"redis://127.0.0.1:{spec.redis_port}/{spec.redis_db}",
        "postgres_url": f"postgresql://{PG_USER}@127.0.0.1:{spec.pg_port}/{PG_DATABASE}",
        "postgres_table": f"{spec.name}.conversations",
        "plugins": [PLUGIN],
    }


def write_configs(paths: HostPaths, spec: HostSpec, stamps: list[datetime]) -> None:
    """The config, the packaged default, and a known good copy of the config per backup time."""
    text = yaml.safe_dump(config_document(paths, spec), sort_keys=False)
    paths.config.write_text(f"# Coze service config of lab host {spec.name}\n{text}")
    default = yaml.safe_dump(default_config_document(paths, spec), sort_keys=False)
    paths.default_config.write_text(f"# Coze service config as packaged (lab host {spec.name})\n{default}")
    for stamp in stamps:
        copy = paths.config_copy(stamp.strftime(STAMP))
        shutil.copyfile(paths.config, copy)
        os.chmod(copy, 0o600)
        os.utime(copy, (stamp.timestamp(), stamp.timestamp()))


_START = """\
#!/bin/sh
# coze-start: start the Coze service of lab host {name} as user {user}.
# Returns once the service listens (exit 0) or has failed, with its status:
# 1 already running, 2 config error, 3 port in use, 4 other startup failure,
# 5 a plugin cannot be imported, 127 cozectl (package coze-lab-tools) not found.
set -u
PATH={usr_bin}:$PATH
if ! command -v cozectl >/dev/null 2>&1; then
    stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    echo "$stamp ERROR [$$] coze-start: cozectl: command not found" >>{log_dir}/error.log
    echo "coze-start: cozectl: command not found" >&2
    exit 127
fi
cozectl preflight {config} >/dev/null || exit 4
set -- {python} {program} --config {config} --log-dir {log_dir} --daemon
if [ "$(id -u)" -eq 0 ] && [ "{user}" != root ]; then
    exec setpriv --reuid={user} --regid={user} --init-groups -- "$@"
fi
exec "$@"
"""

_STOP = """\
#!/bin/sh
# coze-stop: stop the Coze service of lab host {name}: SIGTERM, SIGKILL after 10 s.
# Exit 0 when it is not running (any more); a stale pid file is removed.
set -u
pid_file={pid_file}
[ -e "$pid_file" ] || {{ echo "coze: not running (no pid file $pid_file)"; exit 0; }}
pid=$(cat "$pid_file") || exit 1
case $pid in ''|*[!0-9]*) echo "coze: $pid_file holds no pid" >&2; exit 1 ;; esac
alive() {{
    [ -r "/proc/$pid/stat" ] || return 1
    state=$(sed 's/.*) \\(.\\).*/\\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ "$state" != Z ]
}}
if ! alive || ! tr '\\0' ' ' <"/proc/$pid/cmdline" | grep -q cozeservice; then
    echo "coze: not running (stale pid file names $pid)"
    rm -f "$pid_file"
    exit 0
fi
kill -TERM "$pid"
i=0
while alive; do
    i=$((i + 1))
    if [ "$i" -eq 100 ]; then kill -KILL "$pid"; fi
    if [ "$i" -gt 150 ]; then echo "coze: pid $pid does not stop" >&2; exit 1; fi
    sleep 0.1
done
rm -f "$pid_file"
echo "coze: stopped pid $pid"
"""


def _owner(user: str) -> tuple[int, int]:
    return pwd.getpwnam(user).pw_uid, grp.getgrnam(user).gr_gid


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for item in path.rglob("*"):
        os.chown(item, uid, gid, follow_symlinks=False)


def build_host(paths: HostPaths, spec: HostSpec, stamps: list[datetime]) -> None:
    """Create the host's root: config, program, start/stop scripts, data, backups, logs.

    Ownership (the healthy state): everything root-owned, except the data,
    cache, log and pid dirs (with their files), owned by the service user;
    the config is root:<user> 0640, its known good copies 0600, the scripts 0755.
    """
    if paths.root.exists():
        shutil.rmtree(paths.root)
    for directory in (paths.config.parent, paths.program.parent, paths.start.parent,
                      paths.data_dir, paths.cache_dir, paths.log_dir, paths.pid_dir,
                      paths.full_dir, paths.incremental_dir, paths.pg_backup_dir,
                      paths.default_config.parent, paths.config_backup_dir):  # fmt: skip
        directory.mkdir(parents=True, exist_ok=True)
    build_data_and_backups(paths, spec.name, stamps, _owner(spec.user))
    write_configs(paths, spec, stamps)
    shutil.copyfile(HERE / "cozeservice.py", paths.program)
    values = {
        "name": spec.name, "user": spec.user, "python": spec.python, "program": paths.program,
        "usr_bin": paths.root / "usr/bin",
        "config": paths.config, "log_dir": paths.log_dir, "pid_file": paths.pid_file,
    }  # fmt: skip
    paths.start.write_text(_START.format(**values))
    paths.stop.write_text(_STOP.format(**values))
    for name in ("app.log", "error.log"):
        (paths.log_dir / name).touch()
    apply_healthy_modes(paths, spec.user)


def apply_healthy_modes(paths: HostPaths, user: str) -> None:
    """Ownership and modes of the healthy state (see ``build_host``)."""
    uid, gid = _owner(user)
    for directory in (paths.data_dir, paths.cache_dir, paths.log_dir, paths.pid_dir):
        _chown_tree(directory, uid, gid)
        os.chmod(directory, 0o755)  # noqa: S103 - the usual mode of a service's dirs
    for log in paths.log_dir.iterdir():
        os.chmod(log, 0o640)
    os.chown(paths.config, 0, gid)
    os.chmod(paths.config, 0o640)
    for script in (paths.start, paths.stop):
        os.chmod(script, 0o755)  # noqa: S103 - scripts root runs
    os.chmod(paths.program, 0o644)
    os.chmod(paths.backup_dir, 0o750)  # noqa: S103 - root only, group may read


def warm_caches(paths: HostPaths, instance: str, redis_port: int, redis_db: int) -> None:
    """Fill the file cache and the Redis cache with the current data (a consistent cache)."""
    uid, gid = _owner_of(paths.cache_dir)
    files = data_files(instance, VERSIONS[-1])
    with Redis("127.0.0.1", redis_port, redis_db) as redis:
        for key in redis.scan(REDIS_PREFIX + "*"):
            redis.command("DEL", key)
        for name, content in files.items():
            redis.set(REDIS_PREFIX + name, content)
    if paths.cache_dir.exists():
        shutil.rmtree(paths.cache_dir)
    for name, content in files.items():
        entry = paths.cache_dir / name
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.write_bytes(content)
    _chown_tree(paths.cache_dir, uid, gid)
    os.chmod(paths.cache_dir, 0o755)  # noqa: S103 - the usual mode of a cache dir


def _owner_of(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_uid, info.st_gid
