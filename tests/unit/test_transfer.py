"""The upload script, run by this machine's ``sh`` on real files (as root)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from runner.connection.shell import contained_script
from runner.modules.base import Upload
from runner.results import CommandResult
from runner.run import transfer
from tests.support.prerequisites import require
from tests.unit.modules.localrun import path_without, sh

NOBODY = 65534


@pytest.fixture(autouse=True)
def _as_root() -> None:
    require(os.geteuid() == 0, "the upload tests change files' owners: they need root")


def upload(step: Upload, env: dict[str, str] | None = None, run_id: str = "") -> CommandResult:
    return sh(transfer.upload_script(step, run_id), step.content, env)


def contained(script: str, stdin: bytes) -> str:
    """``script`` as the persistent shell runs a contained command given ``stdin``."""
    return f"{contained_script(script, stdin)} </dev/null"


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.startswith(".remedy.")]


@pytest.mark.parametrize("mode", ["0640", "0600", "644", "0755", "2750", "0400", "0000"])
def test_a_new_file_gets_its_content_and_mode(tmp_path: Path, mode: str) -> None:
    dest = tmp_path / "new.conf"
    result = upload(Upload(dest=str(dest), content=b"a\x00b\n", mode=mode))
    assert result.rc == 0, result.stderr
    assert dest.read_bytes() == b"a\x00b\n"
    assert stat.S_IMODE(dest.stat().st_mode) == int(mode, 8)
    assert leftovers(tmp_path) == []


def test_the_owner_kept_from_the_users_own_file_needs_no_chown(tmp_path: Path) -> None:
    dest = tmp_path / "app.ini"
    dest.write_text("old\n")
    mine = dest.stat()
    step = Upload(dest=str(dest), content=b"new\n", mode="0640", owner=str(mine.st_uid),
                  group=str(mine.st_gid), owner_is_dest=True)
    result = upload(step, path_without(tmp_path, "chown"))
    assert result.rc == 0, result.stderr
    assert dest.read_text() == "new\n"
    assert (dest.stat().st_uid, dest.stat().st_gid) == (mine.st_uid, mine.st_gid)


def test_the_owner_kept_from_another_users_file_is_set(tmp_path: Path) -> None:
    dest = tmp_path / "app.ini"
    dest.write_text("old\n")
    os.chown(dest, NOBODY, NOBODY)
    step = Upload(dest=str(dest), content=b"new\n", mode="0640", owner=str(NOBODY), group=str(NOBODY),
                  owner_is_dest=True)
    assert upload(step, path_without(tmp_path, "chown")).rc == 76  # the chown is needed, and missing
    assert dest.read_text() == "old\n" and leftovers(tmp_path) == []
    assert upload(step).rc == 0
    assert (dest.stat().st_uid, dest.stat().st_gid) == (NOBODY, NOBODY)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640


def test_a_setgid_directory_does_not_pass_its_group_to_the_kept_owner(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chown(shared, 0, NOBODY)
    shared.chmod(0o2775)
    dest = shared / "app.ini"
    dest.write_text("old\n")
    os.chown(dest, os.geteuid(), os.getegid())
    mine = dest.stat()
    for step in (Upload(dest=str(dest), content=b"new\n", mode="0640", owner=str(mine.st_uid),
                        group=str(mine.st_gid), owner_is_dest=True),
                 Upload(dest=str(dest), content=b"newer\n", mode="0640")):
        assert upload(step).rc == 0
        assert (dest.stat().st_uid, dest.stat().st_gid) == (mine.st_uid, mine.st_gid)
        assert stat.S_IMODE(dest.stat().st_mode) == 0o640


def test_a_default_acl_widens_neither_the_temp_file_nor_the_result(tmp_path: Path) -> None:
    require(shutil.which("setfacl") is not None, "setfacl not found (package acl)")
    shared = tmp_path / "acl"
    shared.mkdir()
    subprocess.run(["setfacl", "-d", "-m", "u::rwx,g::rwx,o::r-x", str(shared)], check=True)
    env = path_without(tmp_path, "cat")
    seen = tmp_path / "seen"
    # a cat that records the mode of the file it writes the content into
    spy = Path(env["PATH"]) / "cat"
    spy.write_text(f'#!/bin/sh\nexec 3>&1\nstat -L -c %a /proc/$$/fd/3 > {seen}\nexec 3>&-\n'
                   f'exec {shutil.which("cat")} "$@"\n')
    spy.chmod(0o755)
    dest = shared / "secret.conf"
    assert upload(Upload(dest=str(dest), content=b"k=v\n", mode="0600"), env).rc == 0
    assert seen.read_text().strip() == "600"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert dest.read_text() == "k=v\n"


def test_backups_of_one_file_in_one_shell_in_the_same_second_are_all_kept(tmp_path: Path) -> None:
    dest = tmp_path / "app.conf"
    dest.write_text("v0\n")
    # as contained uploads run: subshells of one shell, which share its $$
    lines = []
    for version in (b"v1\n", b"v2\n", b"v3\n"):
        script = transfer.upload_script(Upload(dest=str(dest), content=version, mode="0644", backup=True))
        lines.append(contained(script, version))
    done = sh("\n".join(lines))
    assert done.rc == 0, done.stderr
    backups = sorted(p.read_text() for p in tmp_path.glob("app.conf.*.bak"))
    assert backups == ["v0\n", "v1\n", "v2\n"]


def test_a_checksum_mismatch_leaves_the_destination_alone(tmp_path: Path) -> None:
    dest = tmp_path / "app.ini"
    dest.write_text("old\n")
    step = Upload(dest=str(dest), content=b"new\n", mode="0640")
    assert sh(transfer.upload_script(step), b"truncated").rc == 75
    assert dest.read_text() == "old\n" and leftovers(tmp_path) == []


def test_a_contained_upload_writes_the_bytes_of_remedy_stdin(tmp_path: Path) -> None:
    dest = tmp_path / "blob.bin"
    content = bytes(range(256)) * 3 + b"%s\\'\n"
    script = transfer.upload_script(Upload(dest=str(dest), content=content, mode="0600"))
    done = sh(contained(script, content))
    assert done.rc == 0, done.stderr
    assert dest.read_bytes() == content and leftovers(tmp_path) == []


def test_without_remedy_stdin_an_upload_reads_stdin(tmp_path: Path) -> None:
    dest = tmp_path / "app.conf"
    # a remedy_stdin that is not the connection's function would fail the checksum
    assert sh("remedy_stdin() { printf 'other'; }\n" + transfer.upload_script(
        Upload(dest=str(dest), content=b"k=v\n", mode="0644")), b"k=v\n").rc == 75
    assert upload(Upload(dest=str(dest), content=b"k=v\n", mode="0644")).rc == 0
    assert dest.read_bytes() == b"k=v\n"


def start_time(pid: int) -> str:
    return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[19]


def test_an_upload_removes_the_temp_files_whose_writer_is_gone_and_only_those(tmp_path: Path) -> None:
    ended = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    live = subprocess.Popen(["sleep", "60"])
    try:
        names = {
            "gone": f".remedy.run1.{ended.stdout.strip()}-1234.AAAAAAAA",  # its writer has ended
            "reused": f".remedy.run2.{os.getpid()}-1.BBBBBBBB",  # that pid is another process now
            "live": f".remedy.run3.{live.pid}-{start_time(live.pid)}.CCCCCCCC",
            "foreign": ".remedy.DDDDDDDD",  # not named by a writer: never touched
            "odd": ".remedy.run4.x1-2.EEEEEEEE",
        }
        for name in names.values():
            (tmp_path / name).write_text("half\n")
        result = upload(Upload(dest=str(tmp_path / "app.conf"), content=b"k=v\n"), run_id="run5")
        assert result.rc == 0, result.stderr
        assert sorted(leftovers(tmp_path)) == sorted([names["live"], names["foreign"], names["odd"]])
        assert result.stderr.count("the upload that wrote it is gone") == 2
    finally:
        live.kill()
        live.wait()


def test_the_temp_file_is_named_after_the_run_and_its_writer(tmp_path: Path) -> None:
    dest = tmp_path / "app.conf"
    script = transfer.upload_script(Upload(dest=str(dest), content=b"k=v\n", validate="ls -l %s"), "ab12")
    done = sh(script, b"k=v\n")
    assert done.rc == 0, done.stderr
    name = done.stderr.split()[-1].rsplit("/", 1)[1]
    run, writer = name.split(".")[2:4]
    pid, start = writer.split("-")
    assert run == "ab12" and pid.isdigit() and start.isdigit() and int(start) > 0
