"""The host lock over real sshd: what is not another run's lock is never reported as ``locked``."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from runner.events import NullListener
from runner.load.inputs import load_inputs
from runner.plan.hosts import ConnectOptions, RunOptions
from runner.results import Run, Status
from runner.run.executor import execute
from runner.testing import Sshd
from tests.support.processes import command_lines_with
from tests.support.waiting import wait_until


def test_a_session_lost_before_the_lock_command_answered_is_unreachable_not_locked(
    sshd: Sshd, tmp_path: Path
) -> None:
    fifo = tmp_path / "lock-fifo"  # opening it to append blocks: the lock command cannot answer
    os.mkfifo(fifo)
    (tmp_path / "hosts.ini").write_text(
        f"web1 ansible_host=127.0.0.1 ansible_port={sshd.port} ansible_user={sshd.user} "
        f"ansible_ssh_private_key_file={sshd.client_key} remedy_known_hosts={sshd.known_hosts} "
        f"remedy_lock_path={fifo}\n")
    (tmp_path / "book.yml").write_text("- hosts: all\n  tasks:\n    - {name: fix, command: 'true'}\n")
    inputs = load_inputs([str(tmp_path / "book.yml")], [str(tmp_path / "hosts.ini")])
    options = RunOptions(connect=ConnectOptions(ssh_config=os.devnull))
    outcome: list[Run] = []
    worker = threading.Thread(target=lambda: outcome.append(execute(inputs, options, NullListener())))
    worker.start()
    try:
        wait_until(lambda: lock_command_started(fifo), what="the lock command to block")
        sshd.kill_sessions()
    finally:
        worker.join(60)
    [record] = outcome[0].hosts[0].results
    assert record.status is Status.UNREACHABLE, record.message
    assert record.message.startswith(f"the connection was lost while taking the lock {fifo}")
    assert outcome[0].exit_code == 3


def lock_command_started(fifo: Path) -> bool:
    """Whether the lock command runs in its own ``sh`` (the login shell that started it is gone:
    killing a login shell in the middle of its start-up files could leave their debris)."""
    return any(argv[:2] == ["sh", "-c"] and argv[2].startswith(f"lock={fifo}")
               for argv in command_lines_with(f"lock={fifo}"))
