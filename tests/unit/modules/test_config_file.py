"""config_file on real files through this machine's sh: the probe, the judging, and each state converging."""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

import pytest

from runner.modules.configcheck import ALIAS_BUDGET, judge_text, make_schema
from runner.modules.configprobe import SIZE_LIMIT
from tests.unit.modules.localrun import apply, converge, plan
from tests.unit.test_executor import mark_module, run  # noqa: F401 - fixture

SCHEMA = {"required": ["port", "data_dir"], "types": {"port": "port", "data_dir": "dir", "name": "str"}}
CHECKER = """#!/bin/sh
# a service's own checker: port 9999 is not accepted, whatever the YAML says
if grep -q 'port: 9999' "$1"; then echo "port 9999 is reserved" >&2; exit 2; fi
echo "config $1: OK"
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A config dir with a hostile name, its data dir, copies dir and the service's checker."""
    root = tmp_path / "co ze;$(touch pwned) 'q\""
    (root / "data").mkdir(parents=True)
    (root / "good copies").mkdir()
    checker = root / "check me"
    checker.write_text(CHECKER)
    checker.chmod(0o755)
    return root


def good(site: Path, port: int = 8080) -> str:
    """A valid config; its data_dir is a plain YAML scalar, whatever the dir's name holds."""
    return f"port: {port}\ndata_dir: {site / 'data'}  # the data\n"


def checker(site: Path, name: str) -> str:
    return f"{shlex.quote(str(site / name))} %s"


def check_args(site: Path, config: Path) -> dict[str, object]:
    return {"path": str(config), "state": "checked", "check": checker(site, "check me"), **SCHEMA}


def test_checked_names_the_yaml_error_line_and_column_and_what_the_checker_says(site: Path) -> None:
    config = site / "config.yaml"
    config.write_text(good(site) + "name: web\n  extra: x\n")
    change = plan("config_file", check_args(site, config))
    assert not change.failed and change.data["ok"] is False
    assert (change.data["line"], change.data["column"]) == (4, 8)
    assert change.data["problems"][0] == "line 4, column 8: invalid YAML: mapping values are not allowed here"
    assert len(change.data["problems"]) == 1  # this checker only reads the port: it accepts the file


def test_checked_reads_real_paths_quoted_or_not_and_the_checker_verdict(site: Path) -> None:
    config = site / "config.yaml"
    config.write_text(good(site))
    assert plan("config_file", check_args(site, config)).data["ok"] is True
    config.write_text(f"port: 9999\ndata_dir: {site / 'no such dir'}\n")
    change = plan("config_file", check_args(site, config))
    assert change.data["problems"] == [f"data_dir: {site / 'no such dir'} does not exist",
                                       "the service's checker exits 2: port 9999 is reserved"]
    config.write_text(f"port: 1\ndata_dir: \"{site.parent / 'gone'}\"\n")  # a quoted value is read too
    assert plan("config_file", check_args(site, config)).data["problems"] == [
        f"data_dir: {site.parent / 'gone'} does not exist"]


def test_checked_fails_instead_of_judging_when_the_checker_cannot_run(site: Path) -> None:
    config = site / "config.yaml"
    config.write_text(good(site))
    args = {**check_args(site, config), "check": checker(site, "no checker")}
    change = plan("config_file", args)
    assert change.failed.startswith(f"{config}: the checker cannot run on this host (exit 127")
    (site / "check me").chmod(0o644)
    assert "(exit 126" in plan("config_file", check_args(site, config)).failed


def test_checked_judges_bytes_that_are_not_utf8_and_refuses_a_large_file(site: Path) -> None:
    config = site / "config.yaml"
    config.write_bytes(good(site).encode() + b"name: caf\xe9\n")
    assert plan("config_file", check_args(site, config)).data["problems"] == [
        "it is not UTF-8 text (byte 0xe9 at line 3, column 10)"]
    config.write_text("port: 1\n" + "#" * SIZE_LIMIT + "\n")
    assert "larger than 64 KiB" in plan("config_file", check_args(site, config)).failed


def test_an_alias_bomb_is_a_problem_not_a_hang() -> None:
    levels = "abcdefghi"
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip(levels, levels[1:], strict=False))
    schema = make_schema(["port"], {})
    assert not isinstance(schema, str)
    verdict = judge_text(bomb, schema)
    assert verdict.problems == (f"invalid YAML: its aliases expand to more than {ALIAS_BUDGET} values",)


def test_restored_skips_an_invalid_newer_copy_keeps_evidence_and_reverted_puts_it_back(site: Path) -> None:
    config = site / "config.yaml"
    broken = good(site).replace("port: 8080", "port: [8080")
    config.write_text(broken)
    os.chown(config, 0, 65534)
    config.chmod(0o640)
    copies = site / "good copies"
    (copies / "config.yaml.1").write_text(good(site, 8081))
    (copies / "config.yaml.2").write_text(good(site, 9999))  # newer, refused by the checker
    os.utime(copies / "config.yaml.1", (1000, 1000))
    os.utime(copies / "config.yaml.2", (2000, 2000))
    evidence = site / "config.yaml.remedy-broken-1"
    args = {"path": str(config), "state": "restored", "source": "last_good", "backup_dir": str(copies),
            "pattern": "config.yaml.*", "evidence": str(evidence), "check": checker(site, "check me"),
            **SCHEMA}
    first = converge("config_file", args)
    assert "config.yaml.2: the service's checker exits 2: port 9999 is reserved" in first.summary
    assert config.read_text() == good(site, 8081) and evidence.read_text() == broken
    info = os.stat(config)
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 65534, 0o640)
    undo = {"path": str(config), "state": "reverted", "evidence": str(evidence)}
    converge("config_file", undo)
    assert config.read_text() == broken and evidence.read_text() == broken
    assert os.stat(config).st_gid == 65534 and not (site.parent / "pwned").exists()


def test_saved_keeps_the_newest_copies_and_converges(site: Path) -> None:
    config = site / "config.yaml"
    config.write_text(good(site))
    copies = site / "new copies"
    args = {"path": str(config), "state": "saved", "backup_dir": str(copies), "pattern": "config.yaml.*",
            "name": "config.yaml.3", "keep": 2}
    converge("config_file", args)
    assert stat.S_IMODE(os.stat(copies).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(copies / "config.yaml.3").st_mode) == 0o600
    for name, when in (("config.yaml.1", 1000), ("config.yaml.2", 2000)):
        (copies / name).write_text(name)
        os.utime(copies / name, (when, when))
    os.utime(copies / "config.yaml.3", (500, 500))  # now the oldest: the config is saved again
    converge("config_file", {**args, "name": "config.yaml.4"})
    assert sorted(p.name for p in copies.iterdir()) == ["config.yaml.2", "config.yaml.4"]


def test_restored_refuses_when_no_source_is_valid_and_changes_nothing(site: Path) -> None:
    config = site / "config.yaml"
    config.write_text("port: x\n")
    args = {"path": str(config), "state": "restored", "source": "default", "default": str(site / "missing"),
            "evidence": str(site / "evidence"), **SCHEMA}
    change = plan("config_file", args)
    assert change.failed == f"the packaged default {site / 'missing'} does not pass the checks: " \
                            f"{site / 'missing'}: it is missing"
    assert apply(change) == [] and config.read_text() == "port: x\n"


def test_values_of_secret_looking_keys_found_on_the_host_are_masked_in_every_output(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("port: 80800\ndb_password: 'hunter2-from-the-host'\napi:\n  token: tok-123456 # x\n"
                      "  broken: [\n")
    (tmp_path / "hosts.ini").write_text("h0 ansible_connection=local\n")
    book = f"""
- hosts: all
  tasks:
    - config_file: {{path: {config}, state: checked, required: [port], types: {{port: port}}}}
      register: judged
    - debug: {{msg: "{{{{ judged.summary }}}}"}}
"""
    result, _, _ = run(tmp_path, tmp_path / "hosts.ini", book)
    shown = repr([(r.message, r.commands, r.data) for h in result.hosts for r in h.results])
    assert "line 6, column 1: invalid YAML" in shown and "80800" in shown, "judged, its probe recorded"
    assert "hunter2-from-the-host" not in shown and "tok-123456" not in shown
