"""Where an SSH connection goes: ``ConnectionParams`` + ssh_config -> a route of hops.

Services layer, used by ``ssh``. One job: resolve the target's HostName,
Port, User and IdentityFile the way OpenSSH does (explicit parameters first,
then the first matching ssh_config value, then defaults) and expand ProxyJump
chains (``a,b`` means: connect to ``a``, through it to ``b``, through ``b`` to
the target). A jump host without an IdentityFile of its own is offered the
target's ``key_file``; passwords are only ever sent to the target. Nothing
here opens a socket.
"""

from __future__ import annotations

import getpass
import importlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import paramiko

from runner.connection.interface import ConnectionParams
from runner.errors import UnreachableError

#: Longest ProxyJump chain followed, counting jumps of jump hosts.
MAX_HOPS = 8


@dataclass(frozen=True)
class Endpoint:
    """One SSH server to authenticate to."""

    alias: str  # the name that was looked up in ssh_config
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"


@dataclass(frozen=True)
class Route:
    """The jump hosts to pass through, first hop first, and the target."""

    jumps: tuple[Endpoint, ...]
    target: Endpoint


def load_config(params: ConnectionParams) -> paramiko.SSHConfig:
    """``params.ssh_config``, else ``~/.ssh/config`` if it exists, else an empty config.

    Raises:
        UnreachableError: reason ``connect``, the file cannot be read or parsed.
    """
    path = Path(params.ssh_config or "~/.ssh/config").expanduser()
    if params.ssh_config is None and not path.exists():
        return paramiko.SSHConfig()
    try:
        text = path.read_text(encoding="utf-8")
        if "exec" in text.lower():
            _enable_match_exec()
        return paramiko.SSHConfig.from_text(text)
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise UnreachableError(params.name, "connect", f"cannot read ssh_config {path}: {exc}") from None


def _enable_match_exec() -> None:
    """Give paramiko the ``invoke`` that ``open_connection`` kept it from importing."""
    import paramiko.config

    if getattr(paramiko.config, "invoke", None) is None:
        try:
            setattr(paramiko.config, "invoke", importlib.import_module("invoke"))  # noqa: B010
        except ImportError:
            pass  # paramiko raises its own error if the config really runs ``exec``


def resolve_route(params: ConnectionParams, config: paramiko.SSHConfig) -> Route:
    """The route to ``params``' host.

    Raises:
        UnreachableError: reason ``connect``, for a ProxyCommand (unsupported),
            a malformed ProxyJump or a chain longer than ``MAX_HOPS``.
    """
    options = _lookup(params, config, params.address)
    target = Endpoint(
        alias=params.address,
        hostname=options.get("hostname", params.address),
        port=params.port or _port(params, options.get("port", "22")),
        user=params.user or options.get("user") or getpass.getuser(),
        identity_files=_given_key(params) or _identities(options),
    )
    spec = params.proxy_jump or options.get("proxyjump")
    jumps = _jumps(params, config, spec, depth=0)
    return Route(jumps=jumps, target=target)


def _lookup(params: ConnectionParams, config: paramiko.SSHConfig, alias: str) -> dict[str, str]:
    try:
        options = config.lookup(alias)
    except (paramiko.SSHException, ValueError) as exc:
        raise UnreachableError(params.name, "connect", f"ssh_config lookup of {alias}: {exc}") from None
    if "proxycommand" in options and options["proxycommand"].lower() != "none":
        raise UnreachableError(
            params.name, "connect", f"ssh_config ProxyCommand for {alias} is not supported"
        )
    result = {k: v for k, v in options.items() if isinstance(v, str)}
    files = options.get("identityfile")
    if files:
        result["identityfile"] = "\n".join(files)
    return result


def _given_key(params: ConnectionParams) -> tuple[str, ...]:
    """A jump host without an IdentityFile of its own tries the target's key file."""
    return (str(Path(params.key_file).expanduser()),) if params.key_file else ()


def _identities(options: dict[str, str]) -> tuple[str, ...]:
    files = options.get("identityfile", "")
    return tuple(str(Path(f).expanduser()) for f in files.split("\n") if f)


def _port(params: ConnectionParams, text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise UnreachableError(params.name, "connect", f"invalid port {text!r}")
    return port


def _jumps(
    params: ConnectionParams, config: paramiko.SSHConfig, spec: str | None, *, depth: int
) -> tuple[Endpoint, ...]:
    """Endpoints of a ProxyJump spec, with the first hop's own jumps before it."""
    if not spec or spec.strip().lower() == "none":
        return ()
    if depth >= MAX_HOPS:
        raise UnreachableError(params.name, "connect", f"ProxyJump chain longer than {MAX_HOPS}")
    hops: list[Endpoint] = []
    for index, item in enumerate(s.strip() for s in spec.split(",")):
        user, host, port = _split_hop(params, item)
        options = _lookup(params, config, host)
        if index == 0:
            hops.extend(_jumps(params, config, options.get("proxyjump"), depth=depth + 1))
        hops.append(
            Endpoint(
                alias=host,
                hostname=options.get("hostname", host),
                port=port or _port(params, options.get("port", "22")),
                user=user or options.get("user") or getpass.getuser(),
                identity_files=_identities(options) or _given_key(params),
            )
        )
    if len(hops) > MAX_HOPS:
        raise UnreachableError(params.name, "connect", f"ProxyJump chain longer than {MAX_HOPS}")
    return tuple(hops)


def _split_hop(params: ConnectionParams, item: str) -> tuple[str, str, int]:
    """``[user@]host[:port]`` (or ``ssh://...``) -> (user or "", host, port or 0)."""
    try:
        parts = urlsplit(item if item.startswith("ssh://") else f"ssh://{item}")
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise UnreachableError(params.name, "connect", f"invalid ProxyJump hop {item!r}: {exc}") from None
    if not host or host.startswith("-"):
        raise UnreachableError(params.name, "connect", f"invalid ProxyJump hop {item!r}")
    return parts.username or "", host, port or 0
