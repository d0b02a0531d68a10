"""The port probe: the listening sockets of a TCP port and the processes that hold them.

Services layer, used by the ``port`` module. One read-only sh script lists
the listeners with ``ss -ltnp`` when the host has it, else from
``/proc/net/tcp{,6}`` matched to processes through the socket inodes of
``/proc/*/fd`` (a minimal host may lack ``ss``), with each holder's user
and command line, the live pid a pidfile names, and the probing user's uid
(a holder whose process that user cannot see has pid 0 or no command line).
``parse_probe`` turns the output into ``PortFacts``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from posixpath import basename
from typing import Any

from runner.modules.base import quote
from runner.modules.servicefacts import ALIVE
from runner.results import CommandResult

_SS_ADDRESS = re.compile(r"^LISTEN\s+\d+\s+\d+\s+(\S+)")
_SS_PID = re.compile(r"pid=(\d+)")


@dataclass(frozen=True)
class Holder:
    """One process holding a listening socket of the port (pid 0: not visible)."""

    pid: int
    address: str
    user: str = ""
    cmdline: str = ""

    @property
    def identified(self) -> bool:
        """Whether the probe saw the process: its pid and its command line."""
        return bool(self.pid and self.cmdline)

    def describe(self) -> str:
        if not self.pid:
            return f"a socket on {self.address} whose process is not visible"
        if not self.cmdline:
            return f"pid {self.pid} holding {self.address}, whose command line is not visible"
        return f"pid {self.pid} ({short_command(self.cmdline)}) holding {self.address}"


@dataclass(frozen=True)
class PortFacts:
    method: str = ""
    holders: tuple[Holder, ...] = ()
    pidfile_pid: int = 0  # the live pid the pidfile names, 0 when none
    uid: int | None = None  # the probing user's uid
    error: str = ""


def short_command(cmdline: str) -> str:
    """``python3 cozeservice.py`` for ``/usr/bin/python3 /opt/coze/cozeservice.py --config ...``."""
    words = cmdline.split()
    if not words:
        return "?"
    shown = [basename(words[0])]
    if len(words) > 1 and not words[1].startswith("-"):
        shown.append(basename(words[1]) if "/" in words[1] else words[1])
    elif len(words) > 2 and words[1] == "-m":
        shown += words[1:3]
    return " ".join(shown)


def probe_command(port: int | None, pidfile: Any, method: str) -> str:
    """The read-only sh script that lists the port's listeners and their processes.

    ``port`` None: the port is the shell variable ``$port``, set before the script runs.
    """
    local = f"*:{port:04X}" if port is not None else '*:"$hex"'
    lines = [
        f"port={port}" if port is not None else "hex=$(printf %04X \"$port\")",
        'echo "uid=$(id -u)"',
        "pids=",
        f"method={quote(method)}",
        'if [ "$method" != proc ] && command -v ss >/dev/null 2>&1 '
        '&& out=$(ss -Hltnp "sport = :$port" 2>/dev/null); then',
        "  echo method=ss",
        '  if [ -n "$out" ]; then printf "%s\\n" "$out" | sed "s/^/ss /"; fi',
        "  pids=$(printf '%s\\n' \"$out\" | grep -o 'pid=[0-9]*' | cut -d= -f2)",
        'elif [ "$method" = ss ]; then echo "error=ss is not installed or failed on the host"; exit 0',
        "else",
        "  echo method=proc",
        "  inodes=",
        "  for f in /proc/net/tcp /proc/net/tcp6; do",
        '    [ -r "$f" ] || continue',
        "    while read -r _sl local _rem st _q _t _r uid _to inode _rest; do",
        f'      case "$local" in {local}) if [ "$st" = 0A ]; then '
        'echo "tcp $local $uid $inode"; inodes="$inodes $inode"; fi;; esac',
        '    done <"$f"',
        "  done",
        '  if [ -n "$inodes" ]; then',
        "    socks=$(ls -l /proc/[0-9]*/fd/ 2>/dev/null | while IFS= read -r line; do",
        '      case $line in /proc/*/fd*:) p=${line#/proc/}; p=${p%%/*};;',
        '        *"-> socket:["*) i=${line##*socket:[}; i=${i%]}; '
        'case " $inodes " in *" $i "*) echo "sock $i $p";; esac;; esac',
        "    done)",
        '    if [ -n "$socks" ]; then printf "%s\\n" "$socks"; fi',
        "    pids=$(printf '%s\\n' \"$socks\" | cut -s -d' ' -f3)",
        "  fi",
        "fi",
        "for p in $(printf '%s\\n' $pids | sort -un); do",
        "  c=$(tr '\\000' ' ' <\"/proc/$p/cmdline\" 2>/dev/null)",
        '  u=$(stat -c %U "/proc/$p" 2>/dev/null || echo "?")',
        '  echo "proc $p $u $c"',
        "done",
    ]
    if pidfile:
        lines += [
            ALIVE,
            f"f={quote(pidfile)}",
            'if [ -r "$f" ]; then read -r pp <"$f" || true; if alive "$pp"; then echo "pidfile $pp"; fi; fi',
        ]
    lines.append(":")
    return "\n".join(lines)


def parse_probe(result: CommandResult) -> PortFacts:
    """Turn the probe's lines into ``PortFacts``; unreadable output sets ``error``."""
    found: dict[str, str] = {}
    sockets: list[tuple[str, str]] = []  # (address, inode) from /proc/net/tcp
    owners: dict[str, list[int]] = {}  # inode -> pids
    listeners: list[tuple[str, list[int]]] = []
    procs: dict[int, tuple[str, str]] = {}
    pidfile_pid = 0
    for line in result.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if line.startswith(("method=", "error=", "uid=")):
            key, _, value = line.partition("=")
            found.setdefault(key, value)
        elif kind == "ss":
            match = _SS_ADDRESS.match(rest)
            if match:
                listeners.append((match.group(1), [int(p) for p in _SS_PID.findall(rest)]))
        elif kind == "tcp":
            parts = rest.split()
            if len(parts) == 3:
                sockets.append((decode_address(parts[0]), parts[2]))
        elif kind == "sock":
            inode, _, owner = rest.partition(" ")
            owners.setdefault(inode, []).append(int(owner))
        elif kind == "proc":
            number, _, tail = rest.partition(" ")
            user, _, cmdline = tail.partition(" ")
            procs[int(number)] = (user, cmdline)
        elif kind == "pidfile" and rest.strip().isdigit():
            pidfile_pid = int(rest.strip())
    if result.rc != 0 or "method" not in found or found.get("error"):
        detail = found.get("error") or result.tail("stderr", 3) or f"exit code {result.rc}"
        return PortFacts(error=f"the port probe failed: {detail}")
    for address, inode in sockets:
        listeners.append((address, sorted(set(owners.get(inode, [])))))
    holders = []
    for address, pids in listeners:
        for pid in pids or [0]:
            user, cmdline = procs.get(pid, ("", ""))
            holders.append(Holder(pid, address, user, cmdline))
    unique = tuple(dict.fromkeys(holders))
    uid = found.get("uid", "")
    return PortFacts(method=found["method"], holders=unique, pidfile_pid=pidfile_pid,
                     uid=int(uid) if uid.isdigit() else None)


def decode_address(text: str) -> str:
    """``0100007F:1F90`` (/proc/net/tcp) as ``127.0.0.1:8080``; IPv6 as ``[::1]:8080``."""
    hex_ip, _, hex_port = text.partition(":")
    port = int(hex_port, 16)
    raw = bytes.fromhex(hex_ip)
    if len(raw) == 4:
        return f"{ipaddress.IPv4Address(raw[::-1])}:{port}"
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return f"[{ipaddress.IPv6Address(words)}]:{port}"
