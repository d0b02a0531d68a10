"""Runs as Markdown (``--format markdown``): a plan or a run for a CI job summary or a merge-request note.

Output stage. ``render_markdown`` takes a finished ``Run`` (a plan when
``run.check``) and returns GitHub- and GitLab-flavoured Markdown: a headline
with the verdict, a table with one row per host (result, changes, faults found),
then per host the tasks that would change (or changed) or failed, with their
diffs folded in ``<details>``. Text from hosts is escaped so that it can
neither break a table nor become markup. Task results arrive redacted;
callers pass the text through the run's redactor once more.
"""

from __future__ import annotations

import difflib
import re

from runner.errors import printable
from runner.results import FaultState, HostResult, Run, TaskResult

_EXIT_MEANINGS = {0: "ok", 2: "failed", 3: "unreachable host", 4: "invalid input",
                  5: "audit log not written", 6: "rollback failed", 7: "incomplete", 99: "interrupted"}


def render_markdown(run: Run) -> str:
    """The Markdown summary of a plan (``run.check``) or of a run."""
    lines = [f"### {_headline(run)}", "", "| host | result | changes | faults |", "|---|---|---|---|"]
    lines += [f"| {_cell(h.host)} | {_cell(str(h.status))} | {_changes(h, run.check)} | {_faults(h)} |"
              for h in run.hosts]
    for note in (run.aborted, run.audit_error and f"audit log not written: {run.audit_error}",
                 run.interrupted and "interrupted: tasks not started were not run"):
        if note:
            lines += ["", f"**Run stopped:** {_cell(str(note))}"]
    if run.incomplete:
        lines += ["", f"**Run incomplete:** {_cell(run.incomplete)}"]
    for host in run.hosts:
        lines += _host_section(host, run.check)
    return "\n".join(lines) + "\n"


def _headline(run: Run) -> str:
    code = run.exit_code
    verdict = f"exit {code} ({_EXIT_MEANINGS.get(code, 'error')})"
    if not run.check:
        changed = sum(1 for h in run.hosts if _changed(h))
        return f"remedy run: {verdict}, {changed} of {len(run.hosts)} hosts changed"
    pending = [h for h in run.hosts if _planned(h)]
    if code:
        return f"remedy plan: {verdict}"
    if not pending:
        return f"remedy plan: no changes on {len(run.hosts)} hosts"
    return f"remedy plan: changes pending on {len(pending)} of {len(run.hosts)} hosts"


def _planned(host: HostResult) -> list[TaskResult]:
    return [r for r in host.results
            if r.phase in ("tasks", "handlers") and r.predicted in ("change", "unknown")]


def _changed(host: HostResult) -> list[TaskResult]:
    return [r for r in host.results if r.phase in ("tasks", "handlers") and r.changed]


def _changes(host: HostResult, check: bool) -> str:
    if not check:
        return str(len(_changed(host)))
    planned = _planned(host)
    unknown = sum(1 for r in planned if r.predicted == "unknown")
    text = f"{len(planned) - unknown} will change"
    return text + (f", {unknown} effect unknown" if unknown else "")


def _faults(host: HostResult) -> str:
    """The faults found on the host, with their verdicts (healthy ones are left out)."""
    return ", ".join(f"{_cell(f.playbook)}: {_cell(str(f.state))}" for f in host.faults
                     if f.state != FaultState.HEALTHY) or "-"


def _host_section(host: HostResult, check: bool) -> list[str]:
    shown = [r for r in host.results if r.status.is_failure or (r.phase in ("tasks", "handlers") and (
        r.changed or (check and r.predicted in ("change", "unknown"))))]
    if not shown:
        return []
    lines = ["", f"#### {_cell(host.host)}", "", "| task | result | detail |", "|---|---|---|"]
    for result in shown:
        what = {"change": "will change", "unknown": "will run, effect unknown"}.get(result.predicted, "") \
            if check and not result.status.is_failure else str(result.status)
        lines.append(f"| {_cell(result.name)} | {what} | {_cell(result.message, 200)} |")
    for result in shown:
        lines += _diffs(result)
    return lines


def _diffs(result: TaskResult) -> list[str]:
    lines = []
    for diff in result.diffs:
        body = "\n".join(printable(line) for line in difflib.unified_diff(
            diff.before.splitlines(), diff.after.splitlines(), f"{diff.path} (before)",
            f"{diff.path} (after)", lineterm="")) or f"{diff.path}: no textual change"
        longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
        fence = "`" * max(3, longest + 1)
        lines += ["", f"<details><summary>diff of {_html(diff.path)} ({_html(result.name)})</summary>", "",
                  f"{fence}diff", body, fence, "", "</details>"]
    return lines


def _html(text: str, limit: int = 300) -> str:
    """``text`` as one line of HTML text (inside ``<summary>``, where Markdown is not read)."""
    flat = printable(" ".join(text.split()))
    if len(flat) > limit:
        flat = flat[: limit - 3] + "..."
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: str, limit: int = 300) -> str:
    """``text`` as one table cell: one line, at most ``limit`` characters, no markup."""
    flat = _html(text, limit)
    for char in "\\|`*_[]":
        flat = flat.replace(char, "\\" + char)
    return flat
