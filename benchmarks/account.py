"""The account the benchmark logs in as: ``/bin/sh`` as its shell, removed afterwards.

sshd runs every command through the account's login shell. On a developer
machine root's shell is often bash with a heavy ``~/.bashrc`` (version
managers), which Debian's bash sources for every command that sshd starts:
here that added ~200 ms to every command, the same for every tool, and
would measure the machine rather than the tools. A fresh account with
``/bin/sh`` behaves like a service account on a real host. Needs root;
without root the benchmark logs in as the current user instead.
"""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    created: bool


def create(home: Path) -> Account:
    """A new account ``remedy-bench-XXXXXX`` with ``home`` and ``/bin/sh``; the current user without root."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        return Account(me.pw_name, me.pw_uid, me.pw_gid, created=False)
    name = f"remedy-bench-{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/sh", name],
                   check=True, capture_output=True)
    # "!" (locked, useradd's default) makes sshd refuse even key logins; "*" only disables passwords
    subprocess.run(["usermod", "--password", "*", name], check=True, capture_output=True)
    entry = pwd.getpwnam(name)
    return Account(name, entry.pw_uid, entry.pw_gid, created=True)


def remove(account: Account) -> None:
    """Delete a created account once its processes are gone (its home goes with the work dir)."""
    if not account.created:
        return
    deadline = time.monotonic() + 20
    while _processes_of(account.uid) and time.monotonic() < deadline:
        time.sleep(0.1)
    subprocess.run(["userdel", account.name], capture_output=True, check=False)


def _processes_of(uid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
