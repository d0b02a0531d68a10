"""The package module's step on this machine's sh, with a stand-in apt: waiting for the lock."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from runner.modules import MODULES
from runner.modules.base import Command, Outcome
from runner.results import CommandResult
from tests.unit.modules.localrun import gather, sh

#: A stand-in apt-get: simulates an install; the real install finds the lock held while
#: ``locked-for`` (a number of attempts) is not used up, or fails as told by ``fails-with``.
FAKE_APT = """#!/bin/sh
case " $* " in *" -s "*) echo "Inst coze-lab-tools (1.0 lab [all])"; exit 0;; esac
n=$(( $(cat STATE/attempts 2>/dev/null || echo 0) + 1 )); echo "$n" > STATE/attempts
if [ -e STATE/fails-with ]; then cat STATE/fails-with >&2; exit 100; fi
if [ "$n" -le "$(cat STATE/locked-for)" ]; then
  echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (dpkg)" >&2; exit 100
fi
for name do case $name in coze-*) echo "$name" >> STATE/installed;; esac; done
echo "Setting up coze-lab-tools (1.0) ..."
"""
FAKE_DPKG_QUERY = """#!/bin/sh
for name do grep -qx "$name" STATE/installed 2>/dev/null && printf 'ii \\t%s\\t1.0\\n' "$name"; done
exit 0
"""
TOOLS = ("sh", "awk", "grep", "cut", "sed", "head", "tail", "date", "sleep", "cat", "env")


def stand_in(tmp_path: Path, locked_for: int) -> dict[str, str]:
    """PATH with the stand-in apt-get and dpkg-query and the tools the module's sh uses."""
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    (state / "locked-for").write_text(f"{locked_for}\n")
    for name, text in (("apt-get", FAKE_APT), ("dpkg-query", FAKE_DPKG_QUERY)):
        (bin_dir / name).write_text(text.replace("STATE", str(state)))
        (bin_dir / name).chmod(0o755)
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    return {"PATH": str(bin_dir)}


def install(tmp_path: Path, env: dict[str, str], lock_timeout: int) -> tuple[CommandResult, Outcome, float]:
    module = MODULES["package"]()
    args = {"name": ["coze-lab-tools"], "lock_timeout": lock_timeout}
    facts = gather(module, args, env)
    change = module.plan(args, facts)
    assert change.changed and not change.failed, change
    step = change.steps[0]
    assert isinstance(step, Command)
    started = time.monotonic()
    result = sh(step.command, env=env)
    elapsed = time.monotonic() - started
    return result, module.outcome(args, facts, change, [result]), elapsed


def attempts(tmp_path: Path) -> int:
    return int((tmp_path / "state/attempts").read_text())


def test_a_held_lock_is_waited_for_and_the_install_then_runs(tmp_path: Path) -> None:
    env = stand_in(tmp_path, locked_for=2)
    result, outcome, elapsed = install(tmp_path, env, lock_timeout=30)
    assert result.rc == 0, result.stderr
    assert attempts(tmp_path) == 3 and elapsed >= 2  # one second between attempts
    assert outcome.changed and not outcome.failed
    assert outcome.data["installed"] == ["coze-lab-tools"]


def test_a_lock_held_past_lock_timeout_fails_naming_it_and_installs_nothing(tmp_path: Path) -> None:
    env = stand_in(tmp_path, locked_for=1000)
    result, outcome, elapsed = install(tmp_path, env, lock_timeout=1)
    assert result.rc == 100
    assert 2 <= attempts(tmp_path) <= 4 and elapsed < 10
    failed = outcome.failed
    assert "still locked after 1s (lock_timeout): E: Could not get lock /var/lib/dpkg/lock-frontend" in failed
    assert not outcome.changed and outcome.data["installed"] == []
    assert not (tmp_path / "state/installed").exists()


def test_another_failure_is_not_retried(tmp_path: Path) -> None:
    env = stand_in(tmp_path, locked_for=0)
    (tmp_path / "state/fails-with").write_text("E: Sub-process /usr/bin/dpkg returned an error code (1)\n")
    result, outcome, _ = install(tmp_path, env, lock_timeout=30)
    assert result.rc == 100 and attempts(tmp_path) == 1
    assert "dpkg returned an error code" in outcome.failed
