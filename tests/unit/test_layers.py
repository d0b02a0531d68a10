"""Imports go only downward: data <- services <- load <- plan <- run <- output <- alerts <- cli, no circles.

Every top-level module or package of ``runner`` has a rank; a module may
import from its own rank or a lower one. Imports inside functions and under
``TYPE_CHECKING`` count too: a lazy import is still a dependency. Inside a
package, modules may import each other, but no module imports itself back
through others (no circle anywhere), and the core never imports
``runner.testing``.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import networkx as nx
import pytest

RUNNER = Path(__file__).resolve().parents[2] / "runner"

RANKS: dict[str, int] = {}
for _rank, _names in enumerate([
    ("errors", "model", "results", "events", "imports"),  # data
    ("redaction", "connection", "modules"),  # services
    ("load",),
    ("plan",),
    ("run",),
    ("output",),
    ("alerts",),
    ("cli", "testing", "__init__", "__main__"),
]):
    RANKS.update(dict.fromkeys(_names, _rank))
RANK_NAMES = ("data", "services", "load", "plan", "run", "output", "alerts", "top")


def source_files(root: Path = RUNNER) -> list[Path]:
    return sorted(root.rglob("*.py"))


def component(path: Path, root: Path = RUNNER) -> str:
    """The rank key of a source file: its top-level module or package under ``runner``."""
    return path.relative_to(root).with_suffix("").parts[0]


def module_name(path: Path, root: Path = RUNNER) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["runner", *parts])


def is_module(dotted: str, root: Path = RUNNER) -> bool:
    """Whether ``runner.x.y`` names a module or package (not a class or function)."""
    path = root.parent / dotted.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imported_modules(path: Path, root: Path = RUNNER) -> list[tuple[int, str]]:
    """(line, dotted module) of every ``runner`` module that ``path`` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            submodules = [f"{stem}.{alias.name}" for alias in node.names
                          if is_module(f"{stem}.{alias.name}", root)]
            # ``from runner.load import templating`` imports the submodule ``runner.load.templating``
            targets = submodules if submodules and len(submodules) == len(node.names) else [stem, *submodules]
        found.extend((node.lineno, t) for t in targets if t.startswith("runner.") and t != "runner")
    return found


def upward_imports(root: Path = RUNNER) -> list[str]:
    problems = []
    for path in source_files(root):
        own = RANKS.get(component(path, root))
        for line, target in imported_modules(path, root):
            rank = RANKS.get(target.split(".")[1])
            if own is not None and rank is not None and rank > own:
                problems.append(f"{path.relative_to(root.parent)}:{line} imports {target} "
                                f"({RANK_NAMES[rank]}) from the {RANK_NAMES[own]} rank")
    return problems


def import_graph(root: Path = RUNNER) -> nx.DiGraph[str]:
    graph: nx.DiGraph[str] = nx.DiGraph()
    for path in source_files(root):
        source = module_name(path, root)
        graph.add_node(source)
        for _, target in imported_modules(path, root):
            while not is_module(target, root):  # a name inside a module: the module
                target = target.rpartition(".")[0]
            if target != source:
                graph.add_edge(source, target)
    return graph


def test_every_runner_module_has_a_rank() -> None:
    unranked = sorted({component(p) for p in source_files()} - set(RANKS))
    assert unranked == [], f"add these to a rank in {__file__}: {unranked}"


def test_imports_go_only_downward() -> None:
    assert upward_imports() == []


def test_there_is_no_import_circle_anywhere() -> None:
    cycles = list(nx.simple_cycles(import_graph()))
    assert cycles == []


def test_the_core_never_imports_the_test_support() -> None:
    users = sorted(source for source, target in import_graph().edges
                   if target.startswith("runner.testing") and not source.startswith("runner.testing"))
    assert users == []


def test_the_checker_reports_a_planted_upward_import_and_circle(tmp_path: Path) -> None:
    copy = tmp_path / "runner"
    shutil.copytree(RUNNER, copy, ignore=shutil.ignore_patterns("__pycache__"))
    graph_file = copy / "load" / "graph.py"
    graph_file.write_text(graph_file.read_text() + "\n\ndef _planted() -> None:\n"
                          "    from runner.cli.program import main  # noqa: F401\n")
    planted = upward_imports(copy)
    assert len(planted) == 1 and planted[0].startswith("runner/load/graph.py:")
    assert "imports runner.cli.program (top) from the load rank" in planted[0]
    circle = "    from runner.load.inputs import load_inputs  # noqa: F401\n"
    graph_file.write_text(graph_file.read_text() + circle)
    cycles = [sorted(cycle) for cycle in nx.simple_cycles(import_graph(copy))]
    assert ["runner.load.graph", "runner.load.inputs"] in cycles


def test_the_checker_sees_lazy_and_submodule_imports() -> None:
    graph = imported_modules(RUNNER / "load" / "graph.py")
    assert (1, "runner.errors") not in graph  # line numbers are real
    assert any(target == "runner.errors" for _, target in graph)
    program = imported_modules(RUNNER / "cli" / "program.py")
    assert any(target == "runner.load.inputs" for _, target in program)  # imported inside a function
    playbook = imported_modules(RUNNER / "load" / "playbook.py")
    assert any(target == "runner.load.templating" for _, target in playbook)  # ``from runner.load import``


def test_every_module_imports_on_its_own() -> None:
    """``python -c 'import runner.x.y'`` works for each module, in a fresh interpreter."""
    modules = [module_name(p) for p in source_files() if p.name != "__main__.py"]

    def load(name: str) -> tuple[str, int, str]:
        done = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True,
                              check=False, cwd=RUNNER.parent)
        return name, done.returncode, done.stderr[-400:]

    with ThreadPoolExecutor(max_workers=4) as pool:
        failed = [result for result in pool.map(load, modules) if result[1] != 0]
    assert failed == []


@pytest.mark.parametrize("package", ["load", "plan", "run", "output", "alerts", "cli", "testing"])
def test_each_stage_package_says_its_job_and_what_it_may_import(package: str) -> None:
    doc = ast.get_docstring(ast.parse((RUNNER / package / "__init__.py").read_text())) or ""
    assert doc.split("\n", 1)[0].strip(), f"runner/{package}/__init__.py has no one-line summary"
    if package != "testing":
        assert "May import:" in doc, f"runner/{package}/__init__.py does not say what it may import"


def test_architecture_names_every_package_and_only_packages_that_exist() -> None:
    text = (RUNNER.parent / "ARCHITECTURE.md").read_text(encoding="utf-8")
    named = {name.rstrip("/") for name in re.findall(r"`(runner/[a-z_/]*)`", text)}
    packages = {str(p.parent.relative_to(RUNNER.parent)) for p in RUNNER.rglob("__init__.py")}
    assert named - {"runner"} == packages - {"runner"}
    for package in packages - {"runner"}:  # every module of a package is named in its row
        row = next(line for line in text.splitlines() if line.startswith(f"| `{package}/`"))
        modules = {p.stem for p in (RUNNER.parent / package).glob("*.py")} - {"__init__"}
        if package != "runner/modules":  # the registry lists those
            assert {m for m in modules if f"`{m}`" not in row} == set(), package
