"""What a connection is: the ``Connection`` protocol, how to reach a host, privilege escalation.

Services layer, below every module of ``connection`` and every caller of it:
``ConnectionParams`` (how to reach one host), ``Become`` (sudo for one
command), ``Login`` (who commands run as), the ``Connection`` and
``HeldCommand`` protocols, and the output cap and default deadline every
implementation honours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from runner.results import CommandResult

#: Stored output is capped per stream; the rest is dropped with a note.
OUTPUT_CAP = 1024 * 1024


#: Default per-command deadline, seconds.
DEFAULT_COMMAND_TIMEOUT = 600.0


@dataclass(frozen=True)
class Become:
    """Privilege escalation for one command (sudo)."""

    user: str = "root"
    password: str | None = field(default=None, repr=False)
    flags: str = "-H"


@dataclass(frozen=True)
class Login:
    """Who a connection's commands run as without ``become``: what ``id -u`` and ``id -un`` say."""

    uid: int
    user: str


class HeldCommand(Protocol):
    """A command kept running with its stdin open, e.g. the holder of the per-host lock.

    It ends when ``close`` closes its stdin (and its channel), and also when
    the session to the host dies, because then the host closes its stdin.
    """

    def readline(self, timeout: float) -> str | None:
        """The next stdout line without its newline; None if none came in time or it ended."""
        ...

    @property
    def running(self) -> bool:
        """Whether the command may still be running (its output has not ended)."""
        ...

    def close(self) -> None:
        """Close stdin and the channel; idempotent."""
        ...


class Connection(Protocol):
    """One open session to one host, reused for every command of a run.

    ``run`` never raises for a non-zero exit: the ``CommandResult`` says so.
    It raises ``CommandTimeout`` when the deadline passes (after killing the
    command's process group), and ``ConnectionLost`` when the session dies
    mid-command (the outcome is then indeterminate).
    """

    host: str

    def connect(self) -> None:
        """Open the session now instead of on first use (a no-op for ``local``).

        Raises:
            UnreachableError: connect, auth or host key failure.
        """
        ...

    def run(
        self,
        command: str,
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        become: Become | None = None,
        env: Mapping[str, str] | None = None,
        contained: bool = False,
    ) -> CommandResult:
        """Run ``command`` under ``sh``; with ``become``, as that user through sudo.

        ``contained``: the command starts no process that outlives it (remedy's
        own probes, file operations and uploads without ``validate``), so it may
        skip a session of its own and share the persistent shell's process group;
        a deadline then ends that shell too. Where a contained command runs in
        that shell, its ``stdin`` bytes are printed by the shell function
        ``remedy_stdin`` and its stdin is ``/dev/null``; a contained script that
        takes stdin reads it with ``shell.READ_STDIN``, which works either way.
        """
        ...

    def whoami(self) -> Login | None:
        """Who commands without ``become`` run as, where the connection knows it without a command
        of its own; None where only asking the host (``id``) would tell.

        A local connection knows; an SSH session's persistent shell reports it
        as it starts (which the first command does anyway: asking before any
        command starts the shell).

        Raises:
            ConnectionLost: the session died.
        """
        ...

    def put(self, data: bytes, path: str) -> None:
        """Write ``data`` to ``path`` on the host (not atomic; callers use a temp path)."""
        ...

    def get(self, path: str, *, limit: int = 64 * 1024 * 1024) -> bytes:
        """Read a file from the host."""
        ...

    def interrupt(self) -> None:
        """Kill the process group of the running command (and any later one).

        The interrupted ``run`` raises ``CommandInterrupted``. Called from
        another thread when the run is stopped by SIGINT or SIGTERM.
        """
        ...

    def hold(self, command: str) -> HeldCommand:
        """Start ``command`` under ``sh -c`` with stdin kept open until the handle is closed."""
        ...

    def close(self) -> None:
        """Close every channel and the session; idempotent."""
        ...


@dataclass(frozen=True)
class ConnectionParams:
    """How to reach one host, resolved from inventory variables and CLI flags.

    Inventory variables (Ansible names): ``ansible_host`` -> address,
    ``ansible_port`` -> port, ``ansible_user`` -> user,
    ``ansible_ssh_private_key_file`` -> key_file, ``ansible_connection`` ->
    kind (``ssh`` | ``local``), ``ansible_password`` -> password,
    ``ansible_become_password`` -> become_password; remedy's
    ``remedy_persistent_shell`` (default true) -> persistent_shell.
    """

    name: str
    address: str
    kind: str = "ssh"
    port: int | None = None
    user: str | None = None
    key_file: str | None = None
    password: str | None = field(default=None, repr=False)
    become_password: str | None = field(default=None, repr=False)
    ssh_config: str | None = None  # path of an ssh_config file; None = ~/.ssh/config if present
    known_hosts: str | None = None  # None = ~/.ssh/known_hosts
    accept_new_host_keys: bool = False
    connect_timeout: float = 10.0
    keepalive: float = 15.0
    proxy_jump: str | None = None  # "user@host:port,host2" as in ssh -J
    persistent_shell: bool = True  # commands through one long-lived sh (see ``persistent``)
