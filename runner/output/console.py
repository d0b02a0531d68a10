"""Live progress of a run on a stream: a ``Listener`` that prints one line per finished task.

Output stage. Concise by default (tasks that did nothing worth reading are
left out), commands and their output with ``-v``, diffs with ``--diff``,
nothing with ``-q``; every line passes through the run's ``Redactor``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TextIO

from runner.events import NullListener
from runner.output.runs import render_result_line
from runner.redaction import Redactor
from runner.results import HostResult, Status, TaskResult


class Console(NullListener):
    """Live progress on a stream: concise by default, commands with -v, nothing with -q."""

    def __init__(self, out: TextIO, redactor: Redactor, *, verbose: int, quiet: bool,
                 diff: bool) -> None:
        self.out = out
        self.redactor = redactor
        self.verbose = verbose
        self.quiet = quiet
        self.diff = diff
        self._lock = threading.Lock()

    def _print(self, text: str) -> None:
        with self._lock:
            print(self.redactor.text(text), file=self.out, flush=True)

    def run_started(self, run_id: str, hosts: Sequence[str], *, check: bool) -> None:
        if not self.quiet:
            mode = " (check mode: nothing will be changed)" if check else ""
            self._print(f"remedy run {run_id}: {len(hosts)} host(s){mode}")

    def task_finished(self, result: TaskResult) -> None:
        if self.quiet:
            return
        if not self.verbose and result.status in (Status.SKIPPED, Status.HEALTHY, Status.NOT_RUN) \
                and result.message in ("not notified", "verification passed", "condition false",
                                       "check mode: runs after a real fix"):
            return
        self._print(render_result_line(result, verbose=self.verbose, diff=self.diff,
                                              redact=self.redactor.text))

    def host_finished(self, result: HostResult) -> None:
        if not self.quiet and self.verbose:
            self._print(f"[{result.host}] done: {result.status}")
