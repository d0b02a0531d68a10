"""Importing a third-party package without an optional extra it loads at import time.

Data layer (standard library only), so every layer may use it. paramiko
imports ``invoke`` (for ssh_config's ``Match exec``) and tabulate imports
``wcwidth`` (for wide characters) whenever they are installed; each costs
~20-40 ms of a start-up that remedy needs to be short, and remedy does
without both unless asked.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType


def import_without(name: str, extra: str) -> ModuleType:
    """Import ``name`` while ``import extra`` raises ImportError, as if it were not installed.

    A module already imported is returned as it is, and so is ``name`` when
    ``extra`` was imported before (nothing is saved by hiding it then).
    """
    if name in sys.modules or extra in sys.modules:
        return importlib.import_module(name)
    sys.modules[extra] = None  # type: ignore[assignment]  # ``import extra`` raises ImportError
    try:
        return importlib.import_module(name)
    finally:
        del sys.modules[extra]
