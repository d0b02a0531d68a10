"""The POSIX ``sh`` text that wraps every command a connection runs.

Services layer, used by ``ssh`` and ``local``. One job: turn a command, its
environment and its privilege escalation into the single command line that
runs on the host, and give the matching kill script.

The wrapped command runs in a process group of its own whose id it reports on
stdout as a marker line before anything else, so that a deadline can end the
whole group, not only its shell. sshd already starts each command as the leader
of a new session; only when the shell is not its group's leader (sudo, some
other server) is the reader re-executed under ``setsid -w``::

    exec [sudo -H -S -p PROMPT -u USER --] sh -c '
        read pgid from /proc/$$/stat; if not the leader and setsid exists: exec setsid -w sh -c "$R"; fi; $R'
    R = trap 'exit 143' TERM; printf '%s %s\\n' REMEDY-<nonce> "$$";
        read lines from stdin up to the line REMEDY-<nonce>; eval them

The command itself never appears in an argument list, where any user of the
host could read it (``ps``, ``/proc/*/cmdline``): the command line holds only
the reader above, the same for every command but its nonce, and the command's
text (``export K='v'; COMMAND``, ``Launch.text``) comes first on the reader's
stdin, ended by the nonce line; the command's own stdin follows. The reader
reads it with the ``read`` builtin, which takes no byte past the nonce line.
The text is evaluated by that same shell (one process fewer than ``sh -c``)
and not exec'd, so a command killed by signal N exits 128+N, and the trap
lets the group's TERM end it with a status instead of a signal. (A program the
command starts has its own arguments in its argument list, of course.)

The line is one simple command (``exec prog args``), so the login shell that
sshd runs it with needs only to be Bourne-like. Passwords never appear here:
sudo reads them from stdin after its prompt.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.connection.interface import Become

#: Environment names accepted for ``env``: what ``export`` takes without surprises.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Seconds between ``kill -TERM`` and ``kill -KILL`` of a timed-out process group.
KILL_GRACE = 2.0


#: Sets ``g`` to this shell's process group, read from /proc without a process ("" without /proc).
READ_GROUP = "read -r _ _ _ _ g _ 2>/dev/null </proc/$$/stat || g="
#: A contained command's stdin is printed by this shell function (its stdin is /dev/null).
STDIN_FUNCTION = "remedy_stdin"
#: How a contained script that takes stdin reads it, wherever it runs.
READ_STDIN = f"if command -v {STDIN_FUNCTION} >/dev/null 2>&1; then {STDIN_FUNCTION}; else cat; fi"


#: Runs the script in a process group of its own at the cost of as few processes as
#: possible: sshd (OpenSSH, dropbear) already starts every command in a new session, so
#: when this shell leads its process group (read from /proc without forking) the script
#: runs right here; otherwise (sudo, no /proc) it is re-executed under ``setsid -w``.
_LEADER_CHECK = (
    f"{READ_GROUP}; "
    'if [ "$g" != "$$" ] && command -v setsid >/dev/null 2>&1; then exec setsid -w sh -c {script}; fi; '
)

#: Reports the marker, reads the command's text from stdin up to the marker's own line
#: (builtins only: nothing past that line is read) and evaluates it with its variables unset.
_READER = (
    "unset g; trap 'exit 143' TERM; printf '%s %s\\n' {marker} \"$$\"; remedy_text=; "
    'while IFS= read -r remedy_line && [ "$remedy_line" != {marker} ]; do '
    'remedy_text="$remedy_text$remedy_line\n"; done; '
    '[ "$remedy_line" = {marker} ] || {{ echo "remedy: the command text did not arrive" >&2; exit 125; }}; '
    'unset remedy_line; eval "unset remedy_text\n$remedy_text"'
)


@dataclass(frozen=True)
class Launch:
    """One wrapped command: the program to execute, what it reads first, and what to look for."""

    program: str  # a simple command: ``sh -c READER`` or ``sudo ... -- sh -c READER``
    marker: bytes  # stdout starts with b"<marker> <pgid>\n" once the command runs
    text: bytes = b""  # the command's text and the marker's line: the reader's stdin comes first
    script: str = ""  # without sudo: the command inline, for a subshell of a shell that leads its group
    prompt: bytes = b""  # sudo's password prompt on stderr; empty when no password is sent
    password: str | None = field(default=None, repr=False)

    @property
    def line(self) -> str:
        """The command line for a channel of its own: the program replaces the login shell."""
        return f"exec {self.program}"


def wrap_as(
    command: str,
    *,
    env: Mapping[str, str] | None,
    become: Become | None,
    login_user: str,
    become_password: str | None,
) -> tuple[Launch, Become | None]:
    """``wrap`` for a connection logged in as ``login_user``: sudo only to another user.

    Returns the launch and the ``Become`` actually used (None when no sudo is needed),
    which the kill of a timed-out command must use too.
    """
    sudo = become if become is not None and become.user != login_user else None
    launch = wrap(
        command,
        env=env,
        sudo_user=sudo.user if sudo else None,
        sudo_flags=sudo.flags if sudo else "",
        password=(sudo.password or become_password) if sudo else None,
    )
    return launch, sudo


def wrap(
    command: str,
    *,
    env: Mapping[str, str] | None = None,
    sudo_user: str | None = None,
    sudo_flags: str = "-H",
    password: str | None = None,
) -> Launch:
    """Build the command line for ``command``; ``sudo_user`` None means no sudo.

    Raises:
        ValueError: an environment name is not a shell identifier, or the
            command, a value or the password contains a NUL byte (or the
            password a newline).
    """
    if "\0" in command:
        raise ValueError("a command cannot contain a NUL byte")
    nonce = secrets.token_hex(8)
    marker = f"REMEDY-{nonce}"
    text = f"{exports(env)}{command}\n{marker}\n".encode()
    reader = _READER.format(marker=marker)
    group = "sh -c " + shlex.quote(_LEADER_CHECK.format(script=shlex.quote(reader)) + reader)
    if sudo_user is None:
        script = (f"unset g; trap 'exit 143' TERM; printf '%s %s\\n' {marker} \"$$\"; "
                  f"{exports(env)}eval {shlex.quote(' ' + command)}")  # the space: a command may begin with -
        return Launch(program=group, marker=marker.encode(), text=text, script=script)
    if password is not None and ("\n" in password or "\0" in password):
        raise ValueError("a become password cannot contain a newline or NUL byte")
    flags = " ".join(shlex.quote(f) for f in shlex.split(sudo_flags))
    prompt = f"[sudo via remedy, key={nonce}] password: " if password is not None else ""
    auth = f"-S -p {shlex.quote(prompt)}" if prompt else "-n"
    program = f"sudo {flags} {auth} -u {shlex.quote(sudo_user)} -- {group}"
    return Launch(program=program, marker=marker.encode(), text=text, prompt=prompt.encode(),
                  password=password)


def exports(env: Mapping[str, str] | None) -> str:
    """``export K='v'; `` for each variable; values are single-quoted, so they arrive literally."""
    if not env:
        return ""
    parts = []
    for name, value in env.items():
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"invalid environment variable name {name!r}")
        if "\0" in value:
            raise ValueError(f"environment variable {name} contains a NUL byte")
        parts.append(f"export {name}={shlex.quote(value)}; ")
    return "".join(parts)


def kill_script(pgid: int, *, grace: float = KILL_GRACE) -> str:
    """A script that sends TERM to process group ``pgid``, then KILL if it outlives ``grace``."""
    if pgid <= 1:
        raise ValueError(f"refusing to signal process group {pgid}")
    ticks = max(1, int(grace * 10))
    return (
        f"kill -TERM -{pgid} 2>/dev/null || {{ kill -TERM {pgid} 2>/dev/null; exit 0; }}; i=0; "
        f'while [ "$i" -lt {ticks} ] && kill -0 -{pgid} 2>/dev/null; '
        "do sleep 0.1; i=$((i+1)); done; "
        f"kill -KILL -{pgid} 2>/dev/null; exit 0"
    )


def contained_script(script: str, stdin: bytes | None) -> str:
    """``script`` in a subshell of the persistent shell, its ``stdin`` printed by ``STDIN_FUNCTION``."""
    inline = f"{STDIN_FUNCTION}() {{ printf '{printf_literal(stdin)}'; }}; " if stdin else ""
    return f"( {inline}{script} )"


def printf_literal(data: bytes) -> str:
    """``data`` as a ``printf`` format in single quotes that prints exactly those bytes.

    Printable ASCII stays as it is, newlines too; every other byte, and ``\\``,
    ``'`` and ``%``, becomes a three-digit octal escape (``\\ooo``).
    """
    return "".join(_LITERAL[b] for b in data)


_LITERAL = [chr(b) if (32 <= b < 127 and chr(b) not in "\\'%") or b == 10 else f"\\{b:03o}"
            for b in range(256)]
