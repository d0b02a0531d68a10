"""Host key verification against a known_hosts file, before any authentication.

Services layer, used by ``ssh`` for the target and for every jump host. One
job: decide whether the key a server offered is the one recorded for it, and
record it when the user asked to accept new keys. An unknown or changed key
raises ``UnreachableError(host, "host_key", ...)`` naming the expected and
the offered SHA256 fingerprints; nothing is ever accepted silently.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
from pathlib import Path

import paramiko
from paramiko.hostkeys import HostKeyEntry, InvalidHostKey

from runner.errors import UnreachableError

#: Serialises appends to known_hosts files when many hosts connect at once.
_RECORD_LOCK = threading.Lock()
#: The lines of each known_hosts file read so far, by path, with the (mtime, size) they had.
_LINES: dict[Path, tuple[tuple[int, int], tuple[str, ...]]] = {}


def fingerprint(key: paramiko.PKey) -> str:
    """The OpenSSH-style ``SHA256:...`` fingerprint of ``key``."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def entry_name(hostname: str, port: int) -> str:
    """How known_hosts names a server: ``host`` on port 22, ``[host]:port`` otherwise."""
    return hostname if port == 22 else f"[{hostname}]:{port}"


def known_hosts_path(configured: str | None) -> Path:
    """The known_hosts file to use: ``configured``, else ``~/.ssh/known_hosts``."""
    return Path(configured or "~/.ssh/known_hosts").expanduser()


def lookup(path: Path, name: str) -> dict[str, paramiko.PKey]:
    """The keys recorded for ``name`` in ``path``, by key type; a missing file records none.

    Only the lines that name the host are decoded into keys (plain or hashed
    ``|1|`` names, as ``paramiko.HostKeys.lookup`` matches them), and a file is
    read once for as long as it does not change: a known_hosts with thousands
    of entries costs a scan per host, not thousands of key decodings.
    """
    found: dict[str, paramiko.PKey] = {}
    for line in _lines(path):
        names = line.split(None, 1)[0].split(",")
        if not any(_matches(name, pattern) for pattern in names):
            continue
        try:
            entry = HostKeyEntry.from_line(line)
        except (InvalidHostKey, paramiko.SSHException, ValueError):
            continue  # an unreadable entry vouches for nothing
        if entry is not None and entry.key is not None:
            found[entry.key.get_name()] = entry.key
    return found


def _matches(name: str, pattern: str) -> bool:
    """Whether a known_hosts name field (plain, or hashed ``|1|salt|hash``) is ``name``."""
    if pattern == name:
        return True
    if not pattern.startswith("|1|"):
        return False
    return hmac.compare_digest(paramiko.HostKeys.hash_host(name, pattern), pattern)


def _lines(path: Path) -> tuple[str, ...]:
    """The non-comment lines of ``path``, read again only when its mtime or size changed."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return ()
    stamp = (info.st_mtime_ns, info.st_size)
    cached = _LINES.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = tuple(s for raw in text.splitlines() if (s := raw.strip()) and not s.startswith("#"))
    _LINES[path] = (stamp, lines)
    return lines


def verify(host: str, name: str, offered: paramiko.PKey, recorded: dict[str, paramiko.PKey], path: Path,
           *, accept_new: bool) -> None:
    """Check ``offered`` against ``recorded``, the keys ``lookup(path, name)`` found.

    Raises:
        UnreachableError: reason ``host_key``, when the key is unknown (and
            ``accept_new`` is off) or differs from the recorded one.
    """
    actual = fingerprint(offered)
    if not recorded:
        if accept_new:
            record(path, name, offered)
            return
        raise UnreachableError(
            host,
            "host_key",
            f"unknown host key for {name}: expected none (not in {path}), "
            f"actual {offered.get_name()} {actual}",
        )
    same_type = recorded.get(offered.get_name())
    if same_type is not None and same_type.asbytes() == offered.asbytes():
        return
    expected = ", ".join(f"{kind} {fingerprint(key)}" for kind, key in recorded.items())
    raise UnreachableError(
        host,
        "host_key",
        f"host key for {name} changed (possible man-in-the-middle): expected {expected} "
        f"(from {path}), actual {offered.get_name()} {actual}",
    )


def record(path: Path, name: str, key: paramiko.PKey) -> None:
    """Append ``name``'s key to ``path``, creating it (mode 0600) if needed."""
    with _RECORD_LOCK:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="ascii") as handle:
            handle.write(f"{name} {key.get_name()} {key.get_base64()}\n")
