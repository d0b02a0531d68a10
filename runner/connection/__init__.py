"""The ``Connection`` interface and how a host's connection is chosen.

Services layer (the interface itself is in ``interface``). A connection runs
POSIX ``sh`` command strings on one host and moves files; the executor is its
only caller. Implementations: ``ssh``
(paramiko, one transport per host, commands through one persistent shell) and
``local`` (subprocess); ``open_connection``
picks one by ``ConnectionParams.kind`` and imports paramiko only for ``ssh``.
``runner.testing`` has a scripted ``FakeConnection`` for tests.
"""

from __future__ import annotations

from runner.connection.interface import (
    DEFAULT_COMMAND_TIMEOUT,
    OUTPUT_CAP,
    Become,
    Connection,
    ConnectionParams,
    HeldCommand,
    Login,
)
from runner.imports import import_without
from runner.results import CommandResult

__all__ = [
    "DEFAULT_COMMAND_TIMEOUT",
    "OUTPUT_CAP",
    "Become",
    "CommandResult",
    "Connection",
    "ConnectionParams",
    "HeldCommand",
    "Login",
    "import_ssh",
    "open_connection",
]


def open_connection(params: ConnectionParams) -> Connection:
    """A connection of kind ``params.kind`` (``ssh`` or ``local``), not yet connected.

    It connects on ``connect()`` or on its first command or file transfer.

    Raises:
        ValueError: unknown kind.
    """
    if params.kind == "local":
        from runner.connection.local import LocalConnection

        return LocalConnection(params)
    if params.kind == "ssh":
        import_ssh()
        from runner.connection.ssh import SSHConnection

        return SSHConnection(params)
    raise ValueError(f"{params.name}: unknown connection kind {params.kind!r} (ssh or local)")


def import_ssh() -> None:
    """Import paramiko without ``invoke``, which it loads only for ssh_config's ``Match exec``.

    invoke (and the unittest.mock it imports) is half of paramiko's import time
    (~40 ms of ~85 ms); ``sshconfig.load_config`` loads it when a config file
    uses ``exec``.
    """
    import_without("paramiko", "invoke")
