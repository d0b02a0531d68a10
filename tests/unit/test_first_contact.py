"""The first-contact paragraph: hosts grouped by known_hosts file and port, long lists cut short.

The messages come from ``hostkeys.verify`` itself, so a change of its wording breaks this test.
"""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from runner.connection import hostkeys
from runner.errors import UnreachableError
from runner.output.firstcontact import render_first_contact
from runner.results import HostResult, Run, Status, TaskResult


def refused(host: str, name: str, known_hosts: Path, key: paramiko.PKey) -> HostResult:
    with pytest.raises(UnreachableError) as caught:
        hostkeys.verify(host, name, key, {}, known_hosts, accept_new=False)
    message = f"{caught.value.reason}: {caught.value.detail}"
    return HostResult(host, (TaskResult(host, "book:tasks[1]", "look", Status.UNREACHABLE, message),),
                      Status.UNREACHABLE)


@pytest.fixture(scope="module")
def key() -> paramiko.PKey:
    return paramiko.RSAKey.generate(1024)


def test_hosts_on_port_22_share_one_ssh_keyscan_and_others_get_theirs(key: paramiko.PKey) -> None:
    known = Path("/home/sre/.ssh/known_hosts")
    run = Run("r1", (refused("web1", "10.0.0.1", known, key), refused("web2", "10.0.0.2", known, key),
                     refused("db1", "[10.0.0.3]:2222", known, key),
                     HostResult("ok1", (TaskResult("ok1", "book:tasks[1]", "look", Status.OK),), Status.OK)))
    text = render_first_contact(run)
    assert text.startswith("First contact: 3 hosts (web1, web2, db1) offered a host key")
    assert f"  ssh-keyscan 10.0.0.1 10.0.0.2 >> {known}\n" in text
    assert f"  ssh-keyscan -p 2222 10.0.0.3 >> {known}\n" in text
    assert text.endswith("or run again with --accept-new-host-keys (records unknown keys; "
                         "a changed key is still refused).")


def test_a_large_fleet_is_named_in_part_and_counted(key: paramiko.PKey) -> None:
    known = Path("/root/.ssh/known_hosts")
    run = Run("r1", tuple(refused(f"h{i:02d}", f"[10.0.0.{i}]:{2200 + i}", known, key) for i in range(12)))
    text = render_first_contact(run)
    assert "(h00, h01, h02, h03, h04, h05, h06, h07 and 4 more)" in text
    assert text.count("  ssh-keyscan") == 3 and "  ... and 9 more such commands" in text
    assert len(text.splitlines()) == 6


def test_no_unknown_key_no_paragraph(key: paramiko.PKey) -> None:
    other = TaskResult("a", "book:tasks[1]", "look", Status.UNREACHABLE, "connect: connection refused")
    assert render_first_contact(Run("r1", (HostResult("a", (other,), Status.UNREACHABLE),))) == ""


def test_the_paragraph_fits_the_width_and_its_commands_stay_whole(key: paramiko.PKey) -> None:
    known = Path("/home/sre/.ssh/known_hosts")
    run = Run("r1", (refused("web1", "10.0.0.1", known, key), refused("db1", "[10.0.0.3]:2222", known, key)))
    text = render_first_contact(run, 100)
    assert max(len(line) for line in text.splitlines()) <= 100, text
    assert f"  ssh-keyscan 10.0.0.1 >> {known}\n" in text
    assert f"  ssh-keyscan -p 2222 10.0.0.3 >> {known}\n" in text
    assert " ".join(text.split()).endswith("or run again with --accept-new-host-keys (records unknown keys; "
                                           "a changed key is still refused).")
