"""Where the default host lock lives: a directory the connecting user owns, never a shared name.

The lock command runs under ``setpriv`` as a numeric user with no account (a
fresh uid per test, so concurrent test sessions never share its directories).
"""

from __future__ import annotations

import os
import secrets
import shlex
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.connection import ConnectionParams, HeldCommand
from runner.connection.local import LocalConnection
from runner.results import Status
from runner.run.hostlock import HostLock, LockBusy, LockError, default_lock_name

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs the lock command as other users (needs root)")


class AsUser:
    """A local connection whose held commands run as ``uid`` with ``HOME=home``."""

    def __init__(self, uid: int, home: Path) -> None:
        self.uid, self.home = uid, home
        self.local = LocalConnection(ConnectionParams(name="local", address="localhost", kind="local"))

    def hold(self, command: str) -> HeldCommand:
        return self.local.hold(f"HOME={shlex.quote(str(self.home))} exec setpriv --reuid={self.uid} "
                               f"--regid={self.uid} --clear-groups sh -c {shlex.quote(command)}")

    def run(self, command: str, *, timeout: float) -> object:
        return self.local.run(command, timeout=timeout)

    def close(self) -> None:
        self.local.close()


@pytest.fixture
def uid() -> Iterator[int]:
    """A uid no account has; its /tmp lock directory is removed afterwards."""
    number = 200_000 + secrets.randbelow(1_000_000)
    yield number
    for path in (Path(f"/tmp/remedy-{number}"),):
        if path.is_dir() and not path.is_symlink():
            for child in path.iterdir():
                child.unlink()
            path.rmdir()


def home_of(uid: int, shared: Path) -> Path:
    home = shared / f"home-{uid}"
    home.mkdir()
    os.chown(home, uid, uid)
    return home


def take(conn: object, name: str, owner: str) -> HostLock:
    lock = HostLock(conn, name, owner, answer_timeout=30)
    lock.acquire(timeout=0, stop=threading.Event())
    return lock


def test_a_users_default_lock_is_in_a_0700_directory_of_its_own(uid: int, shared: Path) -> None:
    conn = AsUser(uid, home_of(uid, shared))
    lock = take(conn, default_lock_name("web1"), "run-1")
    try:
        directory = Path(f"/tmp/remedy-{uid}")
        assert lock.path == str(directory / "web1.lock")
        info = directory.lstat()
        assert stat.S_ISDIR(info.st_mode) and info.st_uid == uid and stat.S_IMODE(info.st_mode) == 0o700
        with pytest.raises(LockBusy, match=rf"held by run run-1 \({directory}/web1.lock\)"):
            take(AsUser(uid, conn.home), default_lock_name("web1"), "run-2")
    finally:
        lock.release()
        conn.close()


def test_another_users_lock_of_the_same_host_does_not_block(uid: int, shared: Path) -> None:
    first, second = AsUser(uid, home_of(uid, shared)), AsUser(uid + 1, home_of(uid + 1, shared))
    held = take(first, default_lock_name("web1"), "run-1")
    try:
        other = take(second, default_lock_name("web1"), "run-2")
        assert other.path == f"/tmp/remedy-{uid + 1}/web1.lock"
        other.release()
    finally:
        held.release()
        first.close()
        second.close()
        for path in Path(f"/tmp/remedy-{uid + 1}").glob("*"):
            path.unlink()
        Path(f"/tmp/remedy-{uid + 1}").rmdir()


@pytest.mark.parametrize("planted", ["directory", "symlink"])
def test_a_lock_directory_planted_by_another_user_is_neither_used_nor_followed(
    uid: int, shared: Path, planted: str
) -> None:
    trap = shared / "trap"
    trap.mkdir(mode=0o777)
    trap.chmod(0o777)
    name = Path(f"/tmp/remedy-{uid}")
    if planted == "directory":
        name.mkdir(mode=0o777)  # root's, world-writable: it must not be used
        name.chmod(0o777)
    else:
        name.symlink_to(trap)
    home = home_of(uid, shared)
    conn = AsUser(uid, home)
    try:
        lock = take(conn, default_lock_name("web1"), "run-1")
        assert lock.path == str(home / ".cache/remedy/web1.lock")
        lock.release()
        assert list(trap.iterdir()) == [] and not (name / "web1.lock").exists()
    finally:
        conn.close()
        name.unlink() if name.is_symlink() else name.rmdir()


def test_a_lock_file_another_user_left_unreadable_is_a_permission_error_not_locked(
    uid: int, shared: Path
) -> None:
    path = shared / "shared.lock"
    path.write_text("")
    path.chmod(0o600)  # root's, as a root run leaves it
    conn = AsUser(uid, home_of(uid, shared))
    try:
        with pytest.raises(LockError) as refused:
            take(conn, str(path), "run-1")
        assert refused.value.status is Status.FAILED
        assert f"permission denied: cannot open {path} as" in str(refused.value)
    finally:
        conn.close()


def test_a_lock_file_another_user_owns_but_may_be_read_is_locked_read_only(uid: int, shared: Path) -> None:
    path = shared / "shared.lock"
    path.write_text("")
    path.chmod(0o644)
    conn = AsUser(uid, home_of(uid, shared))
    try:
        lock = take(conn, str(path), "run-1")
        assert lock.path == str(path)
        with pytest.raises(LockBusy):
            take(AsUser(uid + 2, conn.home), str(path), "run-2")
        lock.release()
        assert path.read_text() == ""  # not the user's to write
    finally:
        conn.close()


def test_roots_default_lock_is_in_a_root_owned_0700_run_directory(shared: Path) -> None:
    conn = AsUser(0, shared)
    host = f"remedy-test-{secrets.token_hex(4)}"
    lock = take(conn, default_lock_name(host), "run-1")
    try:
        assert lock.path == f"/run/remedy/{host}.lock"
        info = Path("/run/remedy").lstat()
        assert stat.S_ISDIR(info.st_mode) and info.st_uid == 0 and stat.S_IMODE(info.st_mode) == 0o700
    finally:
        lock.release()
        conn.close()
        Path(lock.path).unlink()
