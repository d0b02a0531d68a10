"""Importing paramiko and tabulate without the optional extras they would load."""

from __future__ import annotations

import subprocess
import sys


def test_paramiko_comes_without_invoke_which_stays_importable() -> None:
    probe = ("import sys; from runner.connection import import_ssh; import_ssh(); "
             "print('paramiko' in sys.modules, 'invoke' in sys.modules); import invoke; print('later')")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["True", "False", "later"]


def test_an_extra_already_imported_is_left_as_it_is() -> None:
    probe = ("import invoke; from runner.imports import import_without; "
             "import_without('paramiko', 'invoke'); import paramiko.config; "
             "print(paramiko.config.invoke is invoke)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"
