"""missing_dependency on a lab: the command (a .deb) or the Python plugin (a wheel) is gone.

The lab's hosts each have their own package database and venv (lab_packages),
fed by a local apt repository and wheel dir: nothing is downloaded. One lab of
``LAB_SIZE`` hosts serves the module:

* plan -> run (plan and run agree task by task) -> /health 200 -> a second
  run changes nothing; a healthy host and a host with another fault are untouched;
* a forced verification failure rolls back byte for byte (the package
  manager's own logs and cache aside), also beside another fault;
* the package manager's lock held by another program: the install waits
  ``package_lock_timeout`` seconds, then fails naming the lock, nothing installed;
* what the playbook cannot know (an undeclared name in the log, a bad package
  name, a missing package manager) is a failed diagnosis that changes nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.fleet import RUNTIME, Fleet, running_lab
from tests.e2e.test_playbooks import FORCE_FAILURE, check_fleet_run

LAB_SIZE = 5
#: What apt and dpkg write for themselves on every change: logs, and apt's binary cache.
PACKAGE_MANAGER_STATE = ("var/log/apt", "var/log/dpkg.log", "var/cache/apt")


@pytest.fixture(scope="module")
def lab5(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with running_lab(LAB_SIZE, tmp_path_factory.mktemp("missing_dependency")) as fleet:
        yield fleet


@pytest.fixture
def fleet(lab5: Fleet) -> Iterator[Fleet]:
    yield lab5
    lab5.reset_touched()


def installed(fleet: Fleet, host: str) -> list[str]:
    """The lab packages in the host's own package database."""
    root = fleet.lab.root(host)
    env = {"PATH": os.environ["PATH"], "DPKG_ADMINDIR": str(root / "var/lib/dpkg")}
    done = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}${Package}\\n", "coze-lab-*"],
                          capture_output=True, text=True, env=env, check=False)
    return sorted(line[3:] for line in done.stdout.splitlines() if line[1:2] == "i")


def test_every_variant_is_fixed_and_the_others_are_left_alone(fleet: Fleet) -> None:
    fleet.break_host("host01", "dependency_module")
    fleet.break_host("host02", "dependency_command")
    fleet.break_host("host03", "dependency_command", "dependency_module")
    fleet.break_host("host04", "cache_stale_files")  # another fault: not this playbook's business
    plan = fleet.remedy("plan", "missing_dependency")
    evidence = {h: " ".join(plan.host(h)["faults"][0]["evidence"]) for h in ("host01", "host02", "host03")}
    assert "missing: Python module coze_lab_plugin" in evidence["host01"], evidence
    assert "log: " in evidence["host01"] and "No module named 'coze_lab_plugin'" in evidence["host01"]
    assert "missing: command cozectl" in evidence["host02"]
    assert "cozectl: command not found" in evidence["host02"]
    install = next(t for t in plan.host("host02")["tasks"] if t["task"].endswith(":install_packages"))
    assert "install coze-lab-libs 1.0, coze-lab-tools 1.0" in install["message"], install
    assert installed(fleet, "host02") == []  # the plan installed nothing

    check_fleet_run(fleet, "missing_dependency", {
        "host01": ["install_python", "restart"], "host02": ["install_packages", "restart"],
        "host03": ["install_packages", "install_python", "restart"]})
    assert installed(fleet, "host03") == ["coze-lab-libs", "coze-lab-tools"]
    assert fleet.health("host04")[0] == 503  # its own fault is still there


@pytest.mark.parametrize(("host", "faults"), [("host02", ["dependency_command", "dependency_module"]),
                                              ("host03", ["dependency_command", "data_corrupt"])])
def test_failed_verification_removes_exactly_what_the_run_installed(
        fleet: Fleet, host: str, faults: list[str]) -> None:
    fleet.break_host(host, *faults)
    skip = RUNTIME + PACKAGE_MANAGER_STATE
    before = fleet.tree(host, mtimes=False, skip=skip)
    run = fleet.remedy("run", "missing_dependency", "-l", host, "-e", FORCE_FAILURE)
    assert run.rc == 2 and run.status(host) == "rolled_back", run.explain()
    tasks = {t["task"].split(":", 1)[1]: t for t in run.host(host)["tasks"]}
    assert tasks["install_packages"]["changed"] and tasks["undo_packages"]["changed"]
    undo = tasks["undo_packages"]
    assert "removed coze-lab-tools, coze-lab-libs" in undo["message"], undo
    assert fleet.tree(host, mtimes=False, skip=skip) == before
    assert installed(fleet, host) == []


def test_a_held_package_lock_is_waited_for_then_fails_naming_it(fleet: Fleet) -> None:
    fleet.break_host("host04", "dependency_command")
    lock = fleet.lab.root("host04") / "var/lib/dpkg/lock-frontend"
    with lock.open("a") as holder:
        fcntl.lockf(holder, fcntl.LOCK_EX)  # another program installs something meanwhile
        run = fleet.remedy("run", "missing_dependency", "-l", "host04", "-e", "package_lock_timeout=2")
    assert run.rc == 2, run.explain()
    install = next(t for t in run.host("host04")["tasks"] if t["task"].endswith(":install_packages"))
    assert install["status"] == "failed" and not install["changed"], install
    assert "still locked after 2s (lock_timeout)" in install["message"], install
    assert "Could not get lock" in install["message"] and install["duration"] >= 2, install
    assert installed(fleet, "host04") == []
    assert run.host("host04")["faults"][0]["state"] == "failed"  # nothing changed: nothing to roll back


def test_a_missing_name_the_log_gives_but_no_declaration_names_is_a_failed_diagnosis(fleet: Fleet) -> None:
    fleet.break_host("host05", "dependency_module")
    before = fleet.untouched_state("host05")
    only_the_command = {"coze_dependencies": [{"command": "cozectl", "package": "coze-lab-tools"}]}
    run = fleet.remedy("run", "missing_dependency", "-l", "host05", "-e", json.dumps(only_the_command))
    assert run.rc == 2 and run.status("host05") == "failed", run.explain()
    logged = next(t for t in run.host("host05")["tasks"] if t["task"].endswith(":logged"))
    assert "not declared in coze_dependencies: module coze_lab_plugin;" in logged["message"], logged
    assert not run.changed("host05")
    assert fleet.untouched_state("host05") == before


@pytest.mark.parametrize(("variables", "message"), [
    ({"coze_dependencies": [{"command": "cozectl", "package": "coze-lab-tools;touch /tmp/remedy-md-canary"}]},
     "not a package name"),
    ({"package_manager": "zypper"}, "no supported package manager on the host (looked for zypper)"),
    ({"coze_dependencies": [{"command": "cozectl"}]}, "names no package or pip distribution"),
])
def test_what_the_playbook_cannot_do_stops_it_before_any_change(
        fleet: Fleet, variables: dict[str, object], message: str) -> None:
    fleet.break_host("host01", "dependency_command")
    before = fleet.untouched_state("host01")
    run = fleet.remedy("run", "missing_dependency", "-l", "host01", "-e", json.dumps(variables))
    assert run.rc == 2 and run.status("host01") == "failed", run.explain()
    assert any(message in t["message"] for t in run.host("host01")["tasks"]), run.explain()
    assert not run.changed("host01") and not Path("/tmp/remedy-md-canary").exists()
    assert fleet.untouched_state("host01") == before
