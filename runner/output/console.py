"""Live progress of a run on a stream: a ``Listener`` that prints one line per finished task.

Output stage. Concise by default (tasks that did nothing worth reading, and
tasks skipped because of another failure on their host, are left out),
commands and their output with ``-v``, diffs with ``--diff``, nothing with
``-q``; every line fits the terminal (``tables.terminal_width``) and passes
through the run's ``Redactor``. What is running shows while it runs: on a
terminal one status line, redrawn every second (tasks, hosts, elapsed time);
elsewhere (a pipe, a CI log) a ``still running`` line every ``HEARTBEAT``
seconds while a task has run that long. Status words are coloured on a
terminal only, unless ``--no-color`` or ``NO_COLOR`` says otherwise.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from runner.events import NullListener
from runner.output.runs import render_result_line
from runner.output.tables import terminal_width, wrap
from runner.redaction import Redactor
from runner.results import CAUSE, HostResult, Run, Status, TaskResult

#: Seconds between ``still running`` lines when the output is not a terminal.
HEARTBEAT = 30.0
_REDRAW = 1.0  # seconds between redraws of the status line on a terminal
_CLEAR = "\r\x1b[K"
_COLORS = {Status.OK: "32", Status.HEALTHY: "32", Status.CHANGED: "33", Status.SKIPPED: "36",
           Status.NOT_RUN: "36", Status.ROLLED_BACK: "35", Status.BLOCKED: "35"}


@dataclass(frozen=True)
class ConsoleOptions:
    """How much progress to show, and how."""

    verbose: int = 0
    quiet: bool = False
    diff: bool = False
    color: bool = False  # colour status words (on a terminal only)
    heartbeat: float = HEARTBEAT
    clock: Callable[[], float] = time.monotonic  # what elapsed times are measured with


def wants_color(out: TextIO, *, no_color: bool) -> bool:
    """Colour for ``out``: a terminal, and no ``--no-color``, ``NO_COLOR`` (any value) or ``TERM=dumb``."""
    return not no_color and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb" \
        and _is_terminal(out)


def paint(status: Status, word: str) -> str:
    """``word`` in the colour of ``status`` (red for every failure)."""
    code = "31;1" if status.is_failure else _COLORS.get(status, "0")
    return f"\x1b[{code}m{word}\x1b[0m"


def _is_terminal(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


class Console(NullListener):
    """Live progress on a stream: concise by default, commands with -v, nothing with -q."""

    def __init__(self, out: TextIO, redactor: Redactor, options: ConsoleOptions) -> None:
        self.out = out
        self.redactor = redactor
        self.options = options
        self.width = terminal_width(out)
        self.live = _is_terminal(out)  # one status line, redrawn in place
        self._lock = threading.Lock()
        self._running: dict[tuple[str, str], tuple[str, float]] = {}  # (host, task) -> name, start
        self._shown = False  # a status line is on the screen
        self._last_beat = options.clock()
        self._done = threading.Event()
        self._ticker: threading.Thread | None = None

    def _print(self, text: str) -> None:
        with self._lock:
            self._clear()
            print(self.redactor.text(text), file=self.out, flush=True)
            self._draw(self.options.clock())

    def run_started(self, run_id: str, hosts: Sequence[str], *, check: bool) -> None:
        if self.options.quiet:
            return
        mode = " (check mode: nothing will be changed)" if check else ""
        self._print(f"remedy run {run_id}: {len(hosts)} host(s){mode}")
        self._last_beat = self.options.clock()
        self._ticker = threading.Thread(target=self._tick_until_done, name="remedy-progress", daemon=True)
        self._ticker.start()

    def task_started(self, host: str, task: str, name: str) -> None:
        with self._lock:
            self._running[(host, task)] = (name, self.options.clock())

    def task_finished(self, result: TaskResult) -> None:
        with self._lock:
            self._running.pop((result.host, result.task), None)
        if self.options.quiet:
            return
        if not self.options.verbose and result.status in (Status.SKIPPED, Status.HEALTHY, Status.NOT_RUN) \
                and (result.message in ("not notified", "verification passed", "condition false",
                                        "check mode: runs after a real fix") or CAUSE in result.data):
            return  # a task skipped because of another failure: that failure is shown once
        color = self.options.color and self.live
        self._print(render_result_line(result, verbose=self.options.verbose, diff=self.options.diff,
                                       redact=self.redactor.text, width=self.width,
                                       paint=paint if color else None))

    def host_finished(self, result: HostResult) -> None:
        if not self.options.quiet and self.options.verbose:
            self._print(f"[{result.host}] done: {result.status}")

    def run_finished(self, run: Run) -> None:
        self._done.set()
        if self._ticker is not None:
            self._ticker.join()
        with self._lock:
            self._clear()

    def tick(self, now: float | None = None) -> None:
        """Redraw the status line (a terminal), or print a ``still running`` line once a heartbeat passed."""
        now = self.options.clock() if now is None else now
        with self._lock:
            if self.live:
                self._clear()
                self._draw(now)
                return
            long = [(host, name, now - start) for (host, _), (name, start) in self._running.items()
                    if now - start >= self.options.heartbeat]
            if long and now - self._last_beat >= self.options.heartbeat:
                self._last_beat = now
                text = "still running: " + "; ".join(f"[{h}] {n} ({s:.0f}s)" for h, n, s in long)
                print(self.redactor.text("\n".join(wrap(text, self.width))), file=self.out, flush=True)

    def _tick_until_done(self) -> None:
        while not self._done.wait(_REDRAW):
            self.tick()

    def _draw(self, now: float) -> None:
        """The status line: what runs on which hosts, for how long (on a terminal; under the lock)."""
        if not self.live or not self._running or self.options.quiet:
            return
        items = [f"[{host}] {name} {now - start:.0f}s" for (host, _), (name, start) in self._running.items()]
        line = f"running {len(items)}: " + ", ".join(items)
        if len(line) >= self.width:
            line = line[: max(self.width - 2, 1)] + "…"
        self.out.write(self.redactor.text(line))
        self.out.flush()
        self._shown = True

    def _clear(self) -> None:
        if self._shown:
            self.out.write(_CLEAR)
            self._shown = False
