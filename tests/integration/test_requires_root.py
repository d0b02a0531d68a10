"""A play that declares ``requires_root`` over real sshd as an unprivileged account: refused
before its diagnosis, with what to do; with ``become`` (sudo, -K's password) it runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.events import NullListener
from runner.load.inputs import load_inputs
from runner.plan.hosts import ConnectOptions, RunOptions
from runner.results import CAUSE, Run, Status
from runner.run.executor import execute
from runner.testing import Sshd
from tests.support.accounts import Account

BOOK = """- hosts: all
  requires_root: true
{become}  diagnose:
    - {{name: probe, shell: "touch {shared}/diagnosed-$(id -un)", failed_when: true}}
  tasks:
    - {{name: fix, shell: "touch {shared}/fixed-$(id -un)"}}
"""


def run_as(account: Account, sshd: Sshd, shared: Path, *, become: str, host_vars: str = "") -> Run:
    (shared / "hosts.ini").write_text(
        f"web1 ansible_host=127.0.0.1 ansible_port={sshd.port} ansible_user={account.name} "
        f"ansible_ssh_private_key_file={sshd.client_key} remedy_known_hosts={sshd.known_hosts} "
        f"remedy_lock_path={shared}/web1.lock {host_vars}\n")
    (shared / "needs_root.yml").write_text(BOOK.format(become=become, shared=shared))
    inputs = load_inputs([str(shared / "needs_root.yml")], [str(shared / "hosts.ini")])
    options = RunOptions(connect=ConnectOptions(ssh_config=os.devnull, become_password=account.password))
    return execute(inputs, options, NullListener())


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
