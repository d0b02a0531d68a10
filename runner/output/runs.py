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
from runner.output.tables import table, text_lines
from runner.output.verdicts import FAILED_FAULTS, fault_documents
from runner.redaction import NO_LOG_MESSAGE
from runner.results import AUDIT_STOP, Run, Status

# --- runs: progress, plan, recap, JSON, JUnit -------------------------------

#: The recap's columns: every state, in ``Status`` order (``-v`` and JSON show them all).
RECAP_COLUMNS = tuple(str(status) for status in Status)
#: The columns the default recap always shows; the others only where some host has one.
_USUAL_COLUMNS = ("ok", "changed", "failed", "skipped")
_SYMBOLS = {"ok": "ok", "changed": "changed", "failed": "FAILED", "skipped": "skipped",
            "unreachable": "UNREACHABLE", "timed_out": "TIMED OUT", "indeterminate": "INDETERMINATE",
            "healthy": "healthy", "rolled_back": "ROLLED BACK", "not_run": "not run"}


def render_result_line(result: Any, *, verbose: int = 0, diff: bool = False,
                       redact: Any = None) -> str:
    """One progress line for a finished task (plus commands/diffs when asked).

    A multi-line message (a script's text) goes on as an indented block; with
    ``-v`` each command is shown as a shell shows it: ``$`` then ``>`` for its
    further lines.
    """
    mask = redact or (lambda text: text)
    status = _SYMBOLS.get(str(result.status), str(result.status))
    if result.predicted == "unknown" and result.phase != "diagnose":
        status += " (will run, effect unknown)" if result.data.get("check_mode") else ""
    message = text_lines(mask(result.message)) if result.message else [""]
    lines = [f"[{result.host}] {status}: {result.name}" + (f" - {message[0]}" if result.message else "")]
    lines.extend(f"    {line}" for line in message[1:])
    if result.no_log and not result.message:
        lines[0] += f" {NO_LOG_MESSAGE}"
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


def render_diffs(diffs: Iterable[Any]) -> list[str]:
    import difflib

    out: list[str] = []
    for diff in diffs:
        body = list(difflib.unified_diff(diff.before.splitlines(), diff.after.splitlines(),
                                         f"{diff.path} (before)", f"{diff.path} (after)", lineterm=""))
        out.extend("    " + printable(line) for line in (body or [f"--- {diff.path}: no textual change"]))
    return out


def render_recap(run: Any, *, verbose: bool = False) -> str:
    """The PLAY RECAP table: one row per host; counters add up to the host's tasks.

    By default it fits 100 columns: a zero count is blank, and a state other
    than ok, changed, failed and skipped has a column only when some host has
    it. ``verbose`` shows every state's column with every count.
    """
    counts = [host.counts() for host in run.hosts]
    columns = [c for c in RECAP_COLUMNS if verbose or c in _USUAL_COLUMNS
               or any(count[Status(c)] for count in counts)]
    rows = []
    for host, count in zip(run.hosts, counts, strict=True):
        cells = [count[Status(c)] or ("" if not verbose else 0) for c in columns]
        rows.append([host.host, str(host.status), *cells, sum(count.values())])
    recap = table(rows, ["host", "result", *columns, "total"])
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


def render_plan(run: Any) -> str:
    """Per-host table of what a check run predicts, and a plain summary."""
    rows = []
    for result in run.all_results():
        if result.phase not in ("tasks", "handlers"):
            continue
        if result.predicted in ("change", "unknown") or str(result.status) in ("failed", "unreachable"):
            what = {"change": "will change", "unknown": "will run, effect unknown"}.get(
                result.predicted, str(result.status))
            rows.append([result.host, result.name, what, "\n".join(text_lines(result.message, width=80,
                                                                                  most=10))])
    healthy = [h.host for h in run.hosts if str(h.status) == "healthy"]
    lines = []
    if rows:
        lines.append(table(rows, ["host", "task", "plan", "detail"]))
    else:
        lines.append("No changes: the plan would change nothing on any host.")
    if healthy:
        lines.append(f"healthy (fault not present, nothing to do): {', '.join(healthy)}")
    return "\n".join(lines)


def run_document(run: Any, redact: Any) -> dict[str, Any]:
    """The ``--format json`` document (schema documented in the README)."""
    hosts = []
    for host in run.hosts:
        tasks = []
        for result in host.results:
            tasks.append({
                "task": result.task, "name": result.name, "phase": result.phase,
                "status": str(result.status), "changed": result.changed,
                "predicted": result.predicted or None, "message": result.message,
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
    """A JUnit XML report: one testsuite per host, one testcase per task."""
    from xml.etree import ElementTree as ET

    suites = ET.Element("testsuites", name="remedy", tests=str(sum(len(h.results) for h in run.hosts)))
    for host in run.hosts:
        suite = ET.SubElement(suites, "testsuite", name=host.host, tests=str(len(host.results)))
        failures = errors = skipped = 0
        for result in host.results:
            case = ET.SubElement(suite, "testcase", classname=host.host, name=result.name,
                                 time=f"{result.duration:.3f}")
            message = redact(result.message)
            status = str(result.status)
            if status in ("failed", "rolled_back"):
                failures += 1
                ET.SubElement(case, "failure", message=_xml_safe(message), type=status)
            elif status in ("unreachable", "timed_out", "indeterminate"):
                errors += 1
                ET.SubElement(case, "error", message=_xml_safe(message), type=status)
            elif status in ("skipped", "not_run", "healthy", "blocked"):
                skipped += 1
                ET.SubElement(case, "skipped", message=_xml_safe(message or status))
        for fault in host.faults:  # the verdict on each fault, beside its tasks
            if fault.state in FAILED_FAULTS:
                failures += 1
                case = ET.SubElement(suite, "testcase", classname=host.host,
                                     name=f"{fault.playbook}: {fault.state}", time="0")
                ET.SubElement(case, "failure", message=_xml_safe(redact(fault.detail)), type=str(fault.state))
        suite.set("tests", str(len(host.results) + sum(f.state in FAILED_FAULTS for f in host.faults)))
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
        suite.set("skipped", str(skipped))
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


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
