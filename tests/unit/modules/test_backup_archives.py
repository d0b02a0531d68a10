"""``backup_restore`` against real archives and this machine's tar, gzip, awk and sha256sum.

Each test builds a data tree with its ``MANIFEST.sha256``, backs it up as
tar.gz archives with ``.sha256`` files (some of them bad in the ways a
backup job or an attacker makes them), probes, plans and runs the steps with
the local stand-in for the executor. An invalid archive must be refused
before anything is extracted (or, for what only extraction shows, in the
staging dir), with its reason, and the next older valid one used.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.events import NullListener
from runner.load.inputs import load_inputs
from runner.modules import MODULES
from runner.modules.backupchoice import Archive
from runner.modules.base import Change
from runner.plan.hosts import RunOptions
from runner.run.executor import execute
from tests.unit.modules.localrun import apply, gather

T1, T2, T3 = "20240312T100000", "20240313T100000", "20240314T100000"


def write_tree(root: Path, version: int) -> None:
    """A data tree of ``version`` with a legit relative symlink and its manifest."""
    (root / "sub").mkdir(parents=True, exist_ok=True)
    (root / "a.txt").write_text(f"a version {version}\n")
    (root / "sub" / 'we"ird -> name.txt').write_text(f"b version {version}\n")
    if not (root / "sub" / "link").is_symlink():
        (root / "sub" / "link").symlink_to("../a.txt")
    files = [p for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()]
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(root).as_posix()}"
             for p in files if p.name != "MANIFEST.sha256"]
    (root / "MANIFEST.sha256").write_text("\n".join(lines) + "\n")


def checksum(archive: Path) -> None:
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    archive.with_name(archive.name + ".sha256").write_text(f"{digest}  {archive.name}\n")


def full_backup(tmp_path: Path, stamp: str, version: int) -> Path:
    """A good full backup of data ``version`` taken at ``stamp``, with its .sha256."""
    tree = tmp_path / f"tree{version}"
    write_tree(tree, version)
    archive = tmp_path / "full" / f"backup-{stamp}.tar.gz"
    archive.parent.mkdir(exist_ok=True)
    subprocess.run(["tar", "-czf", str(archive), "-C", str(tree), "."], check=True)
    checksum(archive)
    return archive


def repack(archive: Path, edit: Callable[[tarfile.TarFile], None]) -> None:
    """Rewrite ``archive`` with its members and what ``edit`` adds; the backup job checksums it."""
    with tarfile.open(archive) as source:
        members = [(m, source.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
                   for m in source.getmembers()]
    with tarfile.open(archive, "w:gz") as out:
        for member, content in members:
            out.addfile(member, io.BytesIO(content) if content is not None else None)
        edit(out)
    checksum(archive)


def member(out: tarfile.TarFile, name: str, kind: bytes = tarfile.REGTYPE, target: str = "",
           content: bytes = b"x\n") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    info.size = len(content) if kind == tarfile.REGTYPE else 0
    out.addfile(info, io.BytesIO(content) if kind == tarfile.REGTYPE else None)


def args(tmp_path: Path, **more: Any) -> dict[str, Any]:
    return {"dest": str(tmp_path / "data"), "full_dir": str(tmp_path / "full"), "snapshot": "s1", **more}


def probed(tmp_path: Path, **more: Any) -> dict[str, Archive]:
    module = MODULES["backup_restore"]()
    found = gather(module, args(tmp_path, **more))["backups"]
    assert not found.error, found.error
    return {a.name: a for a in found.archives}


def run(tmp_path: Path, **more: Any) -> tuple[Change, Any]:
    """Plan, run the steps, and interpret them as the executor does."""
    module = MODULES["backup_restore"]()
    given = args(tmp_path, **more)
    facts = gather(module, given)
    change = module.plan(given, facts)
    return change, module.outcome(given, facts, change, apply(change))


UNSAFE: dict[str, tuple[Callable[[tarfile.TarFile], None], str]] = {
    "dotdot": (lambda t: member(t, "../escaped.txt"), 'member "../escaped.txt" contains ..'),
    "dotdot inside": (lambda t: member(t, "./sub/../../escaped.txt"), "contains .."),
    "absolute": (lambda t: member(t, "/tmp/remedy-absolute.txt"), 'member "/tmp/remedy-absolute.txt" is an '
                 "absolute path"),
    "symlink up": (lambda t: member(t, "./sub/evil", tarfile.SYMTYPE, "../../etc"),
                   'symbolic link "./sub/evil" points outside the tree (to "../../etc")'),
    "symlink absolute": (lambda t: member(t, "./evil", tarfile.SYMTYPE, "/etc/passwd"),
                         'symbolic link "./evil" points outside the tree (to "/etc/passwd")'),
    "hardlink up": (lambda t: member(t, "./h", tarfile.LNKTYPE, "../../etc/passwd"),
                    'hard link "./h" points outside the tree (to "../../etc/passwd")'),
    "hardlink absolute": (lambda t: member(t, "./h", tarfile.LNKTYPE, "/etc/shadow"),
                          'hard link "./h" points outside the tree (to "/etc/shadow")'),
    "name with a newline": (lambda t: member(t, "./x\ny", tarfile.SYMTYPE, "../z"),
                            'symbolic link "./x\\ny" points outside the tree (to "../z")'),
}


@pytest.mark.parametrize("kind", sorted(UNSAFE))
def test_the_probe_refuses_members_that_leave_the_tree(tmp_path: Path, kind: str) -> None:
    edit, why = UNSAFE[kind]
    full_backup(tmp_path, T2, 2)
    repack(full_backup(tmp_path, T3, 3), edit)
    found = probed(tmp_path)
    assert found[f"backup-{T2}.tar.gz"].validity == "ok"
    bad = found[f"backup-{T3}.tar.gz"]
    assert bad.validity == "unsafe" and why in bad.why(), bad.why()


def test_links_and_odd_names_inside_the_tree_are_fine(tmp_path: Path) -> None:
    def edit(out: tarfile.TarFile) -> None:
        member(out, "./sub/deeper/up", tarfile.SYMTYPE, "../../a.txt")
        member(out, "./sub/same", tarfile.LNKTYPE, "./a.txt")
        member(out, './q"uote -> "..', tarfile.SYMTYPE, "sub")
        member(out, "./..dots..", content=b"not a parent\n")
    repack(full_backup(tmp_path, T3, 3), edit)
    assert probed(tmp_path)[f"backup-{T3}.tar.gz"].validity == "ok"


def test_an_archive_checksummed_after_truncation_fails_gzip_test(tmp_path: Path) -> None:
    full_backup(tmp_path, T2, 2)
    archive = full_backup(tmp_path, T3, 3)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    checksum(archive)  # the backup job checksummed what it had written
    bad = probed(tmp_path)[archive.name]
    assert bad.validity == "gzip" and "gzip -t fails" in bad.why()


def test_gzip_that_is_not_a_tar_cannot_be_listed(tmp_path: Path) -> None:
    archive = tmp_path / "full" / f"backup-{T3}.tar.gz"
    archive.parent.mkdir()
    subprocess.run(f"head -c 4096 /dev/urandom | gzip >{archive}", shell=True, check=True)  # noqa: S602
    checksum(archive)
    assert probed(tmp_path)[archive.name].validity == "tar"


def test_a_manifest_mismatch_found_in_staging_falls_back_to_the_next_older(tmp_path: Path) -> None:
    full_backup(tmp_path, T2, 2)
    repack(full_backup(tmp_path, T3, 3), lambda t: member(t, "./a.txt", content=b"rotten\n"))
    write_tree(tmp_path / "data", 3)
    (tmp_path / "data" / "a.txt").unlink()
    change, done = run(tmp_path)
    assert change.summary.startswith(f"restore {tmp_path / 'data'} from backup-{T3}.tar.gz"), change.summary
    assert not done.failed, done.failed
    assert done.summary.startswith("restores 2024-03-13T10:00:00Z, 1 day older than the newest backup "
                                   "2024-03-14T10:00:00Z: skipped backup-20240314T100000.tar.gz (full) in "
                                   "staging: the staged tree does not match MANIFEST.sha256: a.txt: FAILED")
    assert done.summary.endswith(f"restored from backup-{T2}.tar.gz (full)")
    assert (tmp_path / "data" / "a.txt").read_text() == "a version 2\n"
    assert (tmp_path / "data.remedy-snapshot-s1").is_dir()
    assert not (tmp_path / "data.remedy-staging-s1").exists()


def test_a_link_that_escapes_through_another_link_is_caught_in_staging(tmp_path: Path) -> None:
    """Each link's text stays inside; resolved, ``up -> here/..`` with ``here -> .`` leaves the tree."""
    def edit(out: tarfile.TarFile) -> None:
        member(out, "./here", tarfile.SYMTYPE, ".")
        member(out, "./up", tarfile.SYMTYPE, "here/..")
    full_backup(tmp_path, T2, 2)
    repack(full_backup(tmp_path, T3, 3), edit)
    assert probed(tmp_path)[f"backup-{T3}.tar.gz"].validity == "ok"
    change, done = run(tmp_path, state="staged")
    assert "holds a symbolic link that resolves outside the tree, to " + str(tmp_path) in done.summary
    assert (tmp_path / "data.remedy-staging-s1" / "a.txt").read_text() == "a version 2\n"


def test_when_no_point_passes_staging_nothing_is_replaced(tmp_path: Path) -> None:
    repack(full_backup(tmp_path, T3, 3), lambda t: member(t, "./a.txt", content=b"rotten\n"))
    write_tree(tmp_path / "data", 1)
    before = (tmp_path / "data" / "a.txt").read_text()
    (tmp_path / "data" / "MANIFEST.sha256").write_text("0" * 64 + "  a.txt\n")
    _, done = run(tmp_path)
    assert not done.changed
    assert done.failed.startswith("no restore point passed its checks in staging; nothing was replaced: "
                                  f"skipped backup-{T3}.tar.gz (full) in staging: the staged tree does not "
                                  "match"), done
    assert (tmp_path / "data" / "a.txt").read_text() == before
    assert not (tmp_path / "data.remedy-staging-s1").exists()
    assert not (tmp_path / "data.remedy-snapshot-s1").exists()


def test_staged_then_restored_swaps_without_reading_the_archives_again(tmp_path: Path) -> None:
    full_backup(tmp_path, T3, 3)
    write_tree(tmp_path / "data", 1)
    (tmp_path / "data" / "a.txt").write_text("damaged\n")
    staged, done = run(tmp_path, state="staged")
    assert staged.changed and not done.failed
    assert (tmp_path / "data" / "a.txt").read_text() == "damaged\n", "staging replaces nothing"
    (tmp_path / "full" / f"backup-{T3}.tar.gz").unlink()  # the swap needs only the staged tree
    swapped, done = run(tmp_path)
    assert swapped.summary.startswith("swap the staged (and checked) tree"), swapped.summary
    assert not done.failed and (tmp_path / "data" / "a.txt").read_text() == "a version 3\n"


def test_the_task_result_says_which_point_was_restored_when_staging_fell_back(tmp_path: Path) -> None:
    """Through the executor: the result's message is what the steps did, not only what the plan said."""
    full_backup(tmp_path, T2, 2)
    repack(full_backup(tmp_path, T3, 3), lambda t: member(t, "./a.txt", content=b"rotten\n"))
    write_tree(tmp_path / "data", 1)
    (tmp_path / "data" / "a.txt").write_text("damaged\n")
    inventory, book = tmp_path / "hosts.ini", tmp_path / "book.yml"
    inventory.write_text("h0 ansible_connection=local\n")
    book.write_text(json.dumps([{"hosts": "all", "tasks": [
        {"name": "restore", "backup_restore": args(tmp_path)}]}]))
    run_ = execute(load_inputs([str(book)], [str(inventory)]),
                   RunOptions(lock_path=str(tmp_path / "remedy.lock")), NullListener())
    result = run_.hosts[0].results[0]
    assert str(result.status) == "changed", result.message
    assert result.message.startswith("restores 2024-03-13T10:00:00Z, 1 day older than the newest"), result
    assert result.message.endswith(f"restored from backup-{T2}.tar.gz (full)")
