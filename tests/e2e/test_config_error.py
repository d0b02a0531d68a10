"""config_error on a lab of real sshd hosts: a broken config is diagnosed, replaced, verified or put back.

One lab (``LAB_SIZE`` hosts) serves the module; each test breaks hosts and
the ``fleet`` fixture resets them afterwards. The three lab faults (a YAML
syntax error, a port out of range while the service still runs, a missing
key) are fixed from each source (the last known good copy, the template,
the packaged default) with the plan predicting exactly what the run does;
the broken file is kept beside the config as evidence; a forced
verification failure puts it back byte for byte; secrets in the config are
masked in every output.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import LabHandle
from tests.e2e.fleet import RUNTIME, Fleet
from tests.e2e.test_playbooks import FORCE_FAILURE, check_fleet_run

LAB_SIZE = 4
CONFIG = "etc/coze/config.yaml"
COPIES = "var/backups/coze/config"
CANARY = "canary-admin-token-5b2f9e"  # in a config, known only on the host
REGISTERED = "canary-registered-77d1c4"  # a registered secret variable


@pytest.fixture(scope="module")
def lab4(shared_lab: Callable[[int], LabHandle], tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    """The session's lab of LAB_SIZE hosts (shared with the other modules of that size)."""
    return Fleet(shared_lab(LAB_SIZE), tmp_path_factory.mktemp("config_error"))


@pytest.fixture
def fleet(lab4: Fleet) -> Iterator[Fleet]:
    yield lab4
    lab4.reset_touched()


def config(fleet: Fleet, host: str) -> Path:
    return fleet.lab.root(host) / CONFIG


def evidence(fleet: Fleet, host: str) -> list[Path]:
    return sorted(config(fleet, host).parent.glob("config.yaml.remedy-broken-*"))


def copies(fleet: Fleet, host: str) -> list[Path]:
    return sorted((fleet.lab.root(host) / COPIES).iterdir())


def without_evidence(tree: dict[str, Any]) -> dict[str, Any]:
    return {path: entry for path, entry in tree.items() if ".remedy-broken-" not in path}


def test_each_fault_is_fixed_from_each_source(fleet: Fleet) -> None:
    """A syntax error from the last good copy, a bad port from the template, a lost key from the default."""
    fleet.break_host("host01", "config_syntax")
    fleet.break_host("host02", "config_invalid_value")
    fleet.break_host("host03", "config_missing_key")
    fleet.break_host("host04", "cache_stale_files")  # another fault: not this playbook's business
    broken = {h: config(fleet, h).read_bytes() for h in ("host01", "host02", "host03")}
    newest_copy = copies(fleet, "host01")[-1].read_bytes()
    sources = fleet.extra_inventory("sources", {"host02": {"config_fix": "template"},
                                                "host03": {"config_fix": "default"}})
    check_fleet_run(fleet, "config_error", {h: ["fix", "restart"] for h in broken}, inventories=(sources,))

    for host, before in broken.items():
        [kept] = evidence(fleet, host)
        assert kept.read_bytes() == before, f"{host}: the evidence is the broken file"
    assert config(fleet, "host01").read_bytes() == newest_copy
    rendered = config(fleet, "host02").read_text()
    assert "rendered by remedy" in rendered and "redis_url:" in rendered, "the overrides are kept"
    default = (fleet.lab.root("host03") / "usr/share/coze/config.yaml").read_bytes()
    assert config(fleet, "host03").read_bytes() == default
    for host in ("host02", "host03"):  # a verified config that differs from every copy is kept
        assert copies(fleet, host)[-1].read_bytes() == config(fleet, host).read_bytes()
        assert oct(copies(fleet, host)[-1].stat().st_mode & 0o777) == "0o600"
    assert len(copies(fleet, "host01")) == 3, "the newest copy already held the fixed config"
    assert oct(config(fleet, "host02").stat().st_mode & 0o777) == "0o640"  # the config keeps its mode


def test_diagnose_names_the_fault_with_its_line_and_column(fleet: Fleet) -> None:
    fleet.break_host("host02", "config_syntax")
    fleet.break_host("host03", "config_invalid_value")
    found = fleet.remedy("diagnose", "", "-l", "host02,host03")
    assert found.rc == 0, found.explain()
    faults = {(d["host"], d["playbook"]): d for d in found.doc["diagnosis"] if d["diagnosis"] == "fault"}
    # a port that is not a port is config_error's fault first: port_conflict runs after it
    # host02's service is down because of its config: service_down reports it too (it runs last)
    assert set(faults) == {("host02", "config_error"), ("host02", "service_down"), ("host03", "config_error"),
                           ("host03", "port_conflict")}, faults
    assert faults[("host03", "port_conflict")]["blocked_by"] == "config_error"
    assert "port_conflict (runs after config_error)" in found.stderr
    syntax = faults[("host02", "config_error")]["evidence"][0]
    assert f"{config(fleet, 'host02')}: line 7, column 11: invalid YAML: mapping values are not allowed " \
           "here; the service's checker exits 2" in syntax
    port = faults[("host03", "config_error")]["evidence"][0]
    assert "port: expected an integer 1-65535, got " in port


@pytest.mark.parametrize(("host", "faults"), [("host01", ["config_syntax"]),
                                              ("host04", ["cache_stale_redis", "config_invalid_value"])])
def test_a_failed_verification_puts_the_broken_config_back_byte_for_byte(
        fleet: Fleet, host: str, faults: list[str]) -> None:
    fleet.break_host(host, *faults)
    broken = config(fleet, host).read_bytes()
    before = {"tree": fleet.tree(host, mtimes=False, skip=RUNTIME), "redis": fleet.redis_keys(host),
              "process": fleet.service_process(host)}
    run = fleet.remedy("run", "config_error", "-l", host, "-e", FORCE_FAILURE)
    assert run.rc == 2, run.explain()
    assert run.status(host) == "rolled_back", run.explain()
    undone = [t["task"] for t in run.host(host)["tasks"] if t["phase"] == "rollback" and t["changed"]]
    assert "config_error:undo_fix" in undone
    after = {"tree": without_evidence(fleet.tree(host, mtimes=False, skip=RUNTIME)),
             "redis": fleet.redis_keys(host)}
    assert after == {"tree": before["tree"], "redis": before["redis"]}
    assert config(fleet, host).read_bytes() == broken
    [kept] = evidence(fleet, host)
    assert kept.read_bytes() == broken, "the evidence stays beside the config"
    if "config_invalid_value" in faults:  # it ran before: it keeps running (on the config it read)
        assert fleet.service_process(host)[0] != ""
    else:  # it was down before: it is down again
        assert fleet.service_process(host) == ("", "")


def test_a_newest_copy_that_fails_its_checks_is_skipped_for_the_next(fleet: Fleet) -> None:
    fleet.break_host("host02", "config_missing_key")
    older, newest = copies(fleet, "host02")[-2:]
    stamp = newest.stat()
    newest.write_bytes(config(fleet, "host02").read_bytes())  # the backup job copied the broken file
    os.utime(newest, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    plan = fleet.remedy("plan", "config_error", "-l", "host02")
    fix = next(t for t in plan.host("host02")["tasks"] if t["task"] == "config_error:fix")
    assert f"{newest}: data_dir: missing (required)" in fix["message"], fix
    assert f"with the last known good copy {older}" in fix["message"], fix
    run = fleet.remedy("run", "config_error", "-l", "host02")
    assert run.rc == 0, run.explain()
    assert config(fleet, "host02").read_bytes() == older.read_bytes()
    assert fleet.health("host02")[0] == 200


def test_secrets_in_the_config_are_masked_in_every_output(fleet: Fleet) -> None:
    """A secret-looking key's value found on the host, and a registered secret the template writes."""
    fleet.touched += ["host03", "host04"]
    with_token = config(fleet, "host03").read_text() + f"admin_token: {CANARY}\n"
    for path in (config(fleet, "host03"), *copies(fleet, "host03")):  # only the host knows this one
        stamp = path.stat()
        path.write_text(with_token)
        os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    for host in ("host03", "host04"):
        fleet.lab.cli("break", host, "config_syntax")
    secrets = fleet.work / "secrets.yml"
    secrets.write_text(f'coze_admin_token: !secret "{REGISTERED}"\n')
    overrides = fleet.extra_inventory("token", {"host04": {
        "config_fix": "template", "coze_config_overrides": {"admin_token": "{{ coze_admin_token }}"}}})
    outputs = []
    for command in ("plan", "run"):
        done = fleet.remedy(command, "config_error", "-l", "host03,host04", "-e", f"@{secrets}", "-v",
                            "--diff", inventories=(overrides,))
        assert done.rc == 0, done.explain()
        outputs += [json.dumps(done.doc), done.stderr]
    outputs.append((fleet.work / "audit.jsonl").read_text())
    plan = outputs[1]  # host03's diff shows the token as context, host04's adds it
    assert " admin_token: ********\n" in plan and '+admin_token: "********"' in plan, plan
    assert not [o for o in outputs if CANARY in o or REGISTERED in o]
    assert f"admin_token: {CANARY}" in config(fleet, "host03").read_text()
    assert f'admin_token: "{REGISTERED}"' in config(fleet, "host04").read_text()  # JSON scalars
    assert fleet.health("host03")[0] == fleet.health("host04")[0] == 200


def test_port_conflict_waits_for_config_error_when_the_port_is_not_a_port(fleet: Fleet) -> None:
    fleet.break_host("host01", "port_conflict_stale", "config_invalid_value")
    before = fleet.tree("host01", mtimes=True)
    alone = fleet.remedy("run", "port_conflict", "-l", "host01")
    assert alone.rc == 2 and alone.status("host01") == "blocked", alone.explain()
    fault = alone.host("host01")["faults"][0]
    assert fault["blocked_by"] == "config_error" and "not a port 1-65535" in fault["detail"], fault
    assert fleet.tree("host01", mtimes=True) == before
    both = fleet.remedy("run", "port_conflict config_error", "-l", "host01")
    assert both.rc == 0, both.explain()
    states = [(f["playbook"], f["state"]) for f in both.host("host01")["faults"]]
    assert states == [("config_error", "fixed"), ("port_conflict", "fixed")], states
    assert fleet.health("host01")[0] == 200


def test_bad_input_stops_before_any_host_and_a_checker_that_cannot_run_changes_nothing(fleet: Fleet) -> None:
    fleet.break_host("host02", "config_syntax")
    choice = fleet.remedy("run", "config_error", "-l", "host02", "-e", "config_fix=newest")
    assert choice.rc == 4 and "must be one of last_good, template, default, not 'newest'" in choice.stderr
    template = fleet.remedy("run", "config_error", "-l", "host02", "-e", "config_fix=template",
                            "-e", "coze_config_template=site.yaml.j2")
    assert template.rc == 4 and "file 'site.yaml.j2' not found; looked in" in template.stderr
    before = fleet.tree("host02", mtimes=True)
    checker = fleet.remedy("run", "config_error", "-l", "host02",
                           "-e", json.dumps({"coze_config_check": "/usr/bin/coze-check %s"}))
    assert checker.rc == 2 and checker.status("host02") == "failed", checker.explain()
    check = next(t for t in checker.host("host02")["tasks"] if t["task"] == "config_error:check")
    assert "the checker cannot run on this host (exit 127" in check["message"], check
    assert not checker.changed("host02") and fleet.tree("host02", mtimes=True) == before
