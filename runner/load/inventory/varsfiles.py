"""``group_vars/`` and ``host_vars/``: the variable files beside an inventory source.

Load stage, read by ``sources`` after every source is parsed: for each group
and host name, ``NAME``, ``NAME.yml``, ``NAME.yaml``, ``NAME.json`` or a
``NAME/`` directory of them, checked as ``builder`` checks inline vars; and
warnings for ``group_vars/`` entries that match no group.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.errors import LoadError, Location, Problem, suggest
from runner.load.inventory.builder import Builder, meaningful, plain, read_text
from runner.load.marked import MarkedDict
from runner.load.yamlfile import load_text

_VARS_EXTENSIONS = ("", ".yml", ".yaml", ".json")


def vars_dir(builder: Builder, directory: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """The vars of each name from ``directory/NAME``, ``NAME.yml``, ``.yaml``, ``.json`` or ``NAME/``."""
    if not directory.exists():
        return {}
    if not directory.is_dir():
        builder.problems.add(Location(str(directory)), f"{directory.name} is not a directory")
        return {}
    entries = set(os.listdir(directory))
    found: dict[str, dict[str, Any]] = {}
    for name in names:
        paths = [directory / (name + ext) for ext in _VARS_EXTENSIONS if name + ext in entries]
        if len(paths) > 1:
            builder.problems.add(
                Location(str(paths[1])),
                f"{paths[1].name} is ignored because {paths[0].name} exists",
                "merge them into one file or directory",
            )
        if paths:
            found[name] = {}
            for file in _vars_files(paths[0]):
                found[name].update(_load_vars_file(builder, file))
    return found


def _vars_files(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    files: list[Path] = []
    for entry in sorted(path.iterdir()):
        if entry.name.startswith(".") or entry.name.endswith("~"):
            continue
        if entry.is_dir() and not entry.suffix:
            files.extend(_vars_files(entry))
        elif entry.is_file() and entry.suffix in _VARS_EXTENSIONS:
            files.append(entry)
    return files


def _load_vars_file(builder: Builder, path: Path) -> dict[str, Any]:
    text = read_text(builder, path)
    if text is None or not any(meaningful(line) for line in text.splitlines()):
        return {}
    try:
        data = load_text(text, str(path), yaml11=True)
    except LoadError as error:
        builder.problems.extend(error)
        return {}
    if not isinstance(data, MarkedDict):
        builder.problems.add(Location(str(path), 1), "a vars file must be a mapping of names to values")
        return {}
    result: dict[str, Any] = {}
    for key, value in data.items():
        value = plain(value)
        if builder.check_var(key, value, data.key_loc(key)):
            result[key] = value
    return result


def unused_group_files(roots: list[Path], groups: Mapping[str, Any]) -> list[Problem]:
    """Warnings for group_vars/ entries that match no group (often a typo)."""
    problems = []
    for root in dict.fromkeys(roots):
        directory = root / "group_vars"
        for entry in sorted(directory.iterdir()) if directory.is_dir() else []:
            stem = entry.stem if entry.suffix in _VARS_EXTENSIONS else ""
            if stem and stem not in groups and not entry.name.startswith("."):
                problems.append(
                    Problem(
                        Location(str(entry)),
                        f"group_vars for {stem!r}, which is not a group" + suggest(stem, groups),
                        "such a file is never read",
                    )
                )
    return problems
