"""Three slices of a twelve-host lab, merged, are one unsliced run: the same host results, no host twice;
a blast-radius budget holds under parallel hosts.

The Kubernetes example (``examples/k8s/``) runs here without a cluster: the
Indexed Job's container command runs once per completion index, then the
merge Job's, with each volume a local directory and the image's ``remedy``
the checkout under test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.ciexamples import job_env, remedy_wrapper
from tests.e2e.conftest import REPO
from tests.e2e.fleet import Fleet, Outcome, running_lab

PLAYBOOK = "permission_error"
#: A broken host in each slice of three (slice 1: host02 host04 host09; 2: host01 host03 host05 host07
#: host12; 3: host06 host08 host10 host11).
BROKEN = {"host02": "permission_config", "host05": "permission_logdir", "host10": "permission_config"}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with running_lab(12, tmp_path_factory.mktemp("slices")) as fleet:
        yield fleet


def break_hosts(fleet: Fleet) -> None:
    fleet.reset_touched()
    for host, fault in BROKEN.items():
        fleet.break_host(host, fault)


def merge(work: Path, outcomes: list[Outcome]) -> Outcome:
    """``remedy merge`` of the outcomes' documents, as JSON."""
    files = []
    for number, outcome in enumerate(outcomes, 1):
        files.append(work / f"slice-{number}.json")
        files[-1].write_text(json.dumps(outcome.doc))
    done = subprocess.run([sys.executable, "-m", "runner", "merge", *map(str, files), "--format", "json"],
                          capture_output=True, text=True, cwd=REPO, check=False, timeout=120)
    return Outcome(done.returncode, json.loads(done.stdout or "{}"), done.stderr)


def host_results(document: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Per host: its verdict, and each task's status, change and prediction, in order."""
    return sorted((h["host"], h["status"], tuple((t["task"], t["status"], t["changed"], t.get("predicted"))
                                                 for t in h["tasks"]),
                   tuple((f["playbook"], f["state"]) for f in h["faults"])) for h in document["hosts"])


@pytest.mark.parametrize("command", ["plan", "run"])
def test_three_merged_slices_are_the_unsliced_run(fleet: Fleet, command: str) -> None:
    break_hosts(fleet)
    slices = [fleet.remedy(command, PLAYBOOK, "--slice", f"{k}/3") for k in (1, 2, 3)]
    for outcome in slices:
        assert outcome.rc == 0, outcome.explain()
    assert [len(s.doc["hosts"]) for s in slices] == [3, 5, 4]
    merged = merge(fleet.work, slices)
    assert merged.rc == 0, merged.stderr
    names = [h["host"] for h in merged.doc["hosts"]]
    assert len(names) == len(set(names)) == 12
    break_hosts(fleet)  # the run fixed them: the unsliced run starts from the same state
    whole = fleet.remedy(command, PLAYBOOK)
    assert whole.rc == merged.rc == merged.doc["exit_code"] == 0, whole.explain()
    assert host_results(merged.doc) == host_results(whole.doc)
    changed = sorted(h["host"] for h in merged.doc["hosts"] if h["status"] == "changed")
    assert changed == sorted(BROKEN)  # a plan: the hosts that would change


def test_the_blast_radius_budget_fixes_two_hosts_per_run_and_the_next_run_goes_on(fleet: Fleet) -> None:
    break_hosts(fleet)
    first = fleet.remedy("run", PLAYBOOK, "--max-changed", "2", "--forks", "12")
    assert first.rc == 7, first.explain()
    fixed = [h for h in BROKEN if first.status(h) == "changed"]
    (held,) = first.doc["over_budget"]
    assert len(fixed) == 2 and held in BROKEN and first.status(held) == "not_run"
    assert [f["state"] for f in first.host(held)["faults"]] == ["not_run"]
    planned = [t for t in first.host(held)["tasks"] if t["phase"] == "tasks"]
    assert {t["status"] for t in planned} == {"not_run"} and "change" in {t.get("predicted") for t in planned}
    assert {t["message"] for t in planned} == {"blast-radius budget: 2 hosts changed"}
    second = fleet.remedy("run", PLAYBOOK, "--max-changed", "2")
    assert second.rc == 0, second.explain()
    assert [h for h in BROKEN if second.status(h) == "changed"] == [held]  # its fault was still there
    assert all(fleet.health(host)[0] == 200 for host in BROKEN)


K8S = REPO / "examples" / "k8s"


def container_of(manifest: Path, job: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Job named ``job`` in ``manifest``, and its container."""
    found = next(d for d in yaml.safe_load_all(manifest.read_text())
                 if d["kind"] == "Job" and d["metadata"]["name"] == job)
    (container,) = found["spec"]["template"]["spec"]["containers"]
    return found, container


def run_container(container: dict[str, Any], volumes: dict[str, Path], work: Path,
                  **env: str) -> subprocess.CompletedProcess[str]:
    """The container's command, its volumes at local directories (its env's paths moved with them)."""
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    variables = {}
    for item in container["env"]:
        value = str(item["value"])
        for mount, local in mounts.items():
            value = str(local) + value[len(mount):] if value.startswith(mount) else value
        variables[item["name"]] = value
    variables["REMEDY_PLAYBOOKS"] = PLAYBOOK  # as a user sets it
    return subprocess.run([*container["command"], *container["args"]], cwd=work, capture_output=True,
                          text=True, env=job_env({**variables, **env}, remedy_wrapper(work / "bin")),
                          timeout=600, check=False)


def volumes_for(fleet: Fleet, work: Path) -> dict[str, Path]:
    """The ConfigMap (the lab's inventory, minus key and known_hosts), the Secret, the results volume."""
    volumes = {name: work / name for name in ("inventory", "ssh", "results")}
    for directory in volumes.values():
        directory.mkdir(parents=True)
    text = re.sub(r" (ansible_ssh_private_key_file|remedy_known_hosts)=\S+", "", fleet.inventory.read_text())
    locks = fleet.lab.dir / "hosts"  # not /tmp/remedy-hostNN.lock, which other labs share
    text = re.sub(r"^(host\d+) ", lambda m: f"{m[1]} remedy_lock_path={locks}/{m[1]}.lock ", text, flags=re.M)
    (volumes["inventory"] / "hosts.ini").write_text(text)
    shutil.copy2(fleet.lab.dir / "ssh" / "client_ed25519", volumes["ssh"] / "id")
    shutil.copy2(fleet.lab.dir / "ssh" / "known_hosts", volumes["ssh"] / "known_hosts")
    return volumes


def test_the_kubernetes_indexed_job_runs_the_slices_and_the_merge_job_joins_them(
        fleet: Fleet, tmp_path: Path) -> None:
    break_hosts(fleet)
    volumes = volumes_for(fleet, tmp_path)
    job, container = container_of(K8S / "slices-job.yaml", "remedy-slices")
    assert job["spec"]["completionMode"] == "Indexed"
    completions = job["spec"]["completions"]
    assert {e["name"]: e["value"] for e in container["env"]}["SLICES"] == str(completions)
    for index in range(completions):
        done = run_container(container, volumes, tmp_path, JOB_COMPLETION_INDEX=str(index))
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"slice {index + 1}/{completions}: exit 0" in done.stdout
    _, merger = container_of(K8S / "merge-job.yaml", "remedy-merge")
    done = run_container(merger, volumes, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"merged {completions} of {completions} slices (12 hosts)" in done.stdout
    merged = json.loads((volumes["results"] / "result.json").read_text())
    assert sorted(h["host"] for h in merged["hosts"]) == fleet.hosts
    assert sorted(h["host"] for h in merged["hosts"] if h["status"] == "changed") == sorted(BROKEN)
    assert all(fleet.health(host)[0] == 200 for host in BROKEN)
    assert (volumes["results"] / "remedy-junit.xml").read_text().count("<testsuite ") == 12


def test_the_dockerfile_copies_what_the_package_is_built_from() -> None:
    copied = {word for line in (K8S / "Dockerfile").read_text().splitlines() if line.startswith("COPY ")
              for word in line.split()[1:-1]}
    assert copied == {"pyproject.toml", "README.md", "runner", "playbooks"}
    assert all((REPO / source).exists() for source in copied)
