"""The module registry: every task module remedy knows, by name.

Services layer. ``_PLACES`` is an explicit literal so that a grep finds every
module; ``MODULES`` imports a module's file when its class is first looked up
(a run loads only what its playbooks use); ``get_module`` resolves a name or
returns None.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from importlib import import_module

from runner.modules.base import Module

#: Where each module lives: ``runner.modules.<file>``, class name. Imported on first use,
#: so that a run loads only the modules its playbooks name.
_PLACES: dict[str, tuple[str, str]] = {
    "command": ("commands", "CommandModule"),
    "shell": ("commands", "ShellModule"),
    "file": ("file", "FileModule"),
    "copy": ("content", "CopyModule"),
    "template": ("content", "TemplateModule"),
    "lineinfile": ("lineinfile", "LineinfileModule"),
    "stat": ("filestat", "StatModule"),
    "service": ("service", "ServiceModule"),
    "wait_for": ("wait_for", "WaitForModule"),
    "uri": ("uri", "UriModule"),
    "health": ("health", "HealthModule"),
    "assert": ("control", "AssertModule"),
    "debug": ("control", "DebugModule"),
    "set_fact": ("control", "SetFactModule"),
    "fail": ("control", "FailModule"),
    "fetch": ("fetch", "FetchModule"),
    "port": ("port", "PortModule"),
    "permissions": ("permissions", "PermissionsModule"),
    "redis_cache": ("rediscache", "RedisCacheModule"),
    "cache_dir": ("cache", "CacheDirModule"),
    "backup_restore": ("backup", "BackupRestoreModule"),
    "postgres_restore": ("postgres", "PostgresRestoreModule"),
    "memcached": ("memcached", "MemcachedModule"),
    "config_file": ("configfile", "ConfigFileModule"),
    "package": ("package", "PackageModule"),
    "pip": ("pip", "PipModule"),
}


class Registry(MutableMapping[str, type[Module]]):
    """Module classes by name; a class is imported when it is first looked up."""

    def __init__(self, places: dict[str, tuple[str, str]]) -> None:
        self._places = dict(places)
        self._classes: dict[str, type[Module]] = {}

    def __getitem__(self, name: str) -> type[Module]:
        found = self._classes.get(name)
        if found is None:
            file, attribute = self._places[name]  # KeyError for an unknown name
            found = getattr(import_module(f"runner.modules.{file}"), attribute)
            self._classes[name] = found
        return found

    def __setitem__(self, name: str, module: type[Module]) -> None:
        self._classes[name] = module

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._classes.pop(name, None)
        self._places.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._places or name in self._classes

    def __iter__(self) -> Iterator[str]:
        yield from self._places
        yield from (name for name in self._classes if name not in self._places)

    def __len__(self) -> int:
        return len(self._places.keys() | self._classes.keys())


MODULES: MutableMapping[str, type[Module]] = Registry(_PLACES)


def get_module(name: str) -> type[Module] | None:
    """The module class registered under ``name``, or None."""
    return MODULES.get(name)


__all__ = ["MODULES", "Module", "get_module"]
