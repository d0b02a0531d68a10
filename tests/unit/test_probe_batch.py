"""Probe batching: several read-only commands in one round trip, each with its own result."""

from __future__ import annotations

from pathlib import Path

from runner.connection import Connection, ConnectionParams, open_connection
from runner.connection.batch import batch_script, run_batch, split_batch
from runner.events import NullListener
from runner.load.inputs import load_inputs
from runner.plan.hosts import RunOptions
from runner.results import CommandResult, Run, Status
from runner.run.executor import execute
from runner.testing import FakeCall, RecordingConnection

COMMANDS = [
    "echo one; echo err-one >&2",
    "printf 'no newline'",
    "exit 3",
    "cat; echo read-nothing",
    "echo after-exit; echo 'x\ny' >&2; false",
]


def local_run() -> list[CommandResult] | None:
    conn = open_connection(ConnectionParams(name="local", address="localhost", kind="local"))
    try:
        return run_batch(conn, COMMANDS, become=None, env={"K": "v"}, timeout=30)
    finally:
        conn.close()


def test_each_command_of_a_batch_gets_its_own_exit_code_stdout_and_stderr() -> None:
    results = local_run()
    assert results is not None
    assert [r.command for r in results] == COMMANDS
    assert [(r.rc, r.stdout, r.stderr) for r in results] == [
        (0, "one\n", "err-one\n"),
        (0, "no newline", ""),
        (3, "", ""),
        (0, "read-nothing\n", ""),
        (1, "after-exit\n", "x\ny\n"),
    ]


def test_a_batch_answer_that_cannot_be_split_exactly_is_refused() -> None:
    nonce = "REMEDY-BATCH-0123456789abcdef"
    assert batch_script(["true"], nonce).count(nonce) == 2
    whole = CommandResult("x", 0, f"a\n{nonce} 0 0\n", f"\n{nonce} 0\n")
    assert split_batch(["true"], nonce, whole) == [CommandResult("true", 0, "a", "")]
    assert split_batch(["true", "true"], nonce, whole) is None  # a delimiter missing
    capped = CommandResult("x", 0, whole.stdout, whole.stderr, truncated=True)
    assert split_batch(["true"], nonce, capped) is None
    assert split_batch(["true"], nonce, CommandResult("x", None, whole.stdout, whole.stderr)) is None


def check_run(tmp_path: Path, tasks: str, *, check: bool = True) -> tuple[Run, list[str]]:
    """Run ``tasks`` (in check mode by default) on a local host; the commands it sent."""
    run, calls = recorded_run(tmp_path, tasks, check=check)
    return run, [call.command for call in calls]


def recorded_run(tmp_path: Path, tasks: str, *, check: bool = True) -> tuple[Run, list[FakeCall]]:
    """Run ``tasks`` on a local host; the calls it made."""
    (tmp_path / "app.conf").write_text("log_level=debug\n")
    (tmp_path / "app.conf").chmod(0o666)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("h0 ansible_connection=local\n")
    playbook = tmp_path / "book.yml"
    playbook.write_text(f"- hosts: all\n  tasks:\n{tasks.replace('DIR', str(tmp_path))}")
    opened: list[RecordingConnection] = []

    def connect(params: ConnectionParams) -> Connection:
        opened.append(RecordingConnection(open_connection(params)))
        return opened[-1]

    options = RunOptions(check=check, lock_path=str(tmp_path / "lock"))
    run = execute(load_inputs([str(playbook)], [str(inventory)]), options, NullListener(), connect=connect)
    return run, [call for conn in opened for call in conn.calls]


def test_check_mode_fetches_the_probes_of_a_plays_tasks_in_one_round_trip(tmp_path: Path) -> None:
    run, sent = check_run(tmp_path, """
    - {name: st, stat: {path: DIR/app.conf}}
    - {name: mode, file: {path: DIR/app.conf, mode: "0640"}}
    - {name: dir, file: {path: DIR/log, state: directory}}
    - {name: line, lineinfile: {path: DIR/app.conf, regexp: "^log_level=", line: log_level=info}}
""")
    assert len(sent) == 1
    assert [(r.status, r.predicted) for r in run.all_results()] == [
        (Status.OK, "no_change"), (Status.CHANGED, "change"), (Status.CHANGED, "change"),
        (Status.CHANGED, "change")]
    assert (tmp_path / "app.conf").read_text() == "log_level=debug\n"


def test_a_task_that_needs_a_registered_value_probes_on_its_own_when_it_runs(tmp_path: Path) -> None:
    run, sent = check_run(tmp_path, """
    - {name: st, stat: {path: DIR/app.conf}, register: st}
    - {name: other, stat: {path: DIR/log}}
    - {name: mode, file: {path: "{{ st.stat.path }}", mode: "0640"}}
""")
    assert len(sent) == 2  # st and other together, then mode once st is registered
    assert [r.predicted for r in run.all_results()] == ["no_change", "no_change", "change"]


def test_outside_check_mode_a_read_only_task_brings_the_next_tasks_probe_along(tmp_path: Path) -> None:
    run, sent = check_run(tmp_path, """
    - {name: st, stat: {path: DIR/app.conf}}
    - {name: mode, file: {path: DIR/app.conf, mode: "0640"}}
    - {name: again, file: {path: DIR/app.conf, mode: "0640"}}
""", check=False)
    assert len(sent) == 3  # st + mode's probe, mode's chmod, then again's own probe (after a change)
    assert "chmod" in sent[1]
    assert [r.status for r in run.all_results()] == [Status.OK, Status.CHANGED, Status.OK]
    assert (tmp_path / "app.conf").stat().st_mode & 0o777 == 0o640


def test_probes_and_remedys_own_file_operations_are_contained_and_user_commands_are_not(
    tmp_path: Path,
) -> None:
    _, calls = recorded_run(tmp_path, """
    - {name: mode, file: {path: DIR/app.conf, mode: "0640"}}
    - {name: show, command: cat DIR/app.conf}
    - {name: write, copy: {dest: DIR/new.conf, content: "x"}}
    - {name: checked, copy: {dest: DIR/other.conf, content: "y", validate: "test -s %s"}}
""", check=False)
    sent = [(call.contained, call.command.split()[0]) for call in calls]
    assert sent[:3] == [(True, "p=" + str(tmp_path / "app.conf")), (True, "chmod"), (False, "cat")]
    uploads = [call.contained for call in calls if call.stdin is not None]
    assert uploads == [True, False]  # a validate command is the user's: not contained
