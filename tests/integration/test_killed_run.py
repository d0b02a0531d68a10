"""A run killed mid-upload (SIGKILL) leaves no temp file behind for good, and the next run says so.

A real ``remedy run`` copies 128 MiB to a real sshd host and is killed with
SIGKILL as soon as its temp file appears in the destination directory. When
only remedy dies, the upload script on the host cleans up after itself; when
the host side is killed outright too (no trap runs), the temp file stays
until the next upload into that directory finds that its writer is gone.
Either way the next run warns that the killed run did not finish, and ends
with the file in place and no temp file left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from runner.testing import Sshd
from tests.support.waiting import wait_until


def remedy(tmp_path: Path) -> list[str]:
    return [sys.executable, "-m", "runner", "run", str(tmp_path / "book.yml"),
            "-i", str(tmp_path / "hosts.ini"), "--audit-log", str(tmp_path / "audit.jsonl"),
            "--ssh-config", os.devnull]


def prepare(tmp_path: Path, sshd: Sshd) -> Path:
    """A playbook that copies 128 MiB into ``dest/``, and an inventory of one host on ``sshd``."""
    (tmp_path / "big.txt").write_bytes((b"y" * 1023 + b"\n") * 128 * 1024)
    dest = tmp_path / "dest"
    dest.mkdir()
    (tmp_path / "hosts.ini").write_text(
        f"web1 ansible_host=127.0.0.1 ansible_port={sshd.port} ansible_user={sshd.user} "
        f"ansible_ssh_private_key_file={sshd.client_key} remedy_known_hosts={sshd.known_hosts} "
        f"remedy_lock_path={tmp_path}/lock\n")
    (tmp_path / "book.yml").write_text(
        "- hosts: all\n  tasks:\n    - name: big copy\n"
        f"      copy: {{src: {tmp_path}/big.txt, dest: {dest}/big.txt}}\n")
    return dest


def temp_files(dest: Path) -> list[Path]:
    return sorted(dest.glob(".remedy.*"))


def writers(path: Path) -> list[int]:
    """The processes that have ``path`` open."""
    found = []
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd) == str(path):
                found.append(int(fd.parts[2]))
        except OSError:
            continue  # ended meanwhile
    return found


def run_started(audit: Path) -> str:
    first = json.loads(audit.read_text().splitlines()[0])
    assert first["event"] == "run_start"
    return str(first["run_id"])


@pytest.mark.parametrize("kill_host_side", [False, True],
                         ids=["remedy killed", "remedy and its upload killed"])
def test_the_next_run_warns_and_no_temp_file_of_a_killed_upload_stays(
    shared_sshd: Sshd, tmp_path: Path, kill_host_side: bool
) -> None:
    dest = prepare(tmp_path, shared_sshd)
    first = subprocess.Popen(remedy(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    groups: set[int] = set()
    try:
        temp = wait_until(lambda: [t for t in temp_files(dest) if writers(t)], timeout=30,
                          what="the upload's temp file, open for writing")[0]
        if kill_host_side:  # frozen first, so that it cannot clean up when remedy goes
            groups = {os.getpgid(pid) for pid in writers(temp)}
            for group in groups:
                os.killpg(group, signal.SIGSTOP)
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
    run_id = run_started(tmp_path / "audit.jsonl")
    if kill_host_side:
        for group in groups:  # no trap runs on SIGKILL
            os.killpg(group, signal.SIGKILL)
        wait_until(lambda: not writers(temp), what="the upload's processes to end")
        assert temp.exists()  # nothing on the host cleaned it up
    again = subprocess.run(remedy(tmp_path), capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stderr
    assert temp_files(dest) == []
    assert f"the run {run_id} started" in again.stderr and "did not finish" in again.stderr
    assert (dest / "big.txt").read_bytes() == (tmp_path / "big.txt").read_bytes()
    third = subprocess.run(remedy(tmp_path), capture_output=True, text=True, timeout=300, check=False)
    assert third.returncode == 0 and "did not finish" not in third.stderr, third.stderr
