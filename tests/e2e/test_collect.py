"""``remedy collect`` and run evidence on a 10-host lab.

One lab (``LAB_SIZE`` real sshd hosts with the Coze stand-in service) serves
the module. ``remedy collect`` must pack every host's bundle (every file in
the manifest with its sha256), keep a canary secret placed in a config file
and in a service's environment out of the archive, name what is wrong on the
broken hosts in ``summary.md``, and leave the hosts as they were: their file
trees (with mtimes) and no temp dir. A bundled playbook's run keeps the
evidence before and after on the host it fixes, and none with
``--no-evidence``.
"""

from __future__ import annotations

import glob
import hashlib
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, LabHandle
from tests.e2e.fleet import Fleet

LAB_SIZE = 10
CONFIG_CANARY = "CANARY-config-5b1d0e"
ENV_CANARY = "CANARY-environ-77c2aa"
#: Every file of a host's bundle on a lab host (no system log: the lab has none, and no systemd).
BUNDLE = ["capture.json", "config/config.yaml", "logs/app.log", "logs/error.log", "network/listening.txt",
          "service/environment.txt", "service/files.txt", "service/processes.txt", "service/status.txt",
          "system/disk.txt", "system/load.txt", "system/memory.txt"]


@pytest.fixture(scope="module")
def lab(shared_lab: Callable[[int], LabHandle], tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return Fleet(shared_lab(LAB_SIZE), tmp_path_factory.mktemp("collect"))


@pytest.fixture
def fleet(lab: Fleet) -> Iterator[Fleet]:
    yield lab
    lab.reset_touched()


def plant_canaries(fleet: Fleet, host: str) -> None:
    """Restart ``host``'s service with a secret in its environment, then add one to its config."""
    fleet.touched.append(host)
    root = fleet.lab.root(host)
    subprocess.run([str(root / "bin/coze-stop")], check=True, capture_output=True, timeout=60)
    subprocess.run([str(root / "bin/coze-start")], check=True, capture_output=True, timeout=60,
                   env={**os.environ, "COZE_API_TOKEN": ENV_CANARY, "COZE_REGION": "lab-east"})
    with (root / "etc/coze/config.yaml").open("a") as config:
        config.write(f"api_token: {CONFIG_CANARY}\n")


def temp_dirs() -> list[str]:
    return sorted(glob.glob("/tmp/remedy-evidence.*"))


def collect(fleet: Fleet, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    out.mkdir()
    argv = [sys.executable, "-m", "runner", "collect", "-i", str(fleet.inventory), "-o", str(out), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=REPO, check=False)


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_collect_bundles_every_host_masks_the_canaries_and_leaves_the_hosts_untouched(fleet: Fleet) -> None:
    fleet.break_host("host02", "port_conflict_foreign")
    fleet.break_host("host03", "permission_config")
    plant_canaries(fleet, "host04")
    trees = {h: fleet.tree(h, mtimes=True) for h in fleet.hosts}
    assert temp_dirs() == []

    done = collect(fleet, fleet.work / "bundle")
    assert done.returncode == 0, done.stderr
    (archive,) = (fleet.work / "bundle").iterdir()
    files = members(archive)
    top = archive.name.removesuffix(".tar.gz")
    listed = {name: digest for digest, name in
              (line.split("  ", 1) for line in files.pop(f"{top}/MANIFEST.sha256").decode().splitlines())}
    assert sorted(f"{top}/{name}" for name in listed) == sorted(files)
    assert all(hashlib.sha256(files[f"{top}/{n}"]).hexdigest() == d for n, d in listed.items())
    for host in fleet.hosts:
        assert sorted(n.split("/", 1)[1] for n in listed if n.startswith(f"{host}/")) == BUNDLE, host
    canaries = (CONFIG_CANARY.encode(), ENV_CANARY.encode())
    assert not [n for n, data in files.items() if any(c in data for c in canaries)]
    environment = files[f"{top}/host04/service/environment.txt"].decode()
    assert "COZE_API_TOKEN=********" in environment and "COZE_REGION=lab-east" in environment

    summary = files[f"{top}/summary.md"].decode()
    port = fleet.lab.host("host02")["service_port"]
    assert f"port {port} is held by another process: pid" in summary
    assert "python3 -m http.server" in summary
    assert "no process of the service is running" in summary.split("## host03")[1].split("## host04")[0]
    assert "Nothing looks wrong." not in summary.split("## host02")[1].split("## host03")[0]

    assert {h: fleet.tree(h, mtimes=True) for h in fleet.hosts} == trees
    assert temp_dirs() == []


def test_collect_takes_only_the_limited_hosts(fleet: Fleet) -> None:
    done = collect(fleet, fleet.work / "limited", "-l", "host01:host07", "-q")
    assert done.returncode == 0, done.stderr
    (archive,) = (fleet.work / "limited").iterdir()
    assert done.stdout.strip() == str(archive)
    hosts = {name.split("/")[1] for name in members(archive) if name.count("/") > 1}
    assert hosts == {"host01", "host07"}


def test_a_bundled_playbook_keeps_evidence_before_and_after_its_fix(fleet: Fleet) -> None:
    fleet.break_host("host05", "port_conflict_stale")
    fleet.break_host("host06", "port_conflict_stale")
    run = fleet.remedy("run", "port_conflict", "-l", "host05")
    assert run.rc == 0, run.explain()
    evidence = run.host("host05")["evidence"]
    assert sorted(evidence) == ["after", "before"]
    before, after = Path(evidence["before"]), Path(evidence["after"])
    assert before.parent == fleet.work / "evidence" / run.doc["run_id"] / "host05"
    for phase in (before, after):
        assert sorted(p.relative_to(phase).as_posix() for p in phase.rglob("*") if p.is_file()) == \
            sorted([*BUNDLE, "MANIFEST.sha256"])
    assert "pid_file_alive=no" in (before / "service/status.txt").read_text()
    assert "pid_file_alive=yes" in (after / "service/status.txt").read_text()

    quiet = fleet.remedy("run", "port_conflict", "-l", "host06", "--no-evidence")
    assert quiet.rc == 0, quiet.explain()
    assert quiet.host("host06")["evidence"] is None
    assert not (fleet.work / "evidence" / quiet.doc["run_id"]).exists()
    assert temp_dirs() == []
