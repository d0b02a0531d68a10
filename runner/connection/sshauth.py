"""Authenticating an SSH transport whose host key was already verified.

Services layer, used by ``ssh``. One job: try, in OpenSSH's order, the
endpoint's identity files (or the default ``~/.ssh/id_*`` ones), the keys of a
running ssh-agent, then the password (``password`` method, falling back to
``keyboard-interactive``), each at most once. The password is only ever handed
to paramiko; errors name the methods tried, never a secret.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import paramiko

from runner.connection.sshconfig import Endpoint
from runner.errors import UnreachableError

_DEFAULT_KEYS = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")


def authenticate(transport: paramiko.Transport, host: str, endpoint: Endpoint, password: str | None) -> None:
    """Authenticate as ``endpoint.user``.

    Raises:
        UnreachableError: reason ``auth`` when no method succeeds, ``connect``
            when the session breaks during authentication.
    """
    notes: list[str] = []
    try:
        if _try_keys(transport, endpoint, notes):
            return
        if password is not None and _try_password(transport, endpoint.user, password, notes):
            return
    except (paramiko.SSHException, EOFError, OSError) as exc:
        if transport.is_active():
            raise UnreachableError(host, "auth", f"{endpoint}: {exc}") from None
        raise UnreachableError(host, "connect", f"{endpoint}: lost during auth: {exc}") from None
    tried = "; ".join(notes) or "no key, agent or password available"
    raise UnreachableError(host, "auth", f"{endpoint}: authentication failed ({tried})")


def _try_keys(transport: paramiko.Transport, endpoint: Endpoint, notes: list[str]) -> bool:
    try:
        agent = paramiko.Agent()
    except (paramiko.SSHException, OSError) as exc:
        notes.append(f"ssh-agent unavailable: {exc}")
        agent = None
    try:
        for label, key in _keys(endpoint, agent, notes):
            try:
                transport.auth_publickey(endpoint.user, key)
            except paramiko.BadAuthenticationType as exc:
                allowed = ", ".join(exc.allowed_types)
                notes.append(f"publickey not allowed (server allows {allowed})")
                return False
            except paramiko.AuthenticationException:
                notes.append(f"{label} rejected")
                continue
            if transport.is_authenticated():
                return True
    finally:
        if agent is not None:
            agent.close()
    return False


def _keys(
    endpoint: Endpoint, agent: paramiko.Agent | None, notes: list[str]
) -> Iterator[tuple[str, paramiko.PKey]]:
    explicit = bool(endpoint.identity_files)
    paths = endpoint.identity_files or tuple(str(Path(p).expanduser()) for p in _DEFAULT_KEYS)
    for path in paths:
        if not explicit and not Path(path).exists():
            continue
        try:
            yield f"key {path}", paramiko.PKey.from_path(path)
        except FileNotFoundError:
            notes.append(f"key {path} not found")
        except paramiko.PasswordRequiredException:
            notes.append(f"key {path} is encrypted (load it into ssh-agent)")
        except (OSError, paramiko.SSHException, ValueError) as exc:
            notes.append(f"key {path} unreadable: {exc}")
    for key in agent.get_keys() if agent is not None else ():
        yield f"agent key {key.get_name()}", key


def _try_password(transport: paramiko.Transport, user: str, password: str, notes: list[str]) -> bool:
    try:
        transport.auth_password(user, password, fallback=False)
    except paramiko.BadAuthenticationType as exc:
        if "keyboard-interactive" not in exc.allowed_types:
            notes.append(f"password not allowed (server allows {', '.join(exc.allowed_types)})")
            return False
        try:
            transport.auth_interactive(user, lambda _t, _i, prompts: [password] * len(prompts))
        except paramiko.AuthenticationException:
            notes.append("keyboard-interactive password rejected")
            return False
    except paramiko.AuthenticationException:
        notes.append("password rejected")
        return False
    return transport.is_authenticated()
