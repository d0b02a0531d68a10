"""What the person on call reads when a host cannot be reached: one failure, one line, one hint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from runner.testing import Sshd
from tests.unit.test_cli_output import FAULTY, recap, section

REPO = Path(__file__).resolve().parents[2]


def test_an_authentication_failure_is_one_unreachable_record_and_one_failure_with_a_hint(
        shared_sshd: Sshd, tmp_path: Path) -> None:
    params = shared_sshd.params("web1")
    stranger = tmp_path / "stranger_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    (tmp_path / "hosts.yml").write_text(json.dumps({"all": {"hosts": {"web1": {
        "ansible_host": "127.0.0.1", "ansible_port": params.port, "ansible_user": params.user,
        "ansible_ssh_private_key_file": str(stranger), "remedy_known_hosts": params.known_hosts}}}}))
    books = []
    for name in ("first", "second"):
        books.append(str(tmp_path / f"{name}.yml"))
        Path(books[-1]).write_text(FAULTY.format(name=name))
    argv = [sys.executable, "-m", "runner", "run", *books, "-i", str(tmp_path / "hosts.yml"),
            "-F", str(params.ssh_config), "--audit-log", str(tmp_path / "audit.jsonl"),
            "--junit", str(tmp_path / "junit.xml")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
                          env={**os.environ, "COLUMNS": "100"})
    assert done.returncode == 3, done.stderr
    shown = [line for line in done.stderr.splitlines() if line.startswith("[web1]")]
    assert len(shown) == 1 and shown[0].startswith("[web1] UNREACHABLE - auth: "), shown
    row = recap(done.stdout)["web1"]
    assert (row["result"], row["skipped"], row["unreachable"], row["total"]) == ("unreachable", "7", "1", "8")
    failures = section(done.stdout, "Failures (one root cause per host):")
    assert failures.startswith("Failures (one root cause per host): web1: UNREACHABLE: auth: ")
    assert failures.endswith(" fix: check the remote user and key: -u USER, --private-key FILE, "
                             "or ansible_user and ansible_ssh_private_key_file in the inventory")
