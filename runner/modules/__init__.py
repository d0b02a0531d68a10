"""The module registry: every task module remedy knows, by name.

Services layer. ``MODULES`` is an explicit literal so that a grep finds every
module; ``get_module`` resolves a name or returns None.
"""

from __future__ import annotations

from runner.modules.backup import BackupRestoreModule
from runner.modules.base import Module
from runner.modules.cache import CacheDirModule
from runner.modules.commands import CommandModule, ShellModule
from runner.modules.content import CopyModule, TemplateModule
from runner.modules.control import AssertModule, DebugModule, FailModule, SetFactModule
from runner.modules.fetch import FetchModule
from runner.modules.file import FileModule
from runner.modules.filestat import StatModule
from runner.modules.lineinfile import LineinfileModule
from runner.modules.memcached import MemcachedModule
from runner.modules.permissions import PermissionsModule
from runner.modules.port import PortModule
from runner.modules.postgres import PostgresRestoreModule
from runner.modules.rediscache import RedisCacheModule
from runner.modules.service import ServiceModule
from runner.modules.uri import UriModule
from runner.modules.wait_for import WaitForModule

MODULES: dict[str, type[Module]] = {
    "command": CommandModule,
    "shell": ShellModule,
    "file": FileModule,
    "copy": CopyModule,
    "template": TemplateModule,
    "lineinfile": LineinfileModule,
    "stat": StatModule,
    "service": ServiceModule,
    "wait_for": WaitForModule,
    "uri": UriModule,
    "assert": AssertModule,
    "debug": DebugModule,
    "set_fact": SetFactModule,
    "fail": FailModule,
    "fetch": FetchModule,
    "port": PortModule,
    "permissions": PermissionsModule,
    "redis_cache": RedisCacheModule,
    "cache_dir": CacheDirModule,
    "backup_restore": BackupRestoreModule,
    "postgres_restore": PostgresRestoreModule,
    "memcached": MemcachedModule,
}


def get_module(name: str) -> type[Module] | None:
    """The module class registered under ``name``, or None."""
    return MODULES.get(name)


__all__ = ["MODULES", "Module", "get_module"]
