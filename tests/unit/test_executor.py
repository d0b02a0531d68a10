"""The executor's semantics, on real local hosts with a scripted test module."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from runner.connection import ConnectionParams, Login, open_connection
from runner.events import NullListener
from runner.load.inputs import load_inputs
from runner.modules import MODULES
from runner.modules.base import Arg, Change, Command, Module, quote
from runner.plan.hosts import ConnectOptions, RunOptions, batches, connection_params
from runner.results import CAUSE, Status, TaskResult
from runner.run.executor import execute
from runner.testing import FakeConnection
from tests.support.processes import command_lines_with
from tests.support.waiting import wait_until


class Mark(Module):
    """Appends its name to a log file on the host; can be told to fail or be unpredictable."""

    name = "mark"
    summary = "test module"
    free_form = "name"
    args = {
        "name": Arg("str", required=True, doc="what to log"),
        "log": Arg("path", required=True, doc="log file"),
        "changed": Arg("bool", default=True, doc="whether it changes"),
        "fail": Arg("bool", default=False, doc="fail when run"),
        "unknown": Arg("bool", default=False, doc="effect unpredictable"),
    }

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        if not args.get("changed", True):
            return Change(changed=False)
        command = f"echo {quote(args['name'])} >> {quote(args['log'])}"
        if args.get("fail"):
            command += " && exit 3"
        return Change(changed=True, steps=(Command(command),),
                      predictable=not args.get("unknown", False))


class Recording:
    """A local connection that records every command it is asked to run."""

    def __init__(self, params: ConnectionParams, log: list[str]) -> None:
        self.inner = open_connection(params)
        self.host = params.name
        self.log = log

    def run(self, command: str, **kwargs: Any) -> Any:
        self.log.append(command)
        return self.inner.run(command, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Collect(NullListener):
    def __init__(self) -> None:
        self.results: list[TaskResult] = []
        self.lock = threading.Lock()

    def task_finished(self, result: TaskResult) -> None:
        with self.lock:
            self.results.append(result)


@pytest.fixture(autouse=True)
def mark_module() -> Iterator[None]:
    MODULES["mark"] = Mark
    yield
    MODULES.pop("mark", None)


@pytest.fixture
def hosts(tmp_path: Path) -> Path:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[web]\n" + "".join(f"h{i} ansible_connection=local\n" for i in range(3)))
    return inventory


def run(tmp_path: Path, inventory: Path, body: str, **options: Any) -> tuple[Any, list[str], Collect]:
    playbook = tmp_path / "book.yml"
    playbook.write_text(body.replace("LOG", str(tmp_path / "log")))
    inputs = load_inputs([str(playbook)], [str(inventory)])
    sent: list[str] = []
    listener = Collect()
    options.setdefault("lock_path", str(tmp_path / "remedy.lock"))
    result = execute(inputs, RunOptions(**options), listener,
                     connect=lambda params: Recording(params, sent))
    return result, sent, listener


def logged(tmp_path: Path) -> list[str]:
    log = tmp_path / "log"
    return log.read_text().split() if log.exists() else []


def statuses(run_: Any, host: str = "h0") -> dict[str, str]:
    return {r.task.split(":", 1)[1]: str(r.status) for h in run_.hosts if h.host == host
            for r in h.results}


def test_a_play_needing_root_sends_no_command_to_learn_who_the_connection_runs_as(
    tmp_path: Path, hosts: Path
) -> None:
    result, sent, _ = run(tmp_path, hosts, """
- hosts: h0
  requires_root: true
  tasks:
    - {id: a, mark: {name: a, log: LOG}}
""")
    root = os.geteuid() == 0  # a local connection knows who it runs as: this process's user
    assert result.hosts[0].status is (Status.CHANGED if root else Status.FAILED)
    assert [c for c in sent if "id -u" in c] == []
    assert logged(tmp_path) == (["a"] if root else [])


@pytest.mark.parametrize(("login", "asked"), [(None, ["id -u; id -un"]), (Login(1000, "coze"), [])],
                         ids=["asked", "known"])
def test_a_connection_that_cannot_tell_who_it_runs_as_is_asked_with_id(
    tmp_path: Path, login: Login | None, asked: list[str]
) -> None:
    (tmp_path / "hosts.ini").write_text("h0\n")
    (tmp_path / "book.yml").write_text(f"""
- hosts: h0
  requires_root: true
  tasks:
    - {{id: a, mark: {{name: a, log: {tmp_path / "log"}}}}}
""")
    conn = FakeConnection({"id -u; id -un": "1000\ncoze\n"}, host="h0", login=login)
    inputs = load_inputs([str(tmp_path / "book.yml")], [str(tmp_path / "hosts.ini")])
    result = execute(inputs, RunOptions(), NullListener(), connect=lambda params: conn)
    [record] = result.hosts[0].results
    assert record.status is Status.FAILED and "needs root on h0; connected as coze: " in record.message
    assert conn.commands == asked


def test_a_failed_task_skips_the_tasks_after_it_but_not_independent_ones(tmp_path: Path, hosts: Path) -> None:
    result, _, _ = run(tmp_path, hosts, """
- hosts: h0
  tasks:
    - {id: a, mark: {name: a, log: LOG}}
    - {id: b, mark: {name: b, log: LOG, fail: true}}
    - {id: c, mark: {name: c, log: LOG}}
    - {id: d, requires: [], mark: {name: d, log: LOG}}
""")
    assert statuses(result) == {"a": "changed", "b": "failed", "c": "skipped", "d": "changed"}
    assert logged(tmp_path) == ["a", "b", "d"]
    assert result.exit_code == 2


def test_check_mode_sends_no_mutating_command(tmp_path: Path, hosts: Path) -> None:
    result, sent, _ = run(tmp_path, hosts, """
- hosts: web
  tasks:
    - {mark: {name: one, log: LOG}}
    - {mark: {name: two, log: LOG, unknown: true}}
""", check=True)
    assert sent == []
    assert not (tmp_path / "log").exists()
    predicted = [r.predicted for r in result.all_results()]
    assert predicted == ["change", "unknown"] * 3
    assert result.exit_code == 0


def test_every_host_and_task_gets_exactly_one_terminal_record(tmp_path: Path, hosts: Path) -> None:
    result, _, listener = run(tmp_path, hosts, """
- hosts: web
  diagnose:
    - {assert: {that: "inventory_hostname != 'h1'"}}
  tasks:
    - {mark: {name: "{{ inventory_hostname }}", log: LOG}}
    - {mark: {name: x, log: LOG, fail: "{{ inventory_hostname == 'h2' }}"}}
    - {mark: {name: y, log: LOG}}
  handlers:
    - {name: never, mark: {name: z, log: LOG}}
  verify:
    - {assert: {that: true}}
""")
    keys = [(r.host, r.task) for r in listener.results]
    assert len(keys) == len(set(keys)) == 3 * 6
    by_host = {h.host: h.status for h in result.hosts}
    assert by_host == {"h0": Status.HEALTHY, "h1": Status.CHANGED, "h2": Status.HEALTHY}
    assert sum(h.counts().total() for h in result.hosts) == 18


def test_a_healthy_host_is_left_untouched_without_a_lock(tmp_path: Path, hosts: Path) -> None:
    result, sent, _ = run(tmp_path, hosts, """
- hosts: h0
  diagnose:
    - {assert: {that: true}}
  tasks:
    - {mark: {name: fix, log: LOG}}
""")
    assert statuses(result) == {"diagnose[1]": "ok", "tasks[1]": "healthy"}
    assert result.hosts[0].status is Status.HEALTHY
    assert sent == []
    assert not (tmp_path / "remedy.lock").exists()
    assert result.exit_code == 0


def test_a_failed_verification_rolls_back_and_exits_2(tmp_path: Path, hosts: Path) -> None:
    result, _, _ = run(tmp_path, hosts, """
- hosts: h0
  tasks:
    - {id: fix, mark: {name: fix, log: LOG}}
  verify:
    - {id: check, assert: {that: false, fail_msg: still broken}}
  rollback:
    - {id: undo, mark: {name: undo, log: LOG}}
""")
    assert statuses(result) == {"fix": "changed", "check": "failed", "undo": "changed"}
    assert result.hosts[0].status is Status.ROLLED_BACK
    assert logged(tmp_path) == ["fix", "undo"]
    assert result.exit_code == 2


def test_handlers_of_a_change_run_even_when_a_later_task_fails(tmp_path: Path, hosts: Path) -> None:
    result, _, _ = run(tmp_path, hosts, """
- hosts: h0
  tasks:
    - {mark: {name: a, log: LOG}, notify: restart}
    - {mark: {name: b, log: LOG, fail: true}}
  handlers:
    - {name: restart, mark: {name: restarted, log: LOG}}
    - {name: unused, mark: {name: unused, log: LOG}}
""")
    assert logged(tmp_path) == ["a", "b", "restarted"]
    assert statuses(result)["handlers[2]"] == "skipped"


def test_max_fail_percentage_stops_the_run_after_the_canary_batch(tmp_path: Path, hosts: Path) -> None:
    result, _, _ = run(tmp_path, hosts, """
- hosts: web
  serial: [1, "100%"]
  max_fail_percentage: 0
  tasks:
    - {mark: {name: "{{ inventory_hostname }}", log: LOG, fail: true}}
""")
    assert logged(tmp_path) == ["h0"]
    assert [h.status for h in result.hosts] == [Status.FAILED, Status.NOT_RUN, Status.NOT_RUN]
    assert "max_fail_percentage" in result.aborted
    assert result.exit_code == 2


def test_serial_batches_split_counts_and_percentages() -> None:
    hosts = [f"h{i}" for i in range(10)]
    assert batches(hosts, [1, "50%"]) == [["h0"], hosts[1:6], hosts[6:10]]
    assert batches(hosts, []) == [hosts]
    assert batches(hosts, [4]) == [hosts[0:4], hosts[4:8], hosts[8:10]]


def test_a_second_run_holding_the_lock_reports_not_run(tmp_path: Path, hosts: Path) -> None:
    params = ConnectionParams(name="h0", address="h0", kind="local")
    holder = open_connection(params)
    lock = tmp_path / "remedy.lock"
    held = holder.hold(f"exec 9>>{lock}; flock -n 9 && echo LOCKED && cat")
    try:
        assert held.readline(timeout=10) == "LOCKED"
        result, _, _ = run(tmp_path, hosts, """
- hosts: h0
  tasks:
    - {mark: {name: a, log: LOG}}
""")
    finally:
        held.close()
        holder.close()
    assert statuses(result) == {"tasks[1]": "not_run"}
    assert "locked" in result.hosts[0].results[0].message
    assert logged(tmp_path) == []


def test_a_lock_path_that_cannot_be_written_is_named_in_the_message(tmp_path: Path, hosts: Path) -> None:
    unwritable = tmp_path / "a-directory"
    unwritable.mkdir()
    result, _, _ = run(tmp_path, hosts, """
- hosts: h0
  tasks:
    - {mark: {name: a, log: LOG}}
    - {mark: {name: b, log: LOG}}
""", lock_path=str(unwritable))
    record, rest = result.hosts[0].results
    assert record.status is Status.FAILED  # the host's own trouble, not another run's lock
    assert f"cannot open {unwritable}: it is a directory" in record.message
    # one root cause, recorded once: the other task is skipped because of it
    assert (rest.status, rest.message, rest.data.get(CAUSE)) == (
        Status.SKIPPED, "skipped because the host lock could not be taken", record.task)
    assert logged(tmp_path) == []


def test_a_lock_command_that_never_answers_fails_the_host_and_says_so(tmp_path: Path, hosts: Path) -> None:
    fifo = tmp_path / "lock-fifo"  # opening it to append blocks until a reader comes: no answer
    os.mkfifo(fifo)
    result, _, _ = run(tmp_path, hosts, """
- hosts: h0
  tasks:
    - {mark: {name: a, log: LOG}}
""", lock_path=str(fifo), lock_answer_timeout=1.0)
    [record] = result.hosts[0].results
    assert record.status is Status.FAILED and result.hosts[0].status is Status.FAILED
    assert record.message == f"the lock command for {fifo} gave no answer in 1 s"
    assert "locked" not in record.message and logged(tmp_path) == []


def test_a_stop_while_the_lock_command_has_not_answered_ends_the_wait(tmp_path: Path, hosts: Path) -> None:
    fifo = tmp_path / "lock-fifo"
    os.mkfifo(fifo)
    stop = threading.Event()
    playbook = tmp_path / "book.yml"
    playbook.write_text(f"- hosts: h0\n  tasks:\n    - {{mark: {{name: a, log: {tmp_path}/log}}}}\n")
    inputs = load_inputs([str(playbook)], [str(hosts)])
    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(execute(
        inputs, RunOptions(lock_path=str(fifo)), NullListener(), stop=stop)))
    worker.start()
    try:
        wait_until(lambda: lock_command_waits_on(fifo), what="the lock command to block on the FIFO")
        stop.set()
        worker.join(20)  # the answer would be waited for ANSWER_TIMEOUT (120 s) otherwise
    finally:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # lets a blocked opener through
        worker.join(30)
    [record] = outcome[0].hosts[0].results
    assert outcome[0].interrupted and record.status is Status.NOT_RUN
    assert "locked" not in record.message


def lock_command_waits_on(path: Path) -> bool:
    """Whether a process whose command line names ``path`` (the lock command) is running."""
    return bool(command_lines_with(f"lock={path}"))


@pytest.mark.parametrize(("value", "expected"), [(None, True), (True, True), ("no", False), (False, False)])
def test_remedy_persistent_shell_turns_the_shell_off_per_host(value: Any, expected: bool) -> None:
    host_vars = {"ansible_host": "127.0.0.1"} | ({} if value is None else {"remedy_persistent_shell": value})
    assert connection_params("web1", host_vars, ConnectOptions()).persistent_shell is expected


def test_a_diagnosis_that_fails_when_re_checked_stops_the_host_before_any_change(
        tmp_path: Path, hosts: Path) -> None:
    """The first diagnosis finds the fault; the re-check before the first change cannot complete."""
    counter = tmp_path / "probes"
    result, _, _ = run(tmp_path, hosts, f"""
- hosts: h0
  diagnose:
    - name: probe
      shell: echo x >> {counter}; [ $(wc -l < {counter}) -eq 1 ] || {{ echo holder not visible >&2; exit 1; }}
      changed_when: false
    - {{name: the fault, fail: {{msg: found}}}}
  tasks:
    - {{mark: {{name: fix, log: LOG}}}}
""")
    assert logged(tmp_path) == []
    assert result.hosts[0].status is Status.FAILED
    fix = next(r for r in result.hosts[0].results if r.phase == "tasks")
    assert fix.status is Status.FAILED
    assert "failed when re-checked before the first change (probe: " in fix.message
    assert "nothing was changed" in fix.message, fix.message


class FailingAudit(NullListener):
    """An audit log whose disk fills up once it has written ``records`` task records."""

    def __init__(self, records: int) -> None:
        self.records = records
        self.written: list[str] = []

    def task_finished(self, result: TaskResult) -> None:
        if len(self.written) < self.records:
            self.written.append(result.task)

    def audit_error(self) -> str:
        return "audit.jsonl: No space left on device" if len(self.written) >= self.records else ""


def test_once_the_audit_log_fails_no_task_or_handler_starts_and_the_run_exits_5(
        tmp_path: Path, hosts: Path) -> None:
    playbook = tmp_path / "book.yml"
    playbook.write_text(f"""
- hosts: h0
  tasks:
    - {{mark: {{name: a, log: {tmp_path}/log}}, notify: restart}}
    - {{mark: {{name: b, log: {tmp_path}/log}}}}
  handlers:
    - {{name: restart, mark: {{name: restarted, log: {tmp_path}/log}}}}
""")
    audit = FailingAudit(records=1)
    result = execute(load_inputs([str(playbook)], [str(hosts)]),
                     RunOptions(lock_path=str(tmp_path / "lock")), audit)
    assert logged(tmp_path) == ["a"]
    assert statuses(result) == {"tasks[1]": "changed", "tasks[2]": "not_run", "handlers[1]": "not_run"}
    assert result.audit_error == "audit.jsonl: No space left on device"
    assert result.exit_code == 5


def test_an_audit_log_failing_at_the_start_leaves_every_host_not_run(tmp_path: Path, hosts: Path) -> None:
    playbook = tmp_path / "book.yml"
    playbook.write_text(f"- hosts: web\n  tasks:\n    - {{mark: {{name: a, log: {tmp_path}/log}}}}\n")
    result = execute(load_inputs([str(playbook)], [str(hosts)]),
                     RunOptions(lock_path=str(tmp_path / "lock")), FailingAudit(records=0))
    assert logged(tmp_path) == []
    assert {str(h.status) for h in result.hosts} == {"not_run"}
    assert {r.message for r in result.all_results()} == {
        "not run: the audit log could not be written: nothing further was changed"}


class Trip(Module):
    """Stops the run when it is planned (as a signal or a failed audit write would)."""

    name = "trip"
    summary = "test module"
    args: dict[str, Arg] = {}
    read_only = True
    stop = threading.Event()

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        Trip.stop.set()
        return Change(changed=False)


def test_no_task_of_a_block_starts_once_the_run_is_stopped(tmp_path: Path, hosts: Path) -> None:
    from runner.load.templating import Scope
    from runner.run.blocks import run_block
    from runner.run.context import HostContext

    playbook = tmp_path / "book.yml"
    playbook.write_text(f"""
- hosts: h0
  tasks:
    - block:
        - trip:
        - {{mark: {{name: b, log: {tmp_path}/log}}}}
      always:
        - {{mark: {{name: c, log: {tmp_path}/log}}}}
""")
    MODULES["trip"] = Trip
    Trip.stop.clear()
    try:
        inputs = load_inputs([str(playbook)], [str(hosts)])
        node = inputs.graph.nodes[inputs.graph.order[0]]
        conn = open_connection(ConnectionParams(name="h0", address="h0", kind="local"))
        ctx = HostContext("h0", conn, node.play, tmp_path, stop=Trip.stop)
        result = run_block(ctx, node.id, node.task, Scope([({}, False)]), "tasks", {})
        conn.close()
    finally:
        MODULES.pop("trip", None)
    assert logged(tmp_path) == []  # neither the block's next task nor its always task ran
    assert result.status is Status.NOT_RUN
    assert result.message.endswith(": run stopped before this task")
    assert len(result.data["results"]) == 3
