"""restore_from_backup on bad backups in the lab: refused before the service is touched, an older one used.

The lab's newest full backup is made bad in the ways a backup job or an
attacker makes it (checksummed after truncation, a manifest that does not
match, ``..`` and absolute members, links leaving the tree). Offered alone,
it is refused with its reason and the host stays exactly as it was: the
same service process, files, caches and rows. With the older full backups
beside it, the next older one (a day older) is restored, the plan and the
run say first how much newer data that loses, and the caches, which hold
the newest data, are flushed so that the service verifies healthy. A chain
missing a level falls back two days: refused by default, restored when a
``restore_point`` accepts it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import REPO, LabHandle
from tests.e2e.fleet import Fleet, Outcome

HOST = "host03"
#: Each bad newest backup, and what the reason for skipping it says.
BAD = {
    "backup_newest_checksummed_truncated": "gzip -t fails",
    "backup_newest_manifest_mismatch": "the staged tree does not match MANIFEST.sha256: bots.json: FAILED",
    "backup_newest_tar_slip": 'member "../../../../tar-slip.txt" contains ..',
    "backup_newest_escaping_link": 'symbolic link "./plugins/config.yaml" points outside the tree',
}
FULLS_ONLY = ("-e", "coze_incremental_dir=")
FLUSHES = {"restore_from_backup:flush_redis", "restore_from_backup:flush_files"}


@pytest.fixture
def fleet(lab: LabHandle, tmp_path: Path) -> Iterator[Fleet]:
    """The lab shared by the whole test run; every host a test broke is reset afterwards."""
    handle = Fleet(lab, tmp_path)
    yield handle
    handle.reset_touched()


def stamps(fleet: Fleet) -> list[str]:
    """The lab's backup times T1, T2, T3 as restore_point takes them."""
    return [datetime.fromisoformat(s).strftime("%Y-%m-%dT%H:%M:%SZ") for s in fleet.lab.state()["stamps"]]


def task(outcome: Outcome, name: str) -> dict[str, Any]:
    return next(t for t in outcome.host(HOST)["tasks"] if t["task"] == f"restore_from_backup:{name}")


def host_state(fleet: Fleet) -> dict[str, Any]:
    """Files (modes, owners, contents), the service process, Redis keys and PostgreSQL rows."""
    return {"tree": fleet.tree(HOST, mtimes=False), "process": fleet.service_process(HOST),
            "redis": fleet.redis_keys(HOST), "postgres": fleet.pg_rows(HOST)}


def indexed_ids(fleet: Fleet) -> int:
    return len((fleet.lab.root(HOST) / "var/lib/coze/data/conversations.idx").read_text().split())


@pytest.mark.parametrize("fault", sorted(BAD))
def test_a_bad_newest_backup_is_refused_then_the_next_older_restored(fleet: Fleet, fault: str) -> None:
    t1, t2, t3 = stamps(fleet)
    fleet.break_host(HOST, fault)
    newest = f"backup-{t3.replace('-', '').replace(':', '').rstrip('Z')}.tar.gz"
    before = host_state(fleet)

    alone = fleet.remedy("run", "restore_from_backup", "-l", HOST, "-e", f"backup_full_pattern={newest}",
                         *FULLS_ONLY)
    assert alone.rc == 2, alone.explain()
    stage = task(alone, "stage_files")
    assert stage["status"] == "failed" and BAD[fault] in stage["message"], stage
    assert task(alone, "stop")["status"] == "skipped" and not alone.changed(HOST)
    assert host_state(fleet) == before, "the refusal touched the host"
    assert not list(fleet.lab.root(HOST).rglob("tar-slip.txt"))

    plan_file = fleet.work / "plan.json"
    plan = fleet.remedy("plan", "restore_from_backup", "-l", HOST, "-o", str(plan_file), *FULLS_ONLY)
    assert plan.rc == 0, plan.explain()
    run = fleet.remedy("run", "restore_from_backup", "-l", HOST, "--compare-plan", str(plan_file),
                       *FULLS_ONLY)
    assert run.rc == 0 and run.status(HOST) == "changed", run.explain()
    loss = f"restores {t2}, 1 day older than the newest backup {t3}: skipped {newest}"
    said = task(run, "stage_files")["message"]
    assert said.startswith(loss) and BAD[fault] in said, said
    if fault != "backup_newest_manifest_mismatch":  # only extraction shows that one: the plan cannot
        assert task(plan, "stage_files")["message"].startswith(loss), task(plan, "stage_files")
    assert FLUSHES <= set(run.changed(HOST))
    assert fleet.health(HOST)[0] == 200
    assert indexed_ids(fleet) == 35  # data version 2, a day older than the newest (40)
    assert not list(fleet.lab.root(HOST).rglob("tar-slip.txt"))


def test_a_chain_missing_a_level_is_refused_beyond_the_allowed_fallback(fleet: Fleet) -> None:
    t1, _, t3 = stamps(fleet)
    fleet.break_host(HOST, "backup_chain_broken")
    before = host_state(fleet)
    refused = f"refusing to restore {t1}, 2 days older than the newest backup {t3}"

    text = subprocess.run(
        [sys.executable, "-m", "runner", "plan", "restore_from_backup", "-i", str(fleet.inventory),
         "-i", str(fleet.locks()), "-l", HOST], capture_output=True, text=True, cwd=REPO, check=False)
    rows = [line for line in text.stdout.splitlines() if line.startswith(HOST)]
    assert rows and refused[:40] in rows[0], text.stdout

    run = fleet.remedy("run", "restore_from_backup", "-l", HOST)
    assert run.rc == 2, run.explain()
    message = task(run, "stage_files")["message"]
    assert message.startswith(refused) and "its chain lacks level 1" in message, message
    assert f"pass restore_point={t1}" in message and "2d" in message
    assert host_state(fleet) == before

    allowed = fleet.remedy("plan", "restore_from_backup", "-l", HOST, "-e", "restore_max_fallback=3d")
    assert task(allowed, "stage_files")["message"].startswith(
        f"restores {t1}, 2 days older than the newest backup {t3}: skipped "), allowed.explain()

    accepted = fleet.remedy("run", "restore_from_backup", "-l", HOST, "-e", f"restore_point={t1}")
    assert accepted.rc == 0, accepted.explain()
    assert fleet.health(HOST)[0] == 200 and indexed_ids(fleet) == 30  # data version 1


def test_caches_are_flushed_after_any_restore_unless_turned_off(fleet: Fleet) -> None:
    """No restore_point: the full backup of a day before is restored, older than what the caches hold.

    With the flush turned off the restore is still correct (its own checks pass), but the caches
    now hold newer data than the restored files: the health after the run names them and the
    playbook that answers them, and the restore is not undone for it.
    """
    fleet.break_host(HOST, "backup_newest_corrupt")
    kept = fleet.remedy("run", "restore_from_backup", "-l", HOST, "-e", "restore_flush_caches=false",
                        *FULLS_ONLY)
    assert kept.rc == 0 and kept.status(HOST) == "changed", kept.explain()
    assert task(kept, "flush_redis")["status"] == "skipped"
    health = kept.host(HOST)["health"]
    assert not health["ok"] and {"cache_dir", "redis"} & set(health["failing"]), health
    assert health["next"] == ["cache_flush"], health
    fleet.lab.cli("reset", HOST)
    fleet.break_host(HOST, "backup_newest_corrupt")

    flushed = fleet.remedy("run", "restore_from_backup", "-l", HOST, *FULLS_ONLY)
    assert flushed.rc == 0, flushed.explain()
    assert FLUSHES <= set(flushed.changed(HOST))
    assert fleet.health(HOST)[0] == 200 and indexed_ids(fleet) == 35
