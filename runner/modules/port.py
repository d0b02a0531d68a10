"""The ``port`` module: who listens on a TCP port, and freeing it.

Services layer. One read-only probe lists the listening sockets of the port
and the processes that hold them: ``ss -ltnp`` when the host has it, else
``/proc/net/tcp{,6}`` matched to processes through the socket inodes of
``/proc/*/fd`` (a minimal host may lack ``ss``). With a ``pidfile`` the probe
also says which process the service manager believes is the service, so the
data tells the managed instance from a stale one and from a foreign program.
``state: free`` stops the holders, each after re-checking that the pid is
still the probed process.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from posixpath import basename
from typing import Any

from runner.modules.base import Arg, Change, Command, Fact, Module, flag, quote
from runner.modules.pidfile import signal_option
from runner.modules.servicefacts import ALIVE
from runner.results import CommandResult, Diff

WILDCARDS = frozenset({"0.0.0.0", "::", "*", ""})  # noqa: S104 - addresses, not binds
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


class PortModule(Module):
    """Inspect the listeners of a TCP port, or free the port by stopping them.

    ``state: inspected`` only reads: its data lists the ``holders`` (pid,
    user, cmdline, address, ``ours`` when the command line matches ``match``,
    ``managed`` when ``pidfile`` names it) and a ``verdict``: ``free``,
    ``service`` (held by the process the pidfile names), ``stale`` (held by
    other processes that match ``match``: an orphaned instance of the
    service), ``foreign``, or ``unknown``: a holder whose process the
    remote user cannot see (another user's process when not root, /proc
    mounted with hidepid). An ``unknown`` verdict fails the task, with what
    to do, since nothing about the port can be decided. ``state: free``
    stops every holder with ``stop_signal``, then SIGKILL after
    ``stop_timeout`` seconds; a holder that does not match ``match`` is
    stopped only with ``allow_foreign``, otherwise the task fails and stops
    nothing.
    """

    name = "port"
    summary = "Show who listens on a TCP port, or free the port by stopping its holders"
    args = {
        "port": Arg("int", required=True, doc="The TCP port."),
        "address": Arg(
            "str",
            doc="Only listeners that conflict with a bind to this address (the same address "
            "or a wildcard); default: every listener of the port.",
        ),
        "state": Arg(
            "str",
            default="inspected",
            choices=("inspected", "free"),
            doc="inspected: only read; free: stop the processes that hold the port.",
        ),
        "match": Arg(
            "str",
            doc="A regular expression the command line of the service's own processes matches; "
            "other holders are foreign.",
        ),
        "pidfile": Arg("path", doc="The service's pidfile: its live pid is the managed instance."),
        "allow_foreign": Arg(
            "bool", default=False, doc="With state free, also stop holders that do not match match."
        ),
        "stop_signal": Arg("str", default="TERM", doc="The signal that asks a holder to stop."),
        "stop_timeout": Arg("int", default=10, doc="Seconds to wait after stop_signal before SIGKILL."),
        "method": Arg(
            "str",
            default="auto",
            choices=("auto", "ss", "proc"),
            doc="How to find the holders: ss -ltnp, /proc/net/tcp with /proc/*/fd, or auto "
            "(ss when installed).",
        ),
    }

    def reads_only(self, args: Mapping[str, Any]) -> bool:
        return args.get("state", "inspected") in (None, "inspected")

    def facts(self, args: Mapping[str, Any]) -> Mapping[str, Fact]:
        port = int(args["port"])
        return {"port": Fact(probe_command(port, args.get("pidfile"), str(args.get("method") or "auto")),
                             parse_probe)}

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        a = self.resolved(args)
        f: PortFacts = facts["port"]
        if f.error:
            return Change(changed=False, failed=f.error)
        try:
            pattern = re.compile(str(a["match"])) if a["match"] else None
        except re.error as exc:
            return Change(changed=False, failed=f"invalid match pattern: {exc}")
        holders = [h for h in f.holders if conflicts(h.address, a["address"])]
        data = port_data(int(a["port"]), f, holders, pattern)
        if a["state"] == "inspected":
            if data["verdict"] == "unknown":
                unseen = next(h for h, r in zip(holders, data["holders"], strict=True)
                              if not r["identified"] and not r["managed"])
                return Change(changed=False, data=data,
                              failed=unseen_message(int(a["port"]), unseen, f.uid, "nothing was changed"))
            return Change(changed=False, data=data, summary=data["summary"])
        return _free_plan(a, holders, pattern, data, f.uid)


def unseen_message(port: int, holder: Holder, uid: int | None, outcome: str) -> str:
    """Why a holder whose process is not visible stops the task, and what to do about it."""
    if uid == 0:
        advice = ("not even root sees its process (one in another PID namespace, such as the host "
                  "outside a container, or a socket of the kernel): find it on the host and stop it")
    else:
        user = "the remote user" + (f" (uid {uid})" if uid is not None else "")
        advice = (f"{user} cannot see the processes of other users (or /proc is mounted with "
                  "hidepid): run as root (ansible_user=root, or become: true in the play)")
    return f"port {port} is held by {holder.describe()}; {advice}; {outcome}"


def _free_plan(a: Mapping[str, Any], holders: list[Holder], pattern: re.Pattern[str] | None,
               data: dict[str, Any], uid: int | None) -> Change:
    port = int(a["port"])
    if not holders:
        return Change(changed=False, data=data, summary=f"port {port} is free")
    hidden = [h for h in holders if not h.identified]
    if hidden:
        return Change(changed=False, data=data,
                      failed=unseen_message(port, hidden[0], uid, "nothing was stopped"))
    foreign = [h for h in holders if not _ours(h, pattern)]
    if foreign and not flag(a["allow_foreign"]):
        return Change(changed=False, data=data, failed=f"port {port} is held by {foreign[0].describe()}, "
                      "which is not the service; set allow_foreign to stop it (nothing was stopped)")
    option = signal_option(a["stop_signal"])
    if option is None:
        return Change(changed=False, data=data, failed=f"{a['stop_signal']!r} is not a signal name or number")
    pids = sorted({h.pid: h for h in holders}.values(), key=lambda h: h.pid)
    steps = tuple(Command(stop_script(h, option, int(a["stop_timeout"]))) for h in pids)
    where = sorted({h.address for h in holders})
    return Change(
        changed=True,
        steps=steps,
        diffs=(Diff(f"port {port}", "".join(f"{h.describe()}\n" for h in pids),
                    f"free ({', '.join(where)})\n"),),
        summary="stop " + "; ".join(h.describe() for h in pids),
        data=data,
    )


def _ours(holder: Holder, pattern: re.Pattern[str] | None) -> bool:
    return holder.identified and pattern is not None and bool(pattern.search(holder.cmdline))


def port_data(port: int, f: PortFacts, holders: list[Holder],
              pattern: re.Pattern[str] | None) -> dict[str, Any]:
    """The registered data: holders, the verdict, and a one-line summary."""
    rows = [{"pid": h.pid, "address": h.address, "user": h.user, "cmdline": h.cmdline.strip(),
             "ours": _ours(h, pattern), "managed": bool(h.pid) and h.pid == f.pidfile_pid,
             "identified": h.identified}
            for h in holders]
    others = [r for r in rows if not r["managed"]]
    if not rows:
        verdict = "free"
    elif not others:
        verdict = "service"
    elif not all(r["identified"] for r in others):
        verdict = "unknown"
    elif all(r["ours"] for r in others):
        verdict = "stale"
    else:
        verdict = "foreign"
    unique = sorted({h.pid: h for h in holders}.values(), key=lambda h: h.pid)
    summary = f"port {port}: " + ("free" if not rows else
                                  f"{verdict}: " + "; ".join(h.describe() for h in unique))
    return {"port": port, "method": f.method, "listening": bool(rows), "holders": rows,
            "pids": [h.pid for h in unique], "verdict": verdict, "pidfile_pid": f.pidfile_pid,
            "summary": summary}


def conflicts(address: str, wanted: Any) -> bool:
    """Whether a listener on ``address`` (host:port) blocks a bind to ``wanted``."""
    if not wanted:
        return True
    host = address.rsplit(":", 1)[0].strip("[]")
    want = str(wanted).strip("[]")
    if host in WILDCARDS or want in WILDCARDS:
        return True
    try:
        return ipaddress.ip_address(host) == ipaddress.ip_address(want)
    except ValueError:
        return host == want


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


def probe_command(port: int, pidfile: Any, method: str) -> str:
    """The read-only sh script that lists the port's listeners and their processes."""
    lines = [
        f"port={port}",
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
        f'      case "$local" in *:{port:04X}) if [ "$st" = 0A ]; then '
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


def stop_script(holder: Holder, option: str, timeout: int) -> str:
    """Stop one holder: re-check it is still the probed process, signal, wait, SIGKILL."""
    return "\n".join([
        ALIVE,
        f"pid={holder.pid}",
        'if ! alive "$pid"; then echo "pid $pid is already gone"; exit 0; fi',
        f"""if [ "$(tr '\\000' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" != {quote(holder.cmdline)} ]; """
        'then echo "pid $pid is no longer the probed process; not signalled" >&2; exit 1; fi',
        f'kill {option} "$pid" || exit 1',
        f"if sleep 0.1 2>/dev/null; then d=0.1 n={max(timeout, 0) * 10}; else d=1 n={max(timeout, 0)}; fi",
        "i=0",
        'while alive "$pid" && [ $i -lt $n ]; do sleep $d; i=$((i+1)); done',
        'if alive "$pid"; then kill -s KILL "$pid"; sleep 1; fi',
        'if alive "$pid"; then echo "process $pid did not exit, even after SIGKILL" >&2; exit 1; fi',
        'echo "stopped pid $pid"',
    ])
