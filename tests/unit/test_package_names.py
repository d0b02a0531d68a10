"""Package and distribution names are checked: literal ones when loaded, templated ones once rendered."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.cli.program import main
from runner.events import NullListener
from runner.load.argcheck import check_value
from runner.load.inputs import load_inputs
from runner.modules import MODULES
from runner.plan.hosts import RunOptions
from runner.run.executor import execute

BOOK = """
- hosts: all
  tasks:
    - id: before
      command: touch TMP/before-ran
    - id: install
      package:
        name: NAME
    - id: python
      pip:
        name: [coze-lab-plugin]
        virtualenv: TMP/venv
    - id: after
      command: touch TMP/after-ran
"""


def write_site(tmp_path: Path, name: str, host_vars: str = "") -> tuple[Path, Path]:
    book = tmp_path / "book.yml"
    book.write_text(BOOK.replace("TMP", str(tmp_path)).replace("NAME", name))
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"local ansible_connection=local remedy_lock_path={tmp_path / 'lock'} {host_vars}\n")
    return book, inventory


@pytest.mark.parametrize("name", ["'jq;touch CANARY'", "[jq, '$(touch CANARY)']", "'-oDir=/tmp'",
                                  "'jq curl'", "[jq, 'a`touch CANARY`']"])
def test_a_literal_name_with_shell_metacharacters_is_exit_4_before_any_host(
        tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    book, inventory = write_site(tmp_path, name.replace("CANARY", str(tmp_path / "canary")))
    code = main(["run", str(book), "-i", str(inventory), "--audit-log", str(tmp_path / "audit.jsonl")])
    err = capsys.readouterr().err
    assert code == 4, err
    assert "book.yml:8:" in err and "not a package name" in err, err
    assert not (tmp_path / "before-ran").exists() and not (tmp_path / "canary").exists()


def test_a_templated_name_that_renders_bad_fails_the_host_before_the_task_sends_anything(
        tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    book, inventory = write_site(tmp_path, '"{{ wanted }}"', f"wanted='jq;touch {canary}'")
    run = execute(load_inputs([str(book)], [str(inventory)]), RunOptions(lock_path=str(tmp_path / "lock")),
                  NullListener())
    results = {r.task.split(":", 1)[1]: r for r in run.all_results()}
    install = results["install"]
    assert str(install.status) == "failed"
    assert "argument 'name' has the string 'jq;touch" in install.message
    assert "not a package name" in install.message
    assert install.commands == ()  # nothing was sent for it, not even its probe
    assert not canary.exists()
    assert {str(results[t].status) for t in ("python", "after")} == {"skipped"}


def test_rendered_lists_are_checked_element_by_element() -> None:
    spec = MODULES["package"].args["name"]
    assert check_value(spec, ["jq", "libpq5", "g++", "libc6:amd64", "python3.11"]) == (
        ["jq", "libpq5", "g++", "libc6:amd64", "python3.11"], None)
    assert check_value(spec, "jq")[0] == ["jq"]
    for bad in (["jq", "a b"], ["-y"], ["x>y"], [""], [True], ["jq\n"], "a|b"):
        assert check_value(spec, bad)[1] is not None, bad
    assert check_value(spec, ["{{ name }}"])[1] is None  # checked once rendered


def test_pip_names_may_pin_a_version_but_not_compare() -> None:
    spec = MODULES["pip"].args["name"]
    assert check_value(spec, ["PyYAML==6.0.1", "coze_lab.plugin", "a"])[1] is None
    for bad in (["PyYAML>=6"], ["x[extra]"], ["pkg==1.*"], ["-e ."], ["pkg;reboot"]):
        assert check_value(spec, bad)[1] is not None, bad
