"""Documents that need no run: the task graph, the inventory tree, the playbook catalogue and module docs.

Output stage: ``remedy graph``, ``remedy inventory --graph`` and ``remedy
playbooks`` render with these; each takes data and returns text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from runner.load.graph import NOTIFY, TaskGraph
from runner.model import SECTIONS, Playbook
from runner.modules import MODULES


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
