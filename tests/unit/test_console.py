"""Live progress: what runs on which hosts while it runs, heartbeats in a log, colour on a terminal only."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from runner.cli.program import main
from runner.events import Listeners
from runner.load.inputs import load_inputs
from runner.output.console import HEARTBEAT, Console, ConsoleOptions, wants_color
from runner.plan.hosts import RunOptions
from runner.redaction import Redactor
from runner.results import Status, TaskResult
from runner.run.executor import execute


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class Started(Listeners):
    """Records the task_started events next to the console."""

    def __init__(self, console: Console) -> None:
        super().__init__([console])
        self.started: list[tuple[str, str, str]] = []

    def task_started(self, host: str, task: str, name: str) -> None:
        self.started.append((host, task, name))
        super().task_started(host, task, name)


def test_a_long_task_gets_a_still_running_line_in_a_log_from_a_real_run(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"a ansible_connection=local remedy_lock_path={tmp_path}/a.lock\n")
    book = tmp_path / "book.yml"
    book.write_text("- hosts: all\n  tasks:\n    - {id: slow, name: a slow restart, command: sleep 3}\n")
    log = io.StringIO()
    console = Console(log, Redactor(), ConsoleOptions(heartbeat=0.5))
    listener = Started(console)
    run = execute(load_inputs([str(book)], [str(inventory)]), RunOptions(lock_path=str(tmp_path / "lock")),
                  listener)
    assert run.exit_code == 0
    assert listener.started == [("a", "book:slow", "a slow restart")]
    lines = log.getvalue().splitlines()
    beats = [line for line in lines if line.startswith("still running: [a] a slow restart (")]
    assert beats and lines.index(beats[0]) < lines.index("[a] changed: a slow restart - run sleep 3"), lines


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_heartbeat_names_only_tasks_that_ran_a_whole_interval_and_comes_once_per_interval() -> None:
    log, clock = io.StringIO(), Clock()
    console = Console(log, Redactor(), ConsoleOptions(clock=clock))
    console.task_started("web01", "port_conflict:start", "start the service")
    clock.now += HEARTBEAT / 2
    console.tick()
    assert log.getvalue() == ""
    console.task_started("web02", "port_conflict:start", "start the service")
    clock.now += HEARTBEAT / 2 + 1
    console.tick()
    assert log.getvalue() == f"still running: [web01] start the service ({HEARTBEAT + 1:.0f}s)\n"
    clock.now += 1
    console.tick()
    assert log.getvalue().count("still running") == 1
    clock.now += HEARTBEAT
    console.tick()
    assert log.getvalue().splitlines()[-1] == (
        f"still running: [web01] start the service ({2 * HEARTBEAT + 2:.0f}s); "
        f"[web02] start the service ({1.5 * HEARTBEAT + 2:.0f}s)")
    assert HEARTBEAT == 30


def test_a_terminal_gets_one_status_line_redrawn_and_cleared_before_each_finished_task() -> None:
    screen, clock = Terminal(), Clock()
    console = Console(screen, Redactor(), ConsoleOptions(color=True, clock=clock))
    console.task_started("web01", "port_conflict:start", "start the service")
    clock.now += 8
    console.tick()
    assert screen.getvalue() == "running 1: [web01] start the service 8s"
    console.task_finished(TaskResult("web01", "port_conflict:start", "start the service", Status.CHANGED,
                                     message="coze: stopped -> started", changed=True))
    assert screen.getvalue().endswith("\r\x1b[K[web01] \x1b[33mchanged\x1b[0m: start the service - "
                                      "coze: stopped -> started\n")
    console.tick()
    assert screen.getvalue().endswith("\n")  # nothing runs: no status line


def test_colour_is_for_a_terminal_only_and_off_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert wants_color(Terminal(), no_color=False)
    assert not wants_color(Terminal(), no_color=True)
    assert not wants_color(io.StringIO(), no_color=False)
    monkeypatch.setenv("NO_COLOR", "1")
    assert not wants_color(Terminal(), no_color=False)


def test_no_colour_reaches_a_pipe_or_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"a ansible_connection=local remedy_lock_path={tmp_path}/a.lock\n")
    book = tmp_path / "book.yml"
    book.write_text("- hosts: all\n  tasks:\n    - {command: 'false'}\n")
    junit = tmp_path / "junit.xml"
    code = main(["run", str(book), "-i", str(inventory), "--audit-log", str(tmp_path / "a.jsonl"),
                 "--junit", str(junit)])
    out, err = capsys.readouterr()
    assert code == 2 and "FAILED" in err
    for text in (out, err, junit.read_text()):
        assert "\x1b[" not in text
