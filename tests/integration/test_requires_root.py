"""A play that declares ``requires_root`` over real sshd as an unprivileged account: refused
before its diagnosis, with what to do; with ``become`` (sudo, -K's password) it runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.connection import ConnectionParams, open_connection
from runner.events import NullListener
from runner.load.inputs import load_inputs
from runner.plan.hosts import ConnectOptions, RunOptions
from runner.results import CAUSE, Run, Status
from runner.run.executor import Connect, execute
from runner.testing import RecordingConnection, Sshd
from tests.support.accounts import Account

BOOK = """- hosts: all
  requires_root: true
{become}  diagnose:
    - {{name: probe, shell: "touch {shared}/diagnosed-$(id -un)", failed_when: true}}
  tasks:
    - {{name: fix, shell: "touch {shared}/fixed-$(id -un)"}}
"""


def run_as(account: Account, sshd: Sshd, shared: Path, *, become: str, host_vars: str = "",
           user: str = "", connect: Connect | None = None) -> Run:
    """Run the book on ``sshd`` as ``account`` (or ``user``), through ``connect`` if given."""
    (shared / "hosts.ini").write_text(
        f"web1 ansible_host=127.0.0.1 ansible_port={sshd.port} ansible_user={user or account.name} "
        f"ansible_ssh_private_key_file={sshd.client_key} remedy_known_hosts={sshd.known_hosts} "
        f"remedy_lock_path={shared}/web1.lock {host_vars}\n")
    (shared / "needs_root.yml").write_text(BOOK.format(become=become, shared=shared))
    inputs = load_inputs([str(shared / "needs_root.yml")], [str(shared / "hosts.ini")])
    options = RunOptions(connect=ConnectOptions(ssh_config=os.devnull, become_password=account.password))
    return execute(inputs, options, NullListener(), connect=connect)


def test_a_play_needing_root_is_refused_before_its_diagnosis_and_says_what_to_do(
    shared_sshd: Sshd, account: Account, shared: Path
) -> None:
    run = run_as(account, shared_sshd, shared, become="")
    [host] = run.hosts
    assert host.status is Status.FAILED and run.exit_code == 2
    first, *rest = host.results  # one root cause, recorded once; the play's other tasks skipped because of it
    assert first.status is Status.FAILED and rest
    assert {(r.status, r.message, r.data[CAUSE]) for r in rest} == {
        (Status.SKIPPED, "skipped because the connection is not root", first.task)}
    assert host.results[0].message == (
        f"needs_root needs root on web1; connected as {account.name}: add become: true "
        "(or ansible_become=true for the host; -K if sudo asks for a password) or connect as root")
    assert sorted(p.name for p in shared.iterdir()) == ["hosts.ini", "needs_root.yml"]  # nothing ran


@pytest.mark.parametrize(("become", "host_vars"), [("  become: true\n", ""), ("", "ansible_become=true")],
                         ids=["play", "inventory"])
def test_with_become_the_play_needing_root_runs_as_root(
    shared_sshd: Sshd, account: Account, shared: Path, become: str, host_vars: str
) -> None:
    run = run_as(account, shared_sshd, shared, become=become, host_vars=host_vars)
    [host] = run.hosts
    assert host.status is Status.CHANGED, [r.message for r in host.results]
    assert (shared / "diagnosed-root").exists() and (shared / "fixed-root").exists()


class Recorded:
    """``connect`` for ``execute`` that keeps a ``RecordingConnection`` of each host it opens."""

    def __init__(self) -> None:
        self.opened: list[RecordingConnection] = []

    def __call__(self, params: ConnectionParams) -> RecordingConnection:
        self.opened.append(RecordingConnection(open_connection(params)))
        return self.opened[-1]


def test_who_the_connection_runs_as_costs_no_command_of_its_own(
    shared_sshd: Sshd, account: Account, shared: Path
) -> None:
    refused, allowed = Recorded(), Recorded()
    run = run_as(account, shared_sshd, shared, become="", connect=refused)
    assert run.hosts[0].status is Status.FAILED and "connected as" in run.hosts[0].results[0].message
    assert [c.commands for c in refused.opened] == [[]]  # refused before any command was sent
    run = run_as(account, shared_sshd, shared, become="", user="root", connect=allowed)
    assert run.hosts[0].status is Status.CHANGED, [r.message for r in run.hosts[0].results]
    [conn] = allowed.opened  # only the book's commands: the diagnosis, its re-check under the lock, the fix
    sent = ("diagnosed", "diagnosed", "fixed")
    assert conn.commands == [f"touch {shared}/{name}-$(id -un)" for name in sent]
    assert (shared / "diagnosed-root").exists() and (shared / "fixed-root").exists()
