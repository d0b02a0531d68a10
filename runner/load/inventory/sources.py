"""Loading inventory sources: ``load_inventory`` and the file kinds it tells apart.

Load stage, the entry of the ``inventory`` flow: each ``-i`` source is a comma
list, a directory (read in name order) or a file, which goes to ``yamlsource``
or ``ini`` by its suffix or first line; TOML files and inventory scripts are
refused. Then ``varsfiles`` reads the ``group_vars/`` and ``host_vars/`` beside
each source and ``builder`` freezes the result.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from runner.errors import InventoryError, LoadError, Location
from runner.load.inventory.builder import Builder, meaningful, read_text
from runner.load.inventory.ini import parse_ini
from runner.load.inventory.model import LOCALHOST_NAMES, Inventory
from runner.load.inventory.patterns import split_port
from runner.load.inventory.varsfiles import unused_group_files, vars_dir
from runner.load.inventory.yamlsource import parse_yaml
from runner.load.yamlfile import load_text

_YAML_SUFFIXES = (".yml", ".yaml", ".json")
_IGNORED = re.compile(
    r"^\.|^host_vars$|^group_vars$|^vars_plugins$|(\.pyc|\.pyo|\.swp|\.bak|~|\.rpm"
    r"|\.md|\.txt|\.rst|\.orig|\.cfg|\.retry)$"
)


def load_inventory(paths: Sequence[str | Path]) -> Inventory:
    """Load and merge inventory sources as repeated ``-i`` options do in Ansible.

    Each source is an INI or YAML file, a directory of them, or a comma list
    (``localhost,`` or ``web1:2222,db1``).

    Raises:
        InventoryError: every problem found in every source, each with file and line.
    """
    builder = Builder()
    if not paths:
        builder.problems.add(Location("<inventory>"), "no inventory given", "pass -i FILE")
    roots: list[Path] = []
    for raw in paths:
        text = str(raw)
        if "," in text and not os.path.exists(text):
            _parse_host_list(builder, text)
            continue
        path = Path(os.path.normpath(os.path.abspath(text)))
        if path.is_dir():
            if not _parse_dir(builder, path):
                builder.problems.add(Location(str(path)), "no inventory files in this directory")
        elif path.is_file():
            _parse_file(builder, path)
        else:
            builder.problems.add(
                Location(text),
                "inventory source does not exist",
                "give a file, a directory, or a comma list such as 'web1,web2,'",
            )
            continue
        roots.append(path if path.is_dir() else path.parent)
    builder.reconcile()
    names = [*builder.hosts, *(n for n in LOCALHOST_NAMES if n not in builder.hosts)]
    loaded = {
        root: (
            vars_dir(builder, root / "group_vars", list(builder.groups)),
            vars_dir(builder, root / "host_vars", names),
        )
        for root in dict.fromkeys(roots)
    }
    group_files = [loaded[root][0] for root in roots]  # a root given twice applies twice, as in Ansible
    host_files = [loaded[root][1] for root in roots]
    builder.problems.raise_if_any(InventoryError)
    inventory = builder.freeze(group_files, host_files)
    return replace(inventory, warnings=tuple(unused_group_files(roots, builder.groups)),
                   files=MappingProxyType(builder.files))


def _parse_host_list(builder: Builder, text: str) -> None:
    location = Location(f"<host list {text!r}>")
    for entry in (part.strip() for part in text.split(",")):
        if entry:
            name, port = split_port(entry)
            builder.add_host(name, "ungrouped", port, location, None)


def _parse_dir(builder: Builder, directory: Path) -> bool:
    """Parse every inventory file under ``directory`` in name order; False if there is none."""
    found = False
    for name in sorted(os.listdir(directory)):
        if _IGNORED.search(name):
            continue
        path = directory / name
        if path.is_dir():
            found = _parse_dir(builder, path) or found
        elif path.is_file():
            _parse_file(builder, path)
            found = True
    return found


def _parse_file(builder: Builder, path: Path) -> None:
    name = str(path)
    text = read_text(builder, path)
    if text is None:
        return
    if not any(meaningful(line) for line in text.splitlines()):
        builder.problems.add(
            Location(name, 1), "inventory file is empty", "list hosts (INI) or an 'all:' mapping (YAML)"
        )
        return
    if path.suffix == ".toml":
        builder.problems.add(
            Location(name), "TOML inventories are not supported", "convert it to YAML or INI"
        )
    elif text.startswith("#!") and os.access(path, os.X_OK):
        builder.problems.add(
            Location(name, 1),
            "inventory scripts are not supported",
            "save the script's --list output as a YAML or JSON file",
        )
    elif path.suffix in _YAML_SUFFIXES or (not path.suffix and _looks_like_yaml(text)):
        try:
            parse_yaml(builder, name, load_text(text, name, yaml11=True))
        except LoadError as error:
            builder.problems.extend(error)
    else:
        parse_ini(builder, name, text.splitlines())


def _looks_like_yaml(text: str) -> bool:
    """Whether an extensionless file's first meaningful line is YAML (``key:``, ``---``, ``{``)."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped == "---" or stripped.startswith("{"):
            return True
        if meaningful(line):
            return re.match(r"""^("[^"]*"|'[^']*'|[^\s:=\[#;'"]+)\s*:(\s|$)""", stripped) is not None
    return False
