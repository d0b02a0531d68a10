"""The permissions module on a real sshd host, over a tree that holds every kind of legal file name.

Names with a newline, a tab, spaces at both ends, quotes, a backslash, a
leading dash and bytes that are not UTF-8 are audited, fixed, and put back
byte for byte from the snapshot when the verification fails; messages name
them by their full path, escaped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.testing import Sshd

REPO = Path(__file__).resolve().parents[2]
NAMES = [b"a\nb", b"tab\there", b" spaces ", b"q\"uo'te", b"back\\slash", b"-dash", b"bad\xff\xfe",
         b"back\\xff"]
DECLARED = ('path: "{{ root }}", owner: root, group: root, dir_mode: "0755", file_mode: "0644", '
            "recurse: true")
PLAYBOOK = f"""
- hosts: all
  diagnose:
    - {{name: audit the tree, id: audit, permissions: {{{DECLARED}, state: audited}}, register: audit}}
    - {{name: the tree is as declared, assert: {{that: audit.ok, fail_msg: "{{{{ audit.summary }}}}"}}}}
  tasks:
    - {{name: fix the tree, id: fix, permissions: {{{DECLARED}, snapshot: "{{{{ snapshot }}}}"}}}}
  verify:
    - {{name: audit it again, permissions: {{{DECLARED}, state: audited}}, register: after}}
    - {{name: as declared, assert: {{that: ["after.ok", "not (force_failure | bool)"]}}}}
  rollback:
    - name: put the old attributes back
      permissions: {{path: "{{{{ root }}}}", owner: root, state: reverted, snapshot: "{{{{ snapshot }}}}"}}
"""


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[bytes]:
    """A tree whose entries below its top differ from the declaration (uid 12345 has no name)."""
    root = os.fsencode(tmp_path / "tree")
    os.mkdir(root)
    for index, name in enumerate(NAMES):
        path = os.path.join(root, name)
        if index % 3 == 0:
            os.mkdir(path, 0o750)
            with open(os.path.join(path, name), "wb") as handle:
                handle.write(b"inside")
            os.chmod(os.path.join(path, name), 0o600)
        else:
            with open(path, "wb") as handle:
                handle.write(b"x")
            os.chmod(path, 0o600)
        os.chown(path, 12345, 12345)
    os.chmod(root, 0o755)
    yield root


def attributes(root: bytes) -> dict[bytes, tuple[int, int, int]]:
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            info = os.lstat(os.path.join(directory, name))
            found[os.path.join(directory, name)] = (info.st_mode, info.st_uid, info.st_gid)
    info = os.lstat(root)
    return {**found, root: (info.st_mode, info.st_uid, info.st_gid)}


def remedy(sshd: Sshd, site: Path, root: bytes, *args: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    params = sshd.params("web1")
    (site / "book.yml").write_text(PLAYBOOK)
    (site / "hosts.yml").write_text(json.dumps({"all": {"hosts": {"web1": {
        "ansible_host": "127.0.0.1", "ansible_port": params.port, "ansible_user": params.user,
        "ansible_ssh_private_key_file": params.key_file, "remedy_known_hosts": params.known_hosts,
        "remedy_lock_path": str(site / "remedy.lock"), "root": os.fsdecode(root),
        "snapshot": str(site / "snapshots" / "tree")}}}}))
    argv = [sys.executable, "-m", "runner", args[0], str(site / "book.yml"), "-i", str(site / "hosts.yml"),
            "-F", str(params.ssh_config), "--format", "json", "--audit-log", str(site / "audit.jsonl"),
            *args[1:]]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    return done.returncode, json.loads(done.stdout), done.stderr


def task(document: dict, suffix: str) -> dict:  # type: ignore[type-arg]
    return next(t for t in document["hosts"][0]["tasks"] if t["task"].endswith(suffix))


def test_every_legal_name_is_planned_and_shown_by_its_escaped_full_path(
    shared_sshd: Sshd, tmp_path: Path, tree: bytes
) -> None:
    rc, plan, stderr = remedy(shared_sshd, tmp_path, tree, "plan", "--diff")
    assert rc == 0, stderr
    fix = task(plan, ":fix")
    assert fix.get("predicted") == "change", fix
    [diff] = fix["diffs"]
    for line in ['"./a\\nb": UNKNOWN:UNKNOWN 0750', '"./a\\nb/a\\nb": root:root 0600',
                 '"./tab\\there": UNKNOWN:UNKNOWN 0600', '"./ spaces ": UNKNOWN:UNKNOWN 0600',
                 '"./q\\"uo\'te": UNKNOWN:UNKNOWN 0750', '"./back\\\\slash": UNKNOWN:UNKNOWN 0600',
                 "./-dash: UNKNOWN:UNKNOWN 0600", '"./bad\\xff\\xfe": UNKNOWN:UNKNOWN 0750',
                 '"./bad\\xff\\xfe/bad\\xff\\xfe": root:root 0600', '"./back\\\\xff": UNKNOWN:UNKNOWN 0600']:
        assert line in diff["before"].splitlines(), (line, diff["before"])
    audit = task(plan, ":audit")
    root = os.fsdecode(tree)
    first = f'"{root}/ spaces ": UNKNOWN:UNKNOWN 0600'  # the first in byte order
    assert f"{root}: 11 of 12 entries differ (first: {first})" in audit["message"], audit


def test_a_failed_verification_puts_every_name_back_byte_for_byte_and_a_fix_sticks(
    shared_sshd: Sshd, tmp_path: Path, tree: bytes
) -> None:
    before = attributes(tree)
    assert len(before) == 12
    rc, run, stderr = remedy(shared_sshd, tmp_path, tree, "run", "-e", "force_failure=true")
    assert rc == 2, stderr
    assert run["hosts"][0]["status"] == "rolled_back", stderr
    assert attributes(tree) == before
    assert not (tmp_path / "snapshots").exists()

    rc, run, stderr = remedy(shared_sshd, tmp_path, tree, "run", "-e", "force_failure=false")
    assert rc == 0, stderr
    assert run["hosts"][0]["status"] == "changed"
    after = attributes(tree)
    assert set(after) == set(before)
    assert {(oct(mode), uid, gid) for mode, uid, gid in after.values()} == {
        (oct(0o40755), 0, 0), (oct(0o100644), 0, 0)}

    rc, run, stderr = remedy(shared_sshd, tmp_path, tree, "run", "-e", "force_failure=false")
    assert rc == 0 and run["hosts"][0]["status"] == "healthy", stderr
