"""The port_conflict playbook as an unprivileged remote user, on a real sshd host.

The port is held by a process of root (this test's own listening socket):
the remote user sees the socket (``ss``, ``/proc/net/tcp``) but not its
process, so the holder cannot be told from the service. The host must fail
in diagnosis with what to do, and nothing may change on it (before the
fix, the unknown holder counted as a foreign program and the service was
moved to the fallback port).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.testing import Sshd
from tests.support.accounts import Account
from tests.support.loopback import closed_port, silent_listener

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(account: Account) -> Iterator[Path]:
    """A directory under /tmp that belongs to the test account (the service's files)."""
    directory = Path(tempfile.mkdtemp(prefix="remedy-port-", dir="/tmp"))
    shutil.chown(directory, account.name, account.name)
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def run_port_conflict(sshd: Sshd, account: Account, site: Path, *extra: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    params = sshd.params("web1", user=account.name)
    inventory = site / "hosts.ini"
    inventory.write_text(
        "[coze]\n"
        f"web1 ansible_host=127.0.0.1 ansible_port={params.port} ansible_user={account.name} "
        f"ansible_ssh_private_key_file={params.key_file} remedy_known_hosts={params.known_hosts} "
        f"remedy_lock_path={site}/remedy.lock coze_config={site}/config.yaml "
        f"coze_pid_file={site}/coze.pid coze_service_manager=pidfile coze_service_start=/bin/true "
        f"fallback_port={closed_port()}\n")
    argv = [sys.executable, "-m", "runner", "run", "port_conflict", "-i", str(inventory),
            "-F", str(params.ssh_config), "--format", "json", "--audit-log", str(site / "audit.jsonl"),
            *extra]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    return done.returncode, json.loads(done.stdout), done.stderr


@pytest.mark.parametrize("method", ["ss", "proc"])
def test_a_holder_the_remote_user_cannot_see_fails_the_diagnosis_and_changes_nothing(
    shared_sshd: Sshd, account: Account, site: Path, method: str
) -> None:
    config = site / "config.yaml"
    with silent_listener() as port:  # held by root: this process
        config.write_text(f"name: coze\nport: {port}\n")
        shutil.chown(config, account.name, account.name)
        rc, document, stderr = run_port_conflict(shared_sshd, account, site, "-e",
                                                 f"port_probe_method={method}")
    assert rc == 2, stderr
    [host] = document["hosts"]
    assert host["status"] == "failed", host
    tasks = {t["task"]: t for t in host["tasks"]}
    holder = tasks["port_conflict:holder"]
    assert holder["status"] == "failed", holder
    uid = os.stat(site).st_uid
    assert f"port {port} is held by a socket on 127.0.0.1:{port} whose process is not visible" \
        in holder["message"], holder
    assert f"the remote user (uid {uid}) cannot see the processes of other users" in holder["message"]
    assert "run as root" in holder["message"] and "nothing was changed" in holder["message"]
    ran = [t["task"] for t in host["tasks"] if t["phase"] != "diagnose" and t["status"] != "failed"]
    assert not ran, f"tasks past the diagnosis: {ran}"
    assert not [t["task"] for t in host["tasks"] if t["changed"]]
    assert config.read_text() == f"name: coze\nport: {port}\n"
