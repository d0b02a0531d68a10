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
from runner.output.tables import table
from runner.output.verdicts import FAILED_FAULTS, fault_documents
from runner.redaction import NO_LOG_MESSAGE
from runner.results import AUDIT_STOP, Run, Status

# --- runs: progress, plan, recap, JSON, JUnit -------------------------------

RECAP_COLUMNS = ("ok", "changed", "failed", "skipped", "unreachable", "timed_out",
                 "indeterminate", "healthy", "not_run")
_SYMBOLS = {"ok": "ok", "changed": "changed", "failed": "FAILED", "skipped": "skipped",
            "unreachable": "UNREACHABLE", "timed_out": "TIMED OUT", "indeterminate": "INDETERMINATE",
            "healthy": "healthy", "rolled_back": "ROLLED BACK", "not_run": "not run"}


def render_result_line(result: Any, *, verbose: int = 0, diff: bool = False,
                       redact: Any = None) -> str:
    """One progress line for a finished task (plus commands/diffs when asked)."""
    mask = redact or (lambda text: text)
    status = _SYMBOLS.get(str(result.status), str(result.status))
    if result.predicted == "unknown" and result.phase != "diagnose":
        status += " (will run, effect unknown)" if result.data.get("check_mode") else ""
    message = f" - {mask(_one_line(result.message))}" if result.message else ""
    lines = [f"[{result.host}] {status}: {result.name}{message}"]
    if result.no_log and not result.message:
        lines[0] += f" {NO_LOG_MESSAGE}"
    if verbose:
        for command in result.commands:
            lines.append(f"    $ {mask(_one_line(command.command, 200))}  (rc={command.rc})")
            for stream in (command.stdout, command.stderr):
                for line in stream.splitlines()[-20 if verbose < 2 else None:]:
                    lines.append("      " + mask(printable(line)))
    if diff:
        lines.extend(mask(text) for text in render_diffs(result.diffs))
    return "\n".join(lines)


def _one_line(text: str, limit: int = 300) -> str:
    flat = printable(" ".join(text.split()))
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def render_diffs(diffs: Iterable[Any]) -> list[str]:
    import difflib

    out: list[str] = []
    for diff in diffs:
        body = list(difflib.unified_diff(diff.before.splitlines(), diff.after.splitlines(),
                                         f"{diff.path} (before)", f"{diff.path} (after)", lineterm=""))
        out.extend("    " + printable(line) for line in (body or [f"--- {diff.path}: no textual change"]))
    return out


def render_recap(run: Any) -> str:
    """The PLAY RECAP table: one row per host; counters add up to the host's tasks."""
    rows = []
    for host in run.hosts:
        counts = host.counts()
        row = [host.host, str(host.status)] + [counts.get(_status(c), 0) for c in RECAP_COLUMNS]
        row.append(sum(counts.values()))
        rows.append(row)
    recap = table(rows, ["host", "result", *RECAP_COLUMNS, "total"])
    title = "RECAP (check mode: nothing was changed)" if run.check else "RECAP"
    footer = []
    if run.audit_error:
        footer.append(f"run stopped: {AUDIT_STOP} ({run.audit_error})")
    if run.aborted:
        footer.append(f"run stopped: {run.aborted}")
    if run.interrupted:
        footer.append("run interrupted: tasks not started were not run")
    return "\n".join([title, recap, *footer])


def _status(name: str) -> Any:
    from runner.results import Status

    return Status(name)


def render_plan(run: Any) -> str:
    """Per-host table of what a check run predicts, and a plain summary."""
    rows = []
    for result in run.all_results():
        if result.phase not in ("tasks", "handlers"):
            continue
        if result.predicted in ("change", "unknown") or str(result.status) in ("failed", "unreachable"):
            what = {"change": "will change", "unknown": "will run, effect unknown"}.get(
                result.predicted, str(result.status))
            rows.append([result.host, result.name, what, _one_line(result.message, 80)])
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
                      "counts": {str(k): v for k, v in counts.items()},
                      "faults": fault_documents(host), "health": dict(host.health) or None})
    document = {"version": 1, "run_id": run.run_id, "check": run.check,
                "interrupted": run.interrupted, "aborted": run.aborted or None,
                "audit_error": run.audit_error or None, "exit_code": run.exit_code, "hosts": hosts}
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
