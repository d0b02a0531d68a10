"""Rendering: graphs, catalogues, plans, recaps, JSON and JUnit documents.

Output stage; with the rest of ``output`` the only code that formats output. Everything
here takes data and returns text, so it is easy to test and never prints.
Task results arrive as the run's redactor recorded them (``no_log`` ones
concealed, secrets masked); callers pass the finished text through the same
redactor once more.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from runner.errors import printable
from runner.output.tables import DEFAULT_WIDTH, cell_width, short_paths, table, text_lines, wrap
from runner.output.verdicts import FAILED_FAULTS, fault_documents
from runner.redaction import NO_LOG_MESSAGE
from runner.results import AUDIT_STOP, CAUSE, FAULT_FOUND, FaultState, Run, Status

# --- runs: progress, plan, recap, JSON, JUnit -------------------------------

#: The recap's columns: every state, in ``Status`` order (``-v`` and JSON show them all).
RECAP_COLUMNS = tuple(str(status) for status in Status)
#: The columns the default recap always shows; the others only where some host has one.
_USUAL_COLUMNS = ("ok", "changed", "failed", "skipped")
_SYMBOLS = {"ok": "ok", "changed": "changed", "failed": "FAILED", "skipped": "skipped",
            "unreachable": "UNREACHABLE", "timed_out": "TIMED OUT", "indeterminate": "INDETERMINATE",
            "healthy": "healthy", "rolled_back": "ROLLED BACK", "not_run": "not run"}


def render_result_line(result: Any, *, verbose: int = 0, diff: bool = False,
                       redact: Any = None, width: int | None = None, paint: Any = None) -> str:
    """One progress line for a finished task (plus commands/diffs when asked).

    A multi-line message (a script's text) goes on as an indented block
    where it matters (a change, a failure, a fault found; any line with
    ``-v``), else only its first line is shown; with ``-v`` each command
    is shown as a shell shows it: ``$`` then ``>`` for its further lines.
    With ``width``, the lines fit it: a change, a failure or a fault found
    is wrapped (what changes is never cut), any other line is cut (paths
    shortened in the middle first); ``-v`` shows them whole.
    ``paint(status, word)`` colours the status word.
    """
    mask = redact or (lambda text: text)
    status = _SYMBOLS.get(str(result.status), str(result.status))
    if result.status is Status.OK and result.data.get(FAULT_FOUND):
        status = "fault"  # a diagnosis that found its fault: never 'ok' beside it
    if result.data.get("check_mode") and result.phase != "diagnose":  # a prediction: nothing changed
        if result.predicted == "unknown":
            status = "will run, effect unknown"
        elif result.status is Status.CHANGED:
            status = "will change"
    message = text_lines(mask(result.message)) if result.message else [""]
    named = f": {result.name}" if result.status is not Status.UNREACHABLE else ""  # no task ran on it
    lines = [f"[{result.host}] {status}{named}" + (f" - {message[0]}" if result.message else "")]
    lines.extend(f"    {line}" for line in message[1:])
    if result.no_log and not result.message:
        lines[0] += f" {NO_LOG_MESSAGE}"
    if width and not verbose:
        lines = _fit(lines, result, width)
    head = f"[{result.host}] {status}"
    if paint is not None and lines[0].startswith(head):
        lines[0] = f"[{result.host}] {paint(result.status, status)}{lines[0][len(head):]}"
    if verbose:
        for command in result.commands:
            script = text_lines(mask(command.command), most=40 if verbose < 2 else 0)
            lines.extend(f"    {'$' if index == 0 else '>'} {line}" for index, line in enumerate(script))
            lines[-1] += f"  (rc={command.rc})"
            for stream in (command.stdout, command.stderr):
                for line in stream.splitlines()[-20 if verbose < 2 else None:]:
                    lines.append("      " + mask(printable(line)))
    if diff:
        lines.extend(mask(text) for text in render_diffs(result.diffs))
    return "\n".join(lines)


def _fit(lines: list[str], result: Any, width: int) -> list[str]:
    """The message lines of ``result`` within ``width``: wrapped if they matter, else cut."""
    whole = result.status.is_failure or result.changed or result.predicted == "change" \
        or bool(result.data.get(FAULT_FOUND))
    fitted: list[str] = []
    for line in lines if whole else lines[:1]:
        if cell_width(line) <= width:
            fitted.append(line)
        elif whole:
            indent = line[: len(line) - len(line.lstrip())]
            fitted.extend(wrap(line, width, indent=indent))
        else:
            fitted.append(_cut(short_paths(line), width))
    return fitted


def _cut(text: str, width: int) -> str:
    return text if cell_width(text) <= width else text[: max(width - 1, 1)] + "…"


def render_diffs(diffs: Iterable[Any]) -> list[str]:
    """Unified diffs, indented, each line whole: the paths and the lines that change are never cut."""
    import difflib

    out: list[str] = []
    for diff in diffs:
        body = list(difflib.unified_diff(diff.before.splitlines(), diff.after.splitlines(),
                                         f"{diff.path} (before)", f"{diff.path} (after)", lineterm=""))
        out.extend("    " + printable(line) for line in (body or [f"--- {diff.path}: no textual change"]))
    return out


def render_recap(run: Any, *, verbose: bool = False, width: int = DEFAULT_WIDTH) -> str:
    """The PLAY RECAP table: one row per host; counters add up to the host's tasks.

    By default a zero count is blank, and a state other than ok, changed,
    failed and skipped has a column only when some host has it; a table still
    wider than ``width`` (100 columns unless the terminal says) leaves out those
    usual columns too where every count is zero. ``verbose`` shows every
    state's column with every count.
    """
    counts = [host.counts() for host in run.hosts]
    columns = [c for c in RECAP_COLUMNS if verbose or c in _USUAL_COLUMNS
               or any(count[Status(c)] for count in counts)]
    recap = _recap_table(run, counts, columns, verbose)
    if not verbose and cell_width(recap.splitlines()[0]) > width:
        columns = [c for c in columns if any(count[Status(c)] for count in counts)]
        recap = _recap_table(run, counts, columns, verbose)
    title = "RECAP (check mode: nothing was changed)" if run.check else "RECAP"
    footer = []
    if run.audit_error:
        footer.append(f"run stopped: {AUDIT_STOP} ({run.audit_error})")
    if run.aborted:
        footer.append(f"run stopped: {run.aborted}")
    if run.interrupted:
        footer.append("run interrupted: tasks not started were not run")
    if run.incomplete:
        footer.append(f"run incomplete: {run.incomplete}")
    return "\n".join([title, recap, *footer])


def _recap_table(run: Any, counts: list[Any], columns: list[str], verbose: bool) -> str:
    rows = []
    for host, count in zip(run.hosts, counts, strict=True):
        cells = [count[Status(c)] or ("" if not verbose else 0) for c in columns]
        rows.append([host.host, str(host.status), *cells, sum(count.values())])
    return table(rows, ["host", "result", *columns, "total"])


def render_plan(run: Any, width: int = DEFAULT_WIDTH) -> str:
    """What a check run predicts: a table of the tasks that will run per host, then their diffs.

    The table fits ``width``: task names and details are wrapped (line breaks
    kept, up to 10 lines), never cut.
    """
    rows, diffs = [], []
    for result in _planned(run):
        what = str(result.status) if result.status.is_failure else {
            "change": "will change", "unknown": "will run, effect unknown"}.get(result.predicted, "")
        rows.append([result.host, result.name, what, "\n".join(text_lines(result.message, most=10))])
        if result.diffs:
            title = wrap(f"{result.host}: {result.name}", width)
            diffs.extend(["", *title, *render_diffs(result.diffs)])
    healthy = [h.host for h in run.hosts if str(h.status) == "healthy"]
    lines = []
    if rows:
        lines.append(table(rows, ["host", "task", "plan", "detail"], width=width, narrow=(1, 3)))
    else:
        lines.append("No changes: the plan would change nothing on any host.")
    lines.extend(diffs)
    if healthy:
        lines.extend([""] * bool(diffs))
        lines.extend(wrap(f"healthy (fault not present, nothing to do): {', '.join(healthy)}", width))
    return "\n".join(lines)


def _planned(run: Any) -> list[Any]:
    """The fix tasks and handlers of a check run that will run, and each failure that stopped a plan."""
    return [r for r in run.all_results()
            if r.phase in ("tasks", "handlers") and r.predicted in ("change", "unknown")
            or r.status.is_failure and CAUSE not in r.data]


def plan_summary(run: Any) -> str:
    """The plan's last line: how many hosts will change (with how many changes), are healthy, unknown.

    A host is ``unknown`` when its plan could not be made (unreachable, a
    failed probe, locked, not run); one whose fault is found but whose fix
    changes nothing (or waits for another fault's fix) has ``nothing to change``.
    """
    changing: dict[str, list[str]] = {}
    for result in _planned(run):
        if result.predicted in ("change", "unknown"):
            changing.setdefault(result.host, []).append(result.predicted)
    counts = {"change": 0, "healthy": 0, "unknown": 0, "none": 0}
    predicted: list[str] = []
    for host in run.hosts:
        if host.status.is_failure or host.status is Status.NOT_RUN:
            counts["unknown"] += 1
        elif host.host in changing:
            counts["change"] += 1
            predicted += changing[host.host]
        else:
            counts["healthy" if host.status is Status.HEALTHY else "none"] += 1
    changes, effect_unknown = predicted.count("change"), predicted.count("unknown")
    detail = f"{changes} change{'s' * (changes != 1)}"
    if effect_unknown:
        detail += f", {effect_unknown} of unknown effect"
    verb = "host will" if counts["change"] == 1 else "hosts will"
    line = (f"Plan: {counts['change']} {verb} change ({detail}), {counts['healthy']} healthy, "
            f"{counts['unknown']} unknown")
    if counts["none"]:
        line += f", {counts['none']} with nothing to change"
    return line


def run_document(run: Any, redact: Any) -> dict[str, Any]:
    """The ``--format json`` document (schema documented in the README).

    A task has ``predicted`` only where a plan predicted it (fix tasks and
    handlers); ``rolled_back`` says its change was undone by its playbook's rollback.
    """
    hosts = []
    for host in run.hosts:
        tasks = []
        undone = {f.playbook for f in host.faults if f.state is FaultState.ROLLED_BACK}
        for result in host.results:
            tasks.append({
                "task": result.task, "name": result.name, "phase": result.phase,
                "status": str(result.status), "changed": result.changed,
                "rolled_back": result.changed and result.phase in ("tasks", "handlers")
                and _playbook(result.task) in undone,
                **({"predicted": result.predicted} if result.predicted else {}), "message": result.message,
                "duration": round(result.duration, 3), "no_log": result.no_log,
                "diffs": [{"path": d.path, "before": d.before, "after": d.after} for d in result.diffs],
                "commands": [{"command": c.command, "rc": c.rc, "stdout": c.stdout, "stderr": c.stderr,
                              "truncated": c.truncated} for c in result.commands],
            })
        counts = host.counts()
        hosts.append({"host": host.host, "status": str(host.status), "tasks": tasks,
                      "counts": {str(status): counts[status] for status in Status},
                      "faults": fault_documents(host), "health": dict(host.health) or None,
                      "evidence": dict(host.evidence) or None})
    document = {"version": 1, "run_id": run.run_id, "check": run.check,
                "interrupted": run.interrupted, "aborted": run.aborted or None,
                "audit_error": run.audit_error or None, "over_budget": list(run.over_budget),
                "incomplete": run.incomplete or None, "exit_code": run.exit_code, "hosts": hosts}
    return redact(document)  # type: ignore[no-any-return]


def junit_document(run: Any, redact: Any) -> str:
    """A JUnit XML report: one testsuite per host, one testcase per task, per failed fault, per rollback.

    A test case's ``classname`` is ``host.playbook`` and its ``name`` the task's
    id (``port_conflict:stop_stale``), unique within the host, so CI tools keep
    every task apart. A healthy task (the fault is not present) passes; a task
    skipped or not run is skipped. Each rolled-back, rollback-failed or blocked
    fault is a failing test case of its own, and each rollback that ran is a
    test case (``port_conflict:rollback``) whose output lists what it did.
    """
    from xml.etree import ElementTree as ET

    suites = ET.Element("testsuites", name="remedy")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for host in run.hosts:
        suite = ET.SubElement(suites, "testsuite", name=host.host)
        counts = dict.fromkeys(totals, 0)
        for result in host.results:
            kind = _junit_case(suite, f"{host.host}.{_playbook(result.task)}", result, redact)
            counts[kind] += kind != "tests"
            counts["tests"] += 1
        for fault in host.faults:
            if fault.state in (FaultState.ROLLED_BACK, FaultState.ROLLBACK_FAILED):
                _rollback_case(suite, host, fault.playbook, redact)
                counts["tests"] += 1
            if fault.state in FAILED_FAULTS:  # the verdict on the fault, beside its tasks
                case = ET.SubElement(suite, "testcase", classname=f"{host.host}.{fault.playbook}",
                                     name=f"{fault.playbook}: {fault.state}", time="0")
                ET.SubElement(case, "failure", message=_xml_safe(redact(fault.detail)), type=str(fault.state))
                counts["tests"] += 1
                counts["failures"] += 1
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        suites.set(key, str(value))
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


def _playbook(task: str) -> str:
    return task.split(":", 1)[0]


def _junit_case(suite: Any, classname: str, result: Any, redact: Any) -> str:
    """Add ``result``'s test case to ``suite``; returns the counter it adds to (``tests``: passed)."""
    from xml.etree import ElementTree as ET

    case = ET.SubElement(suite, "testcase", classname=classname, name=result.task,
                         time=f"{result.duration:.3f}")
    message = _xml_safe(redact(result.message))
    status = result.status
    if status.is_failure:
        message = _xml_safe(redact(f"{result.name}: {result.message}"))
    if status in (Status.FAILED, Status.ROLLED_BACK, Status.ROLLBACK_FAILED, Status.BLOCKED):
        ET.SubElement(case, "failure", message=message, type=str(status))
        return "failures"
    if status in (Status.UNREACHABLE, Status.TIMED_OUT, Status.INDETERMINATE):
        ET.SubElement(case, "error", message=message, type=str(status))
        return "errors"
    if status in (Status.SKIPPED, Status.NOT_RUN):
        ET.SubElement(case, "skipped", message=message or str(status))
        return "skipped"
    ET.SubElement(case, "system-out").text = _xml_safe(redact(f"{result.phase}: {status}: {result.name}"
                                                               + (f" - {result.message}" if result.message
                                                                  else "")))
    return "tests"


def _rollback_case(suite: Any, host: Any, playbook: str, redact: Any) -> None:
    """The test case of a rollback that ran: what each of its tasks did."""
    from xml.etree import ElementTree as ET

    undo = [r for r in host.results if r.phase == "rollback" and _playbook(r.task) == playbook
            and r.status is not Status.SKIPPED]
    case = ET.SubElement(suite, "testcase", classname=f"{host.host}.{playbook}", name=f"{playbook}:rollback",
                         time=f"{sum(r.duration for r in undo):.3f}")
    lines = [f"{r.task} ({r.name}): {r.status}" + (f" - {r.message}" if r.message else "") for r in undo]
    ET.SubElement(case, "system-out").text = _xml_safe(redact("\n".join(lines) or "nothing to roll back"))


def _xml_safe(text: str) -> str:
    return "".join(c for c in text if c in "\t\n\r" or (ord(c) >= 0x20 and ord(c) not in (0xFFFE, 0xFFFF)))


def prediction_mismatches(run: Run) -> list[str]:
    """Tasks whose real effect differs from the prediction made just before they ran."""
    lines = []
    for result in run.all_results():
        if result.phase not in ("tasks", "handlers") or result.status not in (Status.OK, Status.CHANGED):
            continue
        if result.predicted == "change" and not result.changed:
            lines.append(f"{result.host} {result.task}: predicted a change, changed nothing")
        elif result.predicted == "no_change" and result.changed:
            lines.append(f"{result.host} {result.task}: predicted no change, but changed")
    return lines
