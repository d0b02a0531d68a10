"""remedy: diagnose, plan, fix, verify and roll back faults on hosts over SSH.

The public API is ``__all__``; the command line is ``runner.cli.main``
(the ``remedy`` program is ``runner.cli.entry``).
"""

from __future__ import annotations

from runner.errors import (
    CommandError,
    CommandTimeout,
    ConnectionLost,
    GraphError,
    InputError,
    InventoryError,
    LoadError,
    Location,
    LockedError,
    ModuleError,
    PlanRefusedError,
    PlaybookError,
    Problem,
    RemedyError,
    TemplateError,
    UnreachableError,
)
from runner.results import CommandResult, Diff, HostResult, Run, Status, TaskResult

__version__ = "0.1.0"

__all__ = [
    "CommandError",
    "CommandResult",
    "CommandTimeout",
    "ConnectionLost",
    "Diff",
    "GraphError",
    "HostResult",
    "InputError",
    "InventoryError",
    "LoadError",
    "Location",
    "LockedError",
    "ModuleError",
    "PlanRefusedError",
    "PlaybookError",
    "Problem",
    "RemedyError",
    "Run",
    "Status",
    "TaskResult",
    "TemplateError",
    "UnreachableError",
    "__version__",
]
