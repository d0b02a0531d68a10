"""The faults the lab injects into one host, each the way it happens on a real host.

``FAULTS`` maps a fault's name to its one-line summary and its injector, a
function ``(lab, host) -> None``. Faults stack; ``Lab.reset(host)`` undoes all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cozeservice import REDIS_PREFIX, Redis
from lab_layout import HostPaths, data_files, write_checksum
from lab_packages import apt, uninstall
from lab_processes import LabError, alive, listening, running, spawn, wait_for

if TYPE_CHECKING:
    from lab import Lab

STALE_VERSION = 1  # stale caches hold the content of data version 1
PG_ROWS_KEPT = 10  # pg_rows_lost keeps conversations 1..10
CRASH_STARTS = 3  # crash_loop: starts that crashed
CRASH_MESSAGE = "worker 1 died: Segmentation fault (core dumped) in libcozeengine.so"


@dataclass(frozen=True)
class Fault:
    summary: str
    inject: Callable[[Lab, str], None]


def _dead_pid() -> int:
    """A pid that named a process a moment ago and names none now."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def port_conflict_stale(lab: Lab, host: str) -> None:
    """The service runs, but its pid file names a dead process: it is an orphaned instance."""
    lab.stop_service(host)
    rec = lab.start_service(host)
    lab.forget(rec)
    lab.remember(dataclasses.replace(rec, role="stale-service"))
    lab.paths(host).pid_file.write_text(f"{_dead_pid()}\n")


def port_conflict_foreign(lab: Lab, host: str) -> None:
    """The service is down and another program (python3 -m http.server) holds its port."""
    lab.stop_service(host)
    port = lab.host(host)["service_port"]
    directory = lab.dir / "foreign" / host
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "index.html").write_text("<h1>not the coze service</h1>\n")
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
            "--directory", str(directory)]  # fmt: skip
    rec = spawn(argv, role="foreign", host=host, log=directory / "http.server.log")
    lab.remember(rec)
    wait_for(lambda: listening(port), timeout=15, what=f"http.server on port {port}")


def permission_config(lab: Lab, host: str) -> None:
    """The service is down and its config is root:root 0600: the service user cannot read it."""
    lab.stop_service(host)
    config = lab.paths(host).config
    os.chown(config, 0, 0)
    os.chmod(config, 0o600)


def permission_logdir(lab: Lab, host: str) -> None:
    """The log dir and its logs now belong to root (0755/0644): the service cannot write them."""
    log_dir = lab.paths(host).log_dir
    for path in (log_dir, *log_dir.iterdir()):
        os.chown(path, 0, 0)
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


def permission_datadir(lab: Lab, host: str) -> None:
    """The data dir tree now belongs to root, dir mode 0700: the service cannot read its data."""
    data_dir = lab.paths(host).data_dir
    for path in (data_dir, *data_dir.rglob("*")):
        os.chown(path, 0, 0, follow_symlinks=False)
    os.chmod(data_dir, 0o700)


def permission_exec(lab: Lab, host: str) -> None:
    """The service is down and its start script lost its exec bits (0644)."""
    lab.stop_service(host)
    os.chmod(lab.paths(host).start, 0o644)


def cache_stale_redis(lab: Lab, host: str) -> None:
    """Two Redis cache entries hold an old version of their data file."""
    old = data_files(host, STALE_VERSION)
    with Redis("127.0.0.1", lab.state["redis"]["port"], lab.host(host)["redis_db"]) as redis:
        for name in ("workflows.json", "knowledge/faq.md"):
            redis.set(REDIS_PREFIX + name, old[name])


def cache_stale_files(lab: Lab, host: str) -> None:
    """The file cache holds an old bots.json and an entry for a data file that no longer exists."""
    cache_dir = lab.paths(host).cache_dir
    owner = cache_dir.stat()
    old = data_files(host, STALE_VERSION)
    for name in ("bots.json", "plugins/weather-legacy.json"):
        entry = cache_dir / name
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.write_bytes(old[name])
        os.chown(entry, owner.st_uid, owner.st_gid)


def data_corrupt(lab: Lab, host: str) -> None:
    """bots.json rots silently: one byte changes, size and mtime stay (only the checksum tells)."""
    path = lab.paths(host).data_dir / "bots.json"
    info = path.stat()
    content = bytearray(path.read_bytes())
    middle = len(content) // 2
    content[middle] = ord("#") if content[middle] != ord("#") else ord("%")
    path.write_bytes(bytes(content))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def data_lost(lab: Lab, host: str) -> None:
    """Every data file is deleted (an rm gone wrong); only MANIFEST.sha256 is left."""
    data_dir = lab.paths(host).data_dir
    for path in sorted(data_dir.rglob("*"), reverse=True):
        if path.is_dir():
            path.rmdir()
        elif path.name != "MANIFEST.sha256" or path.parent != data_dir:
            path.unlink()


def backup_newest_corrupt(lab: Lab, host: str) -> None:
    """data_lost, and the newest full backup is truncated to half (its .sha256 stays)."""
    data_lost(lab, host)
    paths: HostPaths = lab.paths(host)
    newest = sorted(paths.full_dir.glob("backup-*.tar.gz"))[-1]
    info = newest.stat()
    with newest.open("r+b") as handle:
        handle.truncate(info.st_size // 2)
    os.utime(newest, ns=(info.st_atime_ns, info.st_mtime_ns))


def _newest_full(lab: Lab, host: str) -> Path:
    return sorted(lab.paths(host).full_dir.glob("backup-*.tar.gz"))[-1]


def _checksummed(archive: Path, change: Callable[[Path], None]) -> None:
    """``change`` the archive, then checksum it as the backup job would; its times are kept."""
    info = archive.stat()
    change(archive)
    for path in (archive, write_checksum(archive)):
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def _repacked(edit: Callable[[tarfile.TarFile, dict[str, bytes]], None]) -> Callable[[Path], None]:
    """A change that rewrites an archive: ``edit(out, contents)`` may alter contents and add members."""
    def change(archive: Path) -> None:
        with tarfile.open(archive) as source:
            members = [(m, source.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
                       for m in source.getmembers()]
        contents = {m.name: data for m, data in members}
        with tarfile.open(archive, "w:gz") as out:
            edit(out, contents)
            for member, _ in members:
                member.size = len(contents[member.name]) if member.isfile() else 0
                out.addfile(member, io.BytesIO(contents[member.name]) if member.isfile() else None)
    return change


def _member(out: tarfile.TarFile, name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.uid, info.gid = kind, target, 0, 0
    content = b"written outside the data dir\n" if kind == tarfile.REGTYPE else b""
    info.size = len(content)
    out.addfile(info, io.BytesIO(content) if content else None)


def _truncate(archive: Path) -> None:
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])


def backup_newest_checksummed_truncated(lab: Lab, host: str) -> None:
    """data_lost, and the newest full backup was cut to half before the job checksummed it."""
    data_lost(lab, host)
    _checksummed(_newest_full(lab, host), _truncate)


def backup_newest_manifest_mismatch(lab: Lab, host: str) -> None:
    """data_lost, and the newest full backup holds a bots.json its MANIFEST.sha256 does not match."""
    def rot(out: tarfile.TarFile, contents: dict[str, bytes]) -> None:
        contents["./bots.json"] = contents["./bots.json"].replace(b"bot", b"BOT", 1)
    data_lost(lab, host)
    _checksummed(_newest_full(lab, host), _repacked(rot))


def backup_newest_tar_slip(lab: Lab, host: str) -> None:
    """data_lost, and the newest full backup holds a ../ member and an absolute one (checksummed)."""
    outside = lab.paths(host).root / "tar-slip.txt"

    def slip(out: tarfile.TarFile, contents: dict[str, bytes]) -> None:
        _member(out, "../../../../tar-slip.txt")
        _member(out, str(outside))
    data_lost(lab, host)
    _checksummed(_newest_full(lab, host), _repacked(slip))


def backup_newest_escaping_link(lab: Lab, host: str) -> None:
    """data_lost, and the newest full backup links outside the data dir: a symlink and a hard link."""
    def links(out: tarfile.TarFile, contents: dict[str, bytes]) -> None:
        _member(out, "./plugins/config.yaml", tarfile.SYMTYPE, "../../../../../etc/coze/config.yaml")
        _member(out, "./config.yaml", tarfile.LNKTYPE, "../../../../etc/coze/config.yaml")
    data_lost(lab, host)
    _checksummed(_newest_full(lab, host), _repacked(links))


def backup_chain_broken(lab: Lab, host: str) -> None:
    """data_lost, the full backups are gone and level 1 of the incremental chain is missing."""
    data_lost(lab, host)
    paths = lab.paths(host)
    for path in [*paths.full_dir.iterdir(), *paths.incremental_dir.glob("*.level1.tar.gz*")]:
        path.unlink()


def pg_rows_lost(lab: Lab, host: str) -> None:
    """Rows of <host>.conversations are deleted in PostgreSQL (a pg_dump -Fc backup exists)."""
    # host names are the lab's own (hostNN): safe as identifiers
    lab.postgres().psql(f"DELETE FROM {host}.conversations WHERE id > {PG_ROWS_KEPT}")  # noqa: S608


def _restart_fails(lab: Lab, host: str) -> None:
    """Someone restarts the service: coze-stop stops the instance the pid file names, coze-start fails.

    An orphaned instance (port_conflict_stale) is left running, as coze-stop leaves it.
    """
    paths = lab.paths(host)
    for script in (paths.stop, paths.start):
        with contextlib.suppress(OSError):  # a start script without exec bits (permission_exec)
            subprocess.run([str(script)], capture_output=True, timeout=60, check=False,
                           stdin=subprocess.DEVNULL)
    for rec in lab.records():
        if rec.host == host and rec.role == "service" and not alive(rec):
            lab.forget(rec)


def _edit_config(lab: Lab, host: str, edit: Callable[[str], str]) -> None:
    """Rewrite the config in place, as an editor saving it does: its owner and mode stay."""
    config = lab.paths(host).config
    config.write_text(edit(config.read_text()))


def _edit_line(key: str, change: Callable[[str], str]) -> Callable[[str], str]:
    """An edit of the config's first ``key:`` line (``change`` maps the line to its new text)."""
    def edit(text: str) -> str:
        lines = text.splitlines(keepends=True)
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{key}:"))
        lines[index] = change(lines[index])
        return "".join(lines)
    return edit


def config_syntax(lab: Lab, host: str) -> None:
    """An edit indents the pid_file line (invalid YAML); the service was restarted on it and is down."""
    _edit_config(lab, host, _edit_line("pid_file", lambda line: "  " + line))
    _restart_fails(lab, host)


def config_invalid_value(lab: Lab, host: str) -> None:
    """The port gets a digit too many (beyond 65535) while the service runs: a restart would fail."""
    def wrong(line: str) -> str:
        port = int(line.split(":", 1)[1])
        return f"port: {port * 10 if port * 10 > 65535 else port + 65536}\n"
    _edit_config(lab, host, _edit_line("port", wrong))


def config_missing_key(lab: Lab, host: str) -> None:
    """An edit deletes the data_dir line; the service was restarted on it and is down."""
    _edit_config(lab, host, _edit_line("data_dir", lambda line: ""))
    _restart_fails(lab, host)


def dependency_command(lab: Lab, host: str) -> None:
    """coze-lab-libs and coze-lab-tools (cozectl) are gone: coze-start fails, "cozectl: command not found"."""
    apt(lab.paths(host).root, "remove", "coze-lab-libs")  # coze-lab-tools depends on it: removed too
    _restart_fails(lab, host)


def dependency_module(lab: Lab, host: str) -> None:
    """The plugin and its dependency left the service's venv: it fails to start, "ModuleNotFoundError"."""
    uninstall(lab.paths(host).root, "coze-lab-plugin", "coze-lab-pyutil")
    _restart_fails(lab, host)


def service_stopped(lab: Lab, host: str) -> None:
    """The service was stopped cleanly (coze-stop): no process, no pid file."""
    lab.stop_service(host)


def crash_loop(lab: Lab, host: str) -> None:
    """The service crashes right after every start (a fatal error no restart cures); it crashed 3 times."""
    lab.stop_service(host)
    paths = lab.paths(host)
    paths.crash_switch.write_text(f"{CRASH_MESSAGE}\n")
    for _ in range(CRASH_STARTS):
        done = subprocess.run([str(paths.start)], capture_output=True, text=True, timeout=60, check=False,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise LabError(f"{host}: {paths.start} exited {done.returncode}: {done.stderr.strip()}")
        pid = int(paths.pid_file.read_text().strip())
        wait_for(lambda pid=pid: not running(pid), timeout=15, what=f"the crash of pid {pid}")


FAULTS: dict[str, Fault] = {
    function.__name__: Fault((function.__doc__ or "").strip(), function)
    for function in (
        port_conflict_stale,
        port_conflict_foreign,
        permission_config,
        permission_logdir,
        permission_datadir,
        permission_exec,
        cache_stale_redis,
        cache_stale_files,
        data_corrupt,
        data_lost,
        backup_newest_corrupt,
        backup_newest_checksummed_truncated,
        backup_newest_manifest_mismatch,
        backup_newest_tar_slip,
        backup_newest_escaping_link,
        backup_chain_broken,
        pg_rows_lost,
        config_syntax,
        config_invalid_value,
        config_missing_key,
        dependency_command,
        dependency_module,
        service_stopped,
        crash_loop,
    )
}
