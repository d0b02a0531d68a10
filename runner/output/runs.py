"""Rendering: graphs, catalogues, plans, recaps, JSON and JUnit documents.

Stages layer; with ``cli`` the only code that formats output. Everything
here takes data and returns text, so it is easy to test and never prints.
Task results arrive as the run's redactor recorded them (``no_log`` ones
concealed, secrets masked); callers pass the finished text through the same
redactor once more.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from runner.errors import printable
from runner.graph import NOTIFY, TaskGraph
from runner.imports import import_without
from runner.model import SECTIONS, Playbook
from runner.modules import MODULES
from runner.redaction import NO_LOG_MESSAGE
from runner.results import AUDIT_STOP
from runner.verdicts import FAILED_FAULTS, fault_documents


def _escape_label(text: str) -> str:
    return text.replace('"', "'").replace("\n", " ")


def render_graph(graph: TaskGraph, fmt: str) -> str:
    """The task graph as ``text``, ``mermaid`` (``graph TD``) or ``dot``."""
    if fmt == "mermaid":
        return _mermaid(graph)
    if fmt == "dot":
        return _dot(graph)
    return _text_graph(graph)


def _text_graph(graph: TaskGraph) -> str:
    lines: list[str] = []
    current = None
    for number, node_id in enumerate(graph.order, start=1):
        node = graph.nodes[node_id]
        header = f"{node.playbook.name} / play {node.play.index + 1}: {node.play.name or node.play.hosts}"
        if header != current:
            lines.append(header)
            current = header
        deps = graph.dependencies(node_id)
        after = f"  <- {', '.join(deps)}" if deps else ""
        lines.append(f"  {number:>3}. [{node.section}] {node_id}  {node.task.label}{after}")
    return "\n".join(lines) if lines else "(no tasks)"


def _mermaid(graph: TaskGraph) -> str:
    ids = {node_id: f"n{i}" for i, node_id in enumerate(graph.order)}
    lines = ["graph TD"]
    books = list(dict.fromkeys(graph.nodes[n].playbook.name for n in graph.order))
    for book in books:
        indent = "    "
        if len(books) > 1:  # one subgraph per playbook, so a set stays readable
            lines.append(f'    subgraph {_escape_label(book)}["{_escape_label(book)}"]')
            indent = "        "
        for node_id in graph.order:
            node = graph.nodes[node_id]
            if node.playbook.name != book:
                continue
            label = _escape_label(node.task.label)
            shape = f'{{"{label}"}}' if node.section in ("diagnose", "verify") else f'["{label}"]'
            lines.append(f"{indent}{ids[node_id]}{shape}")
        if len(books) > 1:
            lines.append("    end")
    edges: list[tuple[str, str, str]] = list(graph.graph.edges(data="kind"))
    for source, target, kind in edges:
        if kind == NOTIFY:
            lines.append(f"    {ids[source]} -.->|notify| {ids[target]}")
        else:
            lines.append(f"    {ids[source]} --> {ids[target]}")
    return "\n".join(lines)


def _dot(graph: TaskGraph) -> str:
    lines = ["digraph remedy {", "    rankdir=TB;", "    node [shape=box];"]
    for node_id in graph.order:
        node = graph.nodes[node_id]
        lines.append(f'    "{node_id}" [label="{_escape_label(node.task.label)}\\n({node.section})"];')
    edges: list[tuple[str, str, str]] = list(graph.graph.edges(data="kind"))
    for source, target, kind in edges:
        style = ' [style=dashed, label="notify"]' if kind == NOTIFY else ""
        lines.append(f'    "{source}" -> "{target}"{style};')
    lines.append("}")
    return "\n".join(lines)


def render_inventory_graph(data: Mapping[str, Any]) -> str:
    """The group tree of an ``ansible-inventory --list`` document, like ``--graph``."""
    lines: list[str] = []

    def walk(group: str, depth: int) -> None:
        lines.append("  " * depth + f"@{group}:")
        entry = data.get(group, {})
        for child in entry.get("children", []):
            walk(child, depth + 1)
        for host in entry.get("hosts", []):
            lines.append("  " * (depth + 1) + f"|--{host}")

    walk("all", 0)
    return "\n".join(lines)


def render_catalogue(books: Iterable[Playbook]) -> str:
    """The bundled playbooks, one line each."""
    rows = []
    for book in books:
        summary = book.header.splitlines()[0] if book.header else ""
        rows.append(f"  {book.name:<22} {summary}")
    if not rows:
        return "no bundled playbooks"
    return "Bundled playbooks (remedy playbooks NAME for details):\n" + "\n".join(rows)


def render_playbook_doc(book: Playbook) -> str:
    """A playbook's header, then its plays' variables and sections."""
    parts = [book.header or f"{book.name} (no documentation header)", ""]
    for play in book.plays:
        parts.append(f"Play: {play.name or play.hosts}  (hosts: {play.hosts})")
        if play.vars:
            parts.append("  Variables (defaults; override with -e or inventory):")
            for key, value in play.vars.items():
                parts.append(f"    {key} = {json.dumps(value, default=str)}")
        for section in SECTIONS:
            tasks = play.section(section)
            if tasks:
                parts.append(f"  {section}:")
                parts.extend(f"    - {t.label}" for t in tasks)
    parts.append(f"\nFile: {book.path}")
    return "\n".join(parts)


def render_modules(name: str | None = None) -> str:
    """Documentation of every module, or of one."""
    from runner.errors import InputError, Location, suggest

    if name is not None and name not in MODULES:
        raise InputError.at(Location("<command line --module>"),
                            f"no module named '{name}'" + suggest(name, MODULES))
    chosen = [name] if name else sorted(MODULES)
    out: list[str] = []
    for module_name in chosen:
        module = MODULES[module_name]
        out.append(f"{module_name}: {module.summary}")
        if name and module.doc:
            out.append("")
            out.append(module.doc.strip())
        for arg_name, spec in module.args.items():
            flags = ["required"] if spec.required else []
            if spec.default is not None:
                flags.append(f"default {spec.default!r}")
            if spec.choices:
                flags.append("one of " + "/".join(spec.choices))
            detail = f" ({', '.join(flags)})" if flags else ""
            free = " [free form]" if module.free_form == arg_name else ""
            out.append(f"    {arg_name}: {spec.type}{detail}{free} - {spec.doc}")
        out.append("")
    return "\n".join(out).rstrip()


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


def table(rows: list[list[Any]], headers: list[str]) -> str:
    """``rows`` under ``headers`` in tabulate's "simple" format, wide (CJK) characters counted as two."""
    text: str = _tabulate()(rows, headers=headers, tablefmt="simple")
    return text


@functools.cache
def _tabulate() -> Any:
    """tabulate, with ``cell_width`` in place of the wcwidth package.

    tabulate measures wide characters with wcwidth when that is installed;
    importing wcwidth's tables costs ~20 ms, a tenth of a one-host run.
    ``unicodedata`` (built in, already loaded) answers the same question for
    what a table cell holds. The two attributes are set on the tabulate module
    itself, so other users of tabulate in this process measure the same way.
    """
    tabulate: Any = import_without("tabulate", "wcwidth")
    tabulate.wcwidth = _CellWidth  # the one module attribute tabulate measures with
    tabulate.WIDE_CHARS_MODE = True
    return tabulate.tabulate


def cell_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: 2 for wide and full-width characters, 0 for combining ones."""
    if text.isascii():
        return len(text)
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


class _CellWidth:
    """The one function tabulate calls on its ``wcwidth`` module."""

    wcswidth = staticmethod(cell_width)


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
