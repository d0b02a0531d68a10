"""The audit log's disk fills up: a designed stop, not a crash.

The audit log lives on a tmpfs of two pages mounted by the test (root only),
one of them taken by a filler file, so that write(2) on the log fails with
ENOSPC after 4 KiB: mid-run, or at once when the filler takes both pages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.prerequisites import require

PAGE = 4096
TASKS = 40
HOSTS = ("a", "b")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """``small_disk(free_pages)``: a directory on a two-page tmpfs with that many pages left."""
    require(os.geteuid() == 0, "mounting a tmpfs needs root")
    require(shutil.which("mount") is not None and shutil.which("umount") is not None, "mount not found")
    mounted: list[Path] = []

    def make(free_pages: int) -> Path:
        point = tmp_path / "disk"
        point.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={2 * PAGE},mode=0700", "tmpfs", str(point)],
                       check=True)
        mounted.append(point)
        (point / "filler").write_bytes(b"x" * PAGE * (2 - free_pages))
        return point

    yield make
    for point in mounted:
        subprocess.run(["umount", str(point)], check=True)


def remedy_run(tmp_path: Path, audit: Path) -> tuple[int, dict[str, Any], str]:
    """``remedy run`` of TASKS changing tasks on two local hosts; exit code, JSON document, stderr."""
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("".join(f"{h} ansible_connection=local remedy_lock_path={tmp_path}/{h}.lock\n"
                                 for h in HOSTS))
    log = f"{tmp_path}/{{{{ inventory_hostname }}}}.changes"
    tasks = "".join(f"    - name: change {n}\n      shell: \"echo {n} >> {log}\"\n" for n in range(TASKS))
    book = tmp_path / "book.yml"
    book.write_text(f"- hosts: all\n  tasks:\n{tasks}")
    done = subprocess.run([sys.executable, "-m", "runner", "run", str(book), "-i", str(inventory),
                           "--audit-log", str(audit), "--format", "json"],
                          capture_output=True, text=True, timeout=120)
    return done.returncode, json.loads(done.stdout), done.stderr


def changes_made(tmp_path: Path, host: str) -> int:
    path = tmp_path / f"{host}.changes"
    return len(path.read_text().split()) if path.exists() else 0


def audited_changes(audit: Path) -> dict[str, int]:
    """Changed tasks per host in the audit log's whole records (a last torn line is not one)."""
    counts = dict.fromkeys(HOSTS, 0)
    for line in audit.read_bytes().split(b"\n")[:-1]:
        record = json.loads(line)
        if record["event"] == "task_end" and record["changed"]:
            counts[record["host"]] += 1
    return counts


def test_a_full_disk_mid_run_stops_new_changes_and_still_reports_everything(
        tmp_path: Path, small_disk: Callable[[int], Path]) -> None:
    audit = small_disk(1) / "audit.jsonl"
    code, document, err = remedy_run(tmp_path, audit)
    assert code == 5, err
    assert "internal error" not in err
    assert "the audit log could not be written: nothing further was changed" in err
    assert "No space left on device" in document["audit_error"]
    assert document["exit_code"] == 5 and "RECAP" in err
    assert len(audit.read_bytes()) == PAGE  # the log filled its page, then could not grow
    audited = audited_changes(audit)
    for host in document["hosts"]:
        statuses = [task["status"] for task in host["tasks"]]
        assert len(statuses) == TASKS
        changed = statuses.count("changed")
        # every change made is in the JSON; once the log failed, nothing new started
        assert changes_made(tmp_path, host["host"]) == changed
        assert statuses == ["changed"] * changed + ["not_run"] * (TASKS - changed)
        # at most the one task in flight on this host when the log failed is missing from it
        assert changed - 1 <= audited[host["host"]] <= changed
    assert 0 < sum(audited.values()) < TASKS


def test_a_disk_full_from_the_start_changes_nothing(tmp_path: Path,
                                                     small_disk: Callable[[int], Path]) -> None:
    audit = small_disk(0) / "audit.jsonl"
    code, document, err = remedy_run(tmp_path, audit)
    assert code == 5, err
    assert audit.read_bytes() == b""
    assert all(changes_made(tmp_path, host) == 0 for host in HOSTS)
    assert {task["status"] for host in document["hosts"] for task in host["tasks"]} == {"not_run"}
    assert "the audit log could not be written: nothing further was changed" in err
