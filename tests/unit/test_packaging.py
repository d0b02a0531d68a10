"""The distribution ships every package of ``runner`` and one version."""

from __future__ import annotations

import tomllib
from pathlib import Path

import runner

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_under_runner_is_listed_for_the_wheel() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "runner").rglob("__init__.py")}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_the_version_comes_from_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "runner.__version__"}
    assert runner.__version__.count(".") == 2
