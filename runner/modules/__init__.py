"""The module registry: every task module remedy knows, by name.

Services layer. ``MODULES`` is an explicit literal so that a grep finds every
module; ``get_module`` resolves a name or raises with a suggestion.
"""

from __future__ import annotations

from runner.modules.base import Module

MODULES: dict[str, type[Module]] = {}


def get_module(name: str) -> type[Module] | None:
    """The module class registered under ``name``, or None."""
    return MODULES.get(name)


__all__ = ["MODULES", "Module", "get_module"]
