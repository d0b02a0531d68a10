"""First contact with hosts whose keys are unknown: one paragraph per run says what to do, and
doing what it says (its ssh-keyscan commands) lets the next run in."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.cli.program import main
from runner.testing import SshdFleet

HOSTS = 3


@pytest.fixture(scope="module")
def fleet() -> Iterator[SshdFleet]:
    with SshdFleet(HOSTS) as servers:
        yield servers


def site(tmp_path: Path, fleet: SshdFleet) -> Path:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    (tmp_path / "book.yml").write_text("- hosts: all\n  tasks:\n    - {name: look, command: 'true'}\n")
    (tmp_path / "ssh_config").write_text("")
    (tmp_path / "hosts.ini").write_text("".join(
        f"{p.name} ansible_host=127.0.0.1 ansible_port={p.port} ansible_user={p.user} "
        f"ansible_ssh_private_key_file={p.key_file} remedy_known_hosts={known_hosts} "
        f"remedy_lock_path={tmp_path}/{p.name}.lock\n" for p in fleet.params()))
    return tmp_path


def remedy(site: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["run", str(site / "book.yml"), "-i", str(site / "hosts.ini"), "-F", str(site / "ssh_config"),
                 "--audit-log", str(site / "audit.jsonl")])
    out, err = capsys.readouterr()
    return code, out + err


def test_unknown_host_keys_get_one_paragraph_naming_every_host_and_how_to_record_them(
    tmp_path: Path, fleet: SshdFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    where = site(tmp_path, fleet)
    code, shown = remedy(where, capsys)
    assert code == 3
    assert shown.count("First contact:") == 1
    assert "First contact: 3 hosts (host01, host02, host03) offered a host key" in shown
    assert "--accept-new-host-keys" in shown
    for server in fleet:
        assert server.host_key_fingerprint in shown  # each host's own fingerprint is still reported
    commands = [line.strip() for line in shown.splitlines() if line.startswith("  ssh-keyscan")]
    expected = [f"ssh-keyscan -p {server.port} 127.0.0.1 >> {where}/known_hosts" for server in fleet]
    assert sorted(commands) == sorted(expected)
    for command in commands:
        subprocess.run(command, shell=True, check=True, capture_output=True)  # noqa: S602 - the advice itself
    code, shown = remedy(where, capsys)
    assert code == 0, shown
    assert "First contact" not in shown
