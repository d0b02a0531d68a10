"""Fail, never silently skip, when a test's system prerequisite is missing.

``REMEDY_ALLOW_SKIP=1`` turns the failure into a skip, for machines that
cannot install OpenSSH or sudo.
"""

from __future__ import annotations

import os
import shutil

import pytest

from runner.testing import SSHD_PATH


def require(ok: bool, what: str) -> None:
    """Fail (or skip, with REMEDY_ALLOW_SKIP=1) unless ``ok``."""
    if ok:
        return
    if os.environ.get("REMEDY_ALLOW_SKIP") == "1":
        pytest.skip(f"{what} (skipped: REMEDY_ALLOW_SKIP=1)")
    pytest.fail(f"{what}; install it (see scripts/test.sh) or set REMEDY_ALLOW_SKIP=1", False)


def require_sshd() -> None:
    """OpenSSH's sshd at ``SSHD_PATH`` and ssh-keygen on PATH."""
    require(os.access(SSHD_PATH, os.X_OK), f"OpenSSH server not found at {SSHD_PATH}")
    require(shutil.which("ssh-keygen") is not None, "ssh-keygen not found")


def require_root_and_sudo() -> None:
    """Root (to create a test account) and the sudo and useradd commands."""
    require(os.geteuid() == 0, "creating a password account needs root")
    for tool in ("sudo", "useradd", "chpasswd", "visudo"):
        require(shutil.which(tool) is not None, f"{tool} not found")
