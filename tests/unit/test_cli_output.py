"""What the person on call reads: the plan on stdout with its diffs and summary, fitted to the terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.cli.program import main

SECRET = "Sekrit-token-4242"
BOOK = """
- hosts: all
  vars:
    conf: "{root}/{{{{ inventory_hostname }}}}/etc/coze/config.yaml"
    token: !secret {secret}
  diagnose:
    - name: the port is free or held by the service itself
      assert:
        that: "inventory_hostname == 'b'"
        fail_msg: "port 8080 is held by pid 4242 (python3 -m http.server)"
  tasks:
    - id: move
      name: move the service to the fallback port in its config
      lineinfile: {{path: "{{{{ conf }}}}", regexp: "^port:", line: "port: 8081"}}
    - id: token
      name: write the service's token
      lineinfile: {{path: "{{{{ conf }}}}", regexp: "^token:", line: "token: {{{{ token }}}}"}}
    - id: hidden
      name: a change nobody may see
      no_log: true
      lineinfile: {{path: "{{{{ conf }}}}", regexp: "^hidden:", line: "hidden: HIDDEN-VALUE-9"}}
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Hosts a (its port is held: the fault) and b (healthy) on the local connection, at COLUMNS=100."""
    monkeypatch.setenv("COLUMNS", "100")
    root = tmp_path / "a-rather-long-directory-name-that-pushes-paths-wide" / "hosts"
    for host in ("a", "b"):
        conf = root / host / "etc" / "coze" / "config.yaml"
        conf.parent.mkdir(parents=True)
        conf.write_text("# config\nport: 8080\ntoken: old\nhidden: x\n")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("a ansible_connection=local\nb ansible_connection=local\n")
    book = tmp_path / "port_move.yml"
    book.write_text(BOOK.format(root=root, secret=SECRET))
    return inventory, book


def remedy(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--audit-log", str(tmp_path / "audit.jsonl")])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_plan_prints_its_table_and_diffs_on_stdout_and_ends_with_a_summary(
        tmp_path: Path, site: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    inventory, book = site
    code, out, err = remedy(capsys, tmp_path, "plan", str(book), "-i", str(inventory))
    assert code == 0, err
    assert "-port: 8080" in out and "+port: 8081" in out
    assert "-port: 8080" not in err
    assert out.rstrip("\n").splitlines()[-1] == "Plan: 1 host will change (3 changes), 1 healthy, 0 unknown"
    assert "a: move the service to the fallback port in its config" in out
    assert "+token: ********" in out
    assert SECRET not in out + err
    assert "HIDDEN-VALUE-9" not in out + err
    quiet_code, quiet_out, quiet_err = remedy(capsys, tmp_path, "plan", str(book), "-i", str(inventory), "-q")
    assert quiet_code == 0 and "+port: 8081" in quiet_out and quiet_err == ""


def test_a_plan_that_changes_nothing_says_so_in_its_summary(
        tmp_path: Path, site: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    inventory, book = site
    code, out, _ = remedy(capsys, tmp_path, "plan", str(book), "-i", str(inventory), "-l", "b")
    assert code == 0
    assert "No changes: the plan would change nothing on any host." in out
    assert out.rstrip("\n").splitlines()[-1] == "Plan: 0 hosts will change (0 changes), 1 healthy, 0 unknown"
