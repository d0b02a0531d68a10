"""The registry is complete and documented: what ``remedy playbooks`` and the validator rely on."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from runner.modules import MODULES, get_module
from runner.modules.base import ARG_TYPES, Module
from tests.unit.modules.casefile import CASES_DIR

MODULE_FILES = sorted(p for p in (Path(__file__).parents[3] / "runner" / "modules").glob("*.py"))
NAMES = sorted(MODULES)


def test_registry_holds_every_module_the_design_names() -> None:
    assert set(MODULES) == {
        "command", "shell", "file", "copy", "template", "lineinfile", "stat", "service",
        "wait_for", "uri", "assert", "debug", "set_fact", "fail", "fetch",
        # the domain modules of the bundled fault playbooks
        "port", "permissions", "redis_cache", "cache_dir", "backup_restore", "postgres_restore",
        "memcached", "health", "config_file", "package", "pip",
    }  # fmt: skip


def test_registry_is_an_explicit_literal() -> None:
    source = (Path(__file__).parents[3] / "runner" / "modules" / "__init__.py").read_text()
    for name, cls in MODULES.items():
        assert f'"{name}": ("{cls.__module__.rsplit(".", 1)[1]}", "{cls.__name__}"),' in source


def test_a_lookup_imports_only_that_modules_file() -> None:
    probe = ("import sys; from runner.modules import MODULES; MODULES['command']; "
             "print(' '.join(sorted(m for m in sys.modules if m.startswith('runner.modules.'))))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "runner.modules.commands" in loaded.stdout.split()
    assert "runner.modules.postgres" not in loaded.stdout.split()
    assert "command" in MODULES and "nothing" not in MODULES and MODULES.get("nothing") is None


@pytest.mark.parametrize("name", NAMES)
def test_module_is_named_summarized_and_documented(name: str) -> None:
    cls = MODULES[name]
    assert issubclass(cls, Module)
    assert cls.name == name
    assert cls.summary and not cls.summary.endswith(".")
    assert cls.__doc__ and cls.__doc__.strip()
    assert get_module(name) is cls


@pytest.mark.parametrize("name", NAMES)
def test_every_argument_has_a_valid_type_and_a_doc(name: str) -> None:
    cls = MODULES[name]
    assert cls.args, "every module documents its arguments"
    aliases: list[str] = []
    for arg_name, spec in cls.args.items():
        assert re.fullmatch(r"[a-z_]+", arg_name), arg_name
        assert spec.type in ARG_TYPES, (arg_name, spec.type)
        assert spec.doc.strip(), f"{name}.{arg_name} has no doc"
        assert not (spec.required and spec.default is not None), f"{name}.{arg_name}"
        if spec.choices and spec.default is not None:
            assert spec.default in spec.choices, f"{name}.{arg_name}"
        aliases += spec.aliases
    assert len(aliases) == len(set(aliases)), "an alias names one argument"
    assert not set(aliases) & set(cls.args), "an alias is not also an argument"


@pytest.mark.parametrize("name", NAMES)
def test_argument_groups_name_declared_arguments(name: str) -> None:
    cls = MODULES[name]
    if cls.free_form is not None:
        assert cls.free_form in cls.args
    for group in (*cls.mutually_exclusive, *cls.required_one_of):
        assert set(group) <= set(cls.args), group


@pytest.mark.parametrize("name", NAMES)
def test_every_module_has_golden_cases(name: str) -> None:
    cases = list((CASES_DIR / name).glob("*.yaml"))
    assert len(cases) >= 4, f"{name} has {len(cases)} golden cases"
    assert any("metachar" in case.stem for case in cases), f"{name} lacks a shell metacharacter case"


def test_read_only_modules() -> None:
    read_only = {name for name, cls in MODULES.items() if cls.read_only}
    assert read_only == {"stat", "assert", "debug", "set_fact", "fail", "wait_for", "health"}
    uri = MODULES["uri"]()
    assert uri.reads_only({"url": "http://x/"}) and uri.reads_only({"url": "http://x/", "method": "HEAD"})
    assert not uri.reads_only({"url": "http://x/", "method": "POST"})


def test_no_module_file_is_named_like_the_standard_library() -> None:
    import sys

    stems = {p.stem for p in MODULE_FILES}
    assert not stems & set(sys.stdlib_module_names)


def test_module_files_stay_small() -> None:
    for path in MODULE_FILES:
        assert len(path.read_text().splitlines()) <= 350, path.name  # STYLE: median ~150, ceiling ~400
