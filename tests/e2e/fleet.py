"""Helpers for the playbook tests: a lab fleet, remedy runs as JSON, and the state of a host.

``Fleet`` wraps one lab (``conftest.LabHandle``): it breaks hosts (and
remembers which, so that they are reset after the test), runs ``remedy``
with ``--format json`` and returns the document, and reads what a
remediation may change on a host: its file tree (with or without mtimes),
its service process, its Redis keys and its PostgreSQL rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.conftest import REPO, LabHandle, new_lab_dir, require_lab_prerequisites

#: Runtime state a restarted service rewrites: logs and the pid file.
RUNTIME = ("var/log/coze", "run/coze")


@dataclass
class Outcome:
    """One remedy command: exit code, its JSON document, stderr."""

    rc: int
    doc: dict[str, Any]
    stderr: str

    def host(self, name: str) -> dict[str, Any]:
        return next(h for h in self.doc["hosts"] if h["host"] == name)

    def status(self, name: str) -> str:
        return str(self.host(name)["status"])

    def predicted_changes(self, name: str) -> list[str]:
        """Task ids of ``name`` whose plan says "will change" (tasks and handlers)."""
        return [t["task"] for t in self.host(name)["tasks"]
                if t.get("phase") in ("tasks", "handlers") and t.get("predicted") == "change"]

    def changed(self, name: str) -> list[str]:
        return [t["task"] for t in self.host(name)["tasks"] if t.get("changed")]

    def explain(self) -> str:
        lines = [f"exit {self.rc}", self.stderr[-3000:]]
        for host in self.doc.get("hosts", []):
            for task in host["tasks"]:
                if task["status"] in ("failed", "rolled_back", "timed_out", "indeterminate", "unreachable"):
                    lines.append(f"{host['host']} {task['task']}: {task['status']}: {task['message']}")
        return "\n".join(lines)


@dataclass
class Fleet:
    """A lab under test, and the hosts a test broke."""

    lab: LabHandle
    work: Path
    touched: list[str] = field(default_factory=list)

    @property
    def hosts(self) -> list[str]:
        return self.lab.hosts

    @property
    def inventory(self) -> Path:
        return self.lab.dir / "inventory.ini"

    def break_host(self, host: str, *faults: str) -> None:
        """Inject ``faults`` into ``host`` in this order, with one ``lab.py break``."""
        self.touched.append(host)
        if faults:
            self.lab.cli("break", host, *faults)

    def reset_touched(self) -> None:
        """Reset every host broken since the last reset, all with one ``lab.py reset``."""
        if self.touched:
            self.lab.cli("reset", *dict.fromkeys(self.touched))
        self.touched.clear()

    def extra_inventory(self, name: str, host_vars: dict[str, dict[str, Any]]) -> Path:
        """A YAML inventory of host variables, given with ``-i`` after the lab's."""
        path = self.work / f"{name}.yml"
        path.write_text(json.dumps({"all": {"hosts": host_vars}}))
        return path

    def locks(self) -> Path:
        """Host locks in the lab dir: the default /tmp/remedy-hostNN.lock is shared by every lab
        on this machine (their hosts have the same names and one filesystem)."""
        hosts = self.lab.dir / "hosts"
        return self.extra_inventory("locks", {h: {"remedy_lock_path": str(hosts / f"{h}.lock")}
                                              for h in self.hosts})

    def remedy(self, command: str, playbook: str, *args: str, inventories: tuple[Path, ...] = (),
               timeout: float = 600) -> Outcome:
        """``remedy COMMAND PLAYBOOK -i <lab> --format json ...`` from the checkout.

        ``playbook`` may name several, separated by spaces, or none ("").
        """
        argv = [sys.executable, "-m", "runner", command, *playbook.split(), "-i", str(self.inventory)]
        for inventory in (self.locks(), *inventories):
            argv += ["-i", str(inventory)]
        argv += ["--format", "json", "--audit-log", str(self.work / "audit.jsonl"), *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                              check=False)
        try:
            doc = json.loads(done.stdout)
        except ValueError:
            doc = {"hosts": [], "stdout": done.stdout}
        return Outcome(done.returncode, doc, done.stderr)

    # --- what a host looks like ---------------------------------------------------------

    def tree(self, host: str, *, mtimes: bool, skip: tuple[str, ...] = ()) -> dict[str, tuple[Any, ...]]:
        """Every entry under the host's root: type+mode, owner, group, sha256 (and mtime)."""
        root = self.lab.root(host)
        found: dict[str, tuple[Any, ...]] = {}
        for directory, dirs, files in os.walk(root):
            for name in sorted(dirs + files):
                path = Path(directory, name)
                relative = path.relative_to(root).as_posix()
                if any(relative == s or relative.startswith(s + "/") for s in skip):
                    if name in dirs:
                        dirs.remove(name)
                    continue
                info = path.lstat()
                digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(info.st_mode) else ""
                if stat.S_ISLNK(info.st_mode):
                    digest = os.readlink(path)
                entry: tuple[Any, ...] = (oct(info.st_mode), info.st_uid, info.st_gid, digest)
                found[relative] = (*entry, info.st_mtime_ns) if mtimes else entry
        return found

    def service_process(self, host: str) -> tuple[str, str]:
        """The pid file's content and that process's start time (empty when none)."""
        pid_file = self.lab.root(host) / "run/coze/coze.pid"
        try:
            pid = pid_file.read_text().strip()
            started = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        except (OSError, IndexError):
            return ("", "")
        return (pid, started)

    def redis_keys(self, host: str) -> dict[str, str]:
        """Every key of the host's Redis db: the sha1 of its value, and whether it expires."""
        from cozeservice import Redis

        port, db = self.lab.state()["redis"]["port"], self.lab.host(host)["redis_db"]
        values = {}
        with Redis("127.0.0.1", port, db) as redis:
            for key in redis.scan("*"):
                value = redis.command("DUMP", key) or b""
                expiry = "persistent" if redis.command("TTL", key) == -1 else "expiring"  # seconds tick down
                values[key.decode(errors="replace")] = f"{hashlib.sha1(value).hexdigest()} {expiry}"  # noqa: S324
        return values

    def pg_rows(self, host: str) -> str:
        """A digest of the host's conversations table (its rows, ordered)."""
        info = self.lab.state()["postgres"]
        psql = [f"{info['bin_dir']}/psql", "-X", "-h", "127.0.0.1", "-p", str(info["port"]), "-U", "coze",
                "-d", "coze", "-tAc", f"SELECT * FROM {host}.conversations ORDER BY id"]  # noqa: S608
        rows = subprocess.run(psql, capture_output=True, text=True, check=True).stdout
        return f"{len(rows.splitlines())} rows {hashlib.sha256(rows.encode()).hexdigest()[:16]}"

    def health(self, host: str, port: int | None = None) -> tuple[int | None, Any]:
        from lab import fetch

        return fetch(port or self.lab.host(host)["service_port"])  # type: ignore[no-any-return]

    def untouched_state(self, host: str) -> dict[str, Any]:
        """What must not change on a host a playbook finds healthy: files with mtimes, process, caches."""
        return {"tree": self.tree(host, mtimes=True), "process": self.service_process(host),
                "redis": self.redis_keys(host), "postgres": self.pg_rows(host)}


@contextlib.contextmanager
def running_lab(size: int, work: Path) -> Iterator[Fleet]:
    """A fresh lab of ``size`` hosts, up for the ``with`` block; always taken down and removed."""
    require_lab_prerequisites()
    handle = LabHandle(new_lab_dir())
    try:
        handle.cli("up", str(size))
        yield Fleet(handle, work)
    finally:
        handle.cli("down", check=False)
        shutil.rmtree(handle.dir, ignore_errors=True)
