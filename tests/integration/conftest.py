"""Fixtures for integration tests: real sshd servers on loopback, test accounts, connections.

A missing sshd (or sudo) FAILS these tests, so that CI can never pass them
by skipping; set ``REMEDY_ALLOW_SKIP=1`` to skip instead on a machine without
them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.connection import Connection, ConnectionParams, open_connection
from runner.testing import Sshd
from tests.support.accounts import Account, create_account, remove_account
from tests.support.prerequisites import require_root_and_sudo, require_sshd


@pytest.fixture(scope="session")
def shared_sshd() -> Iterator[Sshd]:
    """One sshd for the whole session, for tests that leave it as they found it."""
    require_sshd()
    with Sshd() as server:
        yield server


@pytest.fixture
def sshd() -> Iterator[Sshd]:
    """A private sshd for tests that restart it, kill it or read its log."""
    require_sshd()
    with Sshd() as server:
        yield server


@pytest.fixture
def connect() -> Iterator[Callable[[ConnectionParams], Connection]]:
    """``connect(params)``: an opened connection, closed after the test."""
    opened: list[Connection] = []

    def _connect(params: ConnectionParams) -> Connection:
        conn = open_connection(params)
        opened.append(conn)
        conn.connect()
        return conn

    yield _connect
    for conn in opened:
        conn.close()


@pytest.fixture
def ssh(shared_sshd: Sshd, connect: Callable[[ConnectionParams], Connection]) -> Connection:
    """An SSH connection to the shared sshd, as the current user."""
    return connect(shared_sshd.params("web1"))


@pytest.fixture(scope="session")
def account() -> Iterator[Account]:
    """A local account with a password and sudo rights (needs root and sudo)."""
    require_root_and_sudo()
    created = create_account()
    try:
        yield created
    finally:
        remove_account(created)


@pytest.fixture
def marker(tmp_path: Path) -> str:
    """A unique word to put in a remote command line and look for with pgrep."""
    return f"remedy-marker-{tmp_path.name}-{os.getpid()}"
