"""Inputs the command line checks before any host is contacted: SSH files, and the audit default it shows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner.cli.program import main

REPO = Path(__file__).resolve().parents[2]
BOOK = "- hosts: all\n  tasks:\n    - debug: {msg: hi}\n"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "book.yml").write_text(BOOK)
    (tmp_path / "known_hosts.d").mkdir()
    (tmp_path / "id_ed25519").write_text("not really a key\n")
    return tmp_path


def run(site: Path, inventory: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    (site / "hosts.ini").write_text(inventory)
    code = main(["run", str(site / "book.yml"), "-i", str(site / "hosts.ini"),
                 "--audit-log", str(site / "audit.jsonl"), *args])
    return code, capsys.readouterr().err


# port 9 on loopback: a connection attempt would fail (exit 3), never reach exit 4
SSH = "ansible_host=127.0.0.1 ansible_port=9"


def test_a_missing_private_key_is_exit_4_naming_the_hosts_the_variable_and_the_fix(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(site, f"[web]\nweb1 {SSH} ansible_ssh_private_key_file={site}/nokey\n"
                          f"web2 {SSH} ansible_ssh_private_key_file={site}/nokey\n"
                          f"local1 ansible_connection=local ansible_ssh_private_key_file={site}/nokey\n",
                    capsys)
    assert code == 4
    assert (f"hosts.ini:2: ansible_ssh_private_key_file '{site}/nokey' does not exist "
            "(hosts web1, web2)") in err
    assert "set ansible_ssh_private_key_file to the path of a private key file in the inventory" in err
    assert "local1" not in err  # a local host uses no key
    assert not (site / "audit.jsonl").exists()  # nothing ran


def test_a_private_key_option_that_is_a_directory_is_exit_4(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(site, f"web1 {SSH}\n", capsys, "--private-key", str(site))
    assert code == 4
    assert f"<command line --private-key>: --private-key '{site}' is a directory (host web1)" in err
    assert "pass --private-key the path of a private key file" in err


@pytest.mark.parametrize("where", ["inventory", "option"])
def test_a_known_hosts_path_that_is_a_directory_is_exit_4(
        site: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    directory = site / "known_hosts.d"
    key = f"ansible_ssh_private_key_file={site}/id_ed25519"
    if where == "inventory":
        code, err = run(site, f"web1 {SSH} {key} remedy_known_hosts={directory}\n", capsys)
        assert f"hosts.ini:1: remedy_known_hosts '{directory}' is a directory (host web1)" in err
    else:
        code, err = run(site, f"web1 {SSH} {key}\n", capsys, "--known-hosts", str(directory))
        assert f"--known-hosts '{directory}' is a directory (host web1)" in err
    assert code == 4 and "the path of a known_hosts file" in err
    assert not (site / "audit.jsonl").exists()


def test_run_help_shows_the_audit_log_that_a_run_really_writes(site: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(site / "state"), "PYTHONPATH": str(REPO), "COLUMNS": "300"}
    shown = subprocess.run([sys.executable, "-m", "runner", "run", "--help"], capture_output=True,
                           text=True, env=env, check=True).stdout
    default = site / "state" / "remedy" / "audit.jsonl"
    assert f"(default {default})" in shown
    assert "remedy-audit.jsonl" not in shown
    (site / "hosts.ini").write_text(f"local1 ansible_connection=local remedy_lock_path={site}/lock\n")
    done = subprocess.run([sys.executable, "-m", "runner", "run", str(site / "book.yml"), "-i",
                           str(site / "hosts.ini")], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert '"event": "run_start"' in default.read_text()
