"""Imports go only downward: data <- services <- stages <- top.

Every module of ``runner`` belongs to one layer and may import from its own
layer or a lower one. Imports inside functions and under ``TYPE_CHECKING``
count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parents[2] / "runner"

LAYERS: dict[str, int] = {}
for _rank, _names in enumerate([
    ("errors", "model", "results", "events", "imports"),
    ("loader", "marked", "templating", "argcheck", "redaction", "connection", "modules", "transfer",
     "hostlock"),
    ("playbook", "taskread", "inventory", "patterns", "graph", "inputs", "taskrun", "probing",
     "rendering", "blocks", "hostwalk", "executor", "report", "audit", "verdicts"),
    ("cli", "session", "testing", "sshdlab", "demo", "__init__", "__main__"),
]):
    LAYERS.update(dict.fromkeys(_names, _rank))
LAYER_NAMES = ("data", "services", "stages", "top")


def source_files() -> list[Path]:
    return sorted(RUNNER.rglob("*.py"))


def component(path: Path) -> str:
    """The layer key of a source file: its top-level module or package under ``runner``."""
    parts = path.relative_to(RUNNER).with_suffix("").parts
    return parts[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(RUNNER).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["runner", *parts])


def is_module(dotted: str) -> bool:
    """Whether ``runner.x.y`` names a module or package (not a class or function)."""
    path = RUNNER.parent / dotted.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imported_components(path: Path) -> list[tuple[int, str]]:
    """(line, layer key) of every ``runner`` module that ``path`` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module_name(path).split(".")
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
            targets = [stem] if node.module or node.level == 0 else []
            # ``from runner import report`` imports the submodule ``runner.report``
            targets += [f"{stem}.{alias.name}" for alias in node.names
                        if is_module(f"{stem}.{alias.name}")]
        for target in targets:
            parts = target.split(".")
            if parts[0] == "runner" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
    return found


def test_every_runner_module_has_a_layer() -> None:
    unassigned = sorted({component(p) for p in source_files()} - set(LAYERS))
    assert unassigned == [], f"add these to a layer in {__file__}: {unassigned}"


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(RUNNER)))
def test_imports_go_only_downward(path: Path) -> None:
    own = LAYERS.get(component(path))
    if own is None:
        pytest.skip("module without a layer (reported by the test above)")
    upward = [
        f"{path.relative_to(RUNNER.parent)}:{line} imports runner.{target} "
        f"({LAYER_NAMES[LAYERS[target]]}) from the {LAYER_NAMES[own]} layer"
        for line, target in imported_components(path)
        if target in LAYERS and LAYERS[target] > own
    ]
    assert upward == []


def test_the_checker_sees_lazy_and_submodule_imports() -> None:
    sample = RUNNER / "loader.py"
    assert (1, "errors") not in imported_components(sample)  # line numbers are real
    assert any(target == "errors" for _, target in imported_components(sample))
    cli = imported_components(RUNNER / "cli.py")
    assert any(target == "inputs" for _, target in cli)  # imported inside a function
    playbook = imported_components(RUNNER / "playbook.py")
    assert any(target == "templating" for _, target in playbook)  # ``from runner import templating``
