"""Fixtures shared by every test tier: temporary input files and a stand-in module."""

from __future__ import annotations

import os
import shutil
import tempfile
import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from runner.modules import MODULES
from runner.modules.base import Arg, Change, Module


class ProbeModule(Module):
    """A module for tests that need "some module": it plans nothing and reads only."""

    name = "probe"
    summary = "Test stand-in: changes nothing"
    args = {
        "msg": Arg("str", doc="A free-form word."),
        "count": Arg("int", doc="A number."),
        "mode": Arg("mode", doc="A file mode."),
        "flag": Arg("bool", doc="A boolean."),
        "items": Arg("list", doc="A list."),
    }
    free_form = "msg"
    read_only = True

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        return Change(changed=False, data={"msg": args.get("msg")})


@pytest.fixture
def probe_module() -> Iterator[type[Module]]:
    """Register ``probe`` in ``MODULES`` for one test, then remove it again."""
    previous = MODULES.get("probe")
    MODULES["probe"] = ProbeModule
    try:
        yield ProbeModule
    finally:
        if previous is None:
            MODULES.pop("probe", None)
        else:
            MODULES["probe"] = previous


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """``write("name.yml", text)``: a dedented text file under ``tmp_path``; bytes as given."""

    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
        return path

    return _write


def default_lock_files() -> set[Path]:
    """The lock files in this user's default lock directories (see ``runner.run.hostlock``)."""
    uid = os.geteuid()
    places = [Path("/run/remedy"), Path("/var/lock/remedy")] if uid == 0 else [Path(f"/tmp/remedy-{uid}")]
    places.append(Path.home() / ".cache" / "remedy")
    return {path for place in places if place.is_dir() for path in place.iterdir()}


@pytest.fixture(autouse=True, scope="session")
def no_default_locks_left() -> Iterator[None]:
    """Every test locks in a temporary directory (``remedy_lock_path``, ``RunOptions.lock_path``):
    a lock file left in the user's default lock directory fails the session."""
    before = default_lock_files()
    yield
    left = sorted(str(path) for path in default_lock_files() - before)
    assert not left, f"tests left default lock files (give each run a tmp_path lock): {left}"


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory every user may enter and write to (sticky, as /tmp; pytest's own are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="remedy-test-shared-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path)
