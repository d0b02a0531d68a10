"""A throwaway local account with a password and sudo rights, for password and sudo tests.

Needs root. The account is named ``remedy-test-<random>`` so that concurrent
test sessions never share it; ``remove`` deletes the account, its home and its
sudoers drop-in, and nothing else.
"""

from __future__ import annotations

import pwd
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.waiting import wait_until


@dataclass(frozen=True)
class Account:
    name: str
    password: str = field(repr=False)

    @property
    def sudoers(self) -> Path:
        return Path("/etc/sudoers.d") / self.name.replace(".", "_")


def create_account() -> Account:
    """Create the account (shell /bin/sh, a home) with a random password and sudo rights."""
    account = Account(f"remedy-test-{secrets.token_hex(3)}", secrets.token_urlsafe(18))
    subprocess.run(
        ["useradd", "--create-home", "--shell", "/bin/sh", account.name],
        check=True,
        capture_output=True,
    )
    subprocess.run(["chpasswd"], input=f"{account.name}:{account.password}\n".encode(), check=True)
    rule = f"Defaults:{account.name} timestamp_timeout=0, passwd_tries=3\n{account.name} ALL=(ALL:ALL) ALL\n"
    staged = account.sudoers.with_name(f".{account.sudoers.name}.tmp")
    staged.write_text(rule)
    staged.chmod(0o440)
    subprocess.run(["visudo", "-cqf", str(staged)], check=True)
    staged.rename(account.sudoers)
    return account


def remove_account(account: Account) -> None:
    """Delete the account, its home and its sudoers drop-in, once its processes are gone.

    Raises:
        AssertionError: processes of the account outlived the wait, or userdel failed.
    """
    account.sudoers.unlink(missing_ok=True)
    uid = pwd.getpwnam(account.name).pw_uid
    wait_until(lambda: not _processes_of(uid), timeout=20, what=f"{account.name}'s processes")
    done = subprocess.run(["userdel", "--remove", account.name], capture_output=True, text=True)
    assert done.returncode in (0, 12), f"userdel {account.name}: {done.stderr}"  # 12: home left behind


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
