"""Fixtures for the end-to-end tests: the fault lab of examples/lab, driven through its CLI.

The ``lab`` fixture brings up one lab of three real sshd hosts (with the Coze
stand-in service, Redis and PostgreSQL) for the whole session and always
takes it down again; ``shared_lab(n)`` does the same for the modules that
need a lab of ``n`` hosts. Missing sshd, redis-server or PostgreSQL FAILS the
tests; ``REMEDY_ALLOW_SKIP=1`` turns that into a skip.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.prerequisites import require, require_sshd

if TYPE_CHECKING:
    from tests.e2e.fleet import Fleet

REPO = Path(__file__).resolve().parents[2]
LAB_DIR = REPO / "examples" / "lab"
LAB_PY = LAB_DIR / "lab.py"
if str(LAB_DIR) not in sys.path:
    sys.path.insert(0, str(LAB_DIR))  # for lab.fetch and lab_layout's constants


def require_lab_prerequisites() -> None:
    """Root, sshd, redis-server and redis-cli, PostgreSQL server binaries, setpriv."""
    require(os.geteuid() == 0, "the lab needs root (service user, ownership faults)")
    require_sshd()
    for tool in ("redis-server", "redis-cli", "setpriv", "tar", "sha256sum"):
        require(shutil.which(tool) is not None, f"{tool} not found")
    require(bool(glob.glob("/usr/lib/postgresql/*/bin/initdb")), "PostgreSQL server binaries not found")


@dataclass
class LabHandle:
    """A lab dir and its CLI."""

    dir: Path

    def cli(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``lab.py --dir DIR ARGS``; fail the test on a non-zero exit when ``check``."""
        done = subprocess.run(
            [sys.executable, str(LAB_PY), "--dir", str(self.dir), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            pytest.fail(f"lab.py {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def state(self) -> dict[str, Any]:
        return json.loads((self.dir / "lab.json").read_text())  # type: ignore[no-any-return]

    @property
    def hosts(self) -> list[str]:
        return sorted(self.state()["hosts"])

    def host(self, name: str) -> dict[str, Any]:
        return self.state()["hosts"][name]  # type: ignore[no-any-return]

    def health(self, name: str) -> tuple[int | None, Any]:
        from lab import fetch

        return fetch(self.host(name)["service_port"])

    def root(self, name: str) -> Path:
        return Path(self.host(name)["root"])


def new_lab_dir() -> Path:
    """A fresh lab dir under /tmp that the service and postgres users can traverse."""
    directory = Path(tempfile.mkdtemp(prefix="remedy-lab-", dir="/tmp"))
    directory.chmod(0o755)
    return directory


@pytest.fixture(scope="session")
def lab() -> Iterator[LabHandle]:
    """A lab of three hosts, up for the whole session; ``down`` runs whatever happens."""
    require_lab_prerequisites()
    handle = LabHandle(new_lab_dir())
    try:
        handle.cli("up", "3")
        yield handle
    finally:
        handle.cli("down", check=False)
        shutil.rmtree(handle.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_lab() -> Iterator[Callable[[int], LabHandle]]:
    """``shared_lab(n)``: the lab of ``n`` hosts that modules of that size share, up from its first use.

    Each module resets every host it changed (``Fleet.touched``) before the next one takes the
    lab, which fails unless every host answers ``/health`` 200 with no fault recorded. Every lab
    is taken down at the end of the session, whatever happens.
    """
    require_lab_prerequisites()
    labs: dict[int, LabHandle] = {}

    def _take(size: int) -> LabHandle:
        if size not in labs:
            labs[size] = LabHandle(new_lab_dir())
            labs[size].cli("up", str(size))
        rows = json.loads(labs[size].cli("status", "--json").stdout)["hosts"]
        unhealthy = {row["host"]: row["faults"] or row["reasons"]
                     for row in rows if row["health"] != 200 or row["faults"]}
        if unhealthy:
            pytest.fail(f"an earlier module left the shared lab of {size} hosts unhealthy: {unhealthy}")
        return labs[size]

    try:
        yield _take
    finally:
        for handle in labs.values():
            handle.cli("down", check=False)
            shutil.rmtree(handle.dir, ignore_errors=True)


@pytest.fixture
def make_lab() -> Iterator[Callable[[], LabHandle]]:
    """``make_lab()``: a fresh lab dir (not up yet); every lab made is taken down and removed."""
    require_lab_prerequisites()
    made: list[LabHandle] = []

    def _make() -> LabHandle:
        made.append(LabHandle(new_lab_dir()))
        return made[-1]

    yield _make
    for handle in made:
        if (handle.dir / "lab.json").exists():
            handle.cli("down", check=False)
        shutil.rmtree(handle.dir, ignore_errors=True)


@pytest.fixture
def broken(lab: LabHandle) -> Iterator[Callable[[str, str], None]]:
    """``broken(host, fault)`` injects a fault; every host it touched is reset afterwards."""
    touched: list[str] = []

    def _break(host: str, fault: str) -> None:
        touched.append(host)
        lab.cli("break", host, fault)

    yield _break
    if touched:
        lab.cli("reset", *dict.fromkeys(touched))


@pytest.fixture
def lab_fleet(lab: LabHandle, tmp_path: Path) -> Iterator[Fleet]:
    """The session lab as a ``Fleet`` working in ``tmp_path``; every host a test broke is reset afterwards."""
    from tests.e2e.fleet import Fleet

    fleet = Fleet(lab, tmp_path)
    yield fleet
    fleet.reset_touched()
