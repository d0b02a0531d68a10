"""The ``port`` module: who listens on a TCP port, and freeing it.

Services layer. One read-only probe (``portprobe``) lists the listening
sockets of the port and the processes that hold them. With a ``pidfile``
the probe also says which process the service manager believes is the
service, so the data tells the managed instance from a stale one, from a
foreign program and from a holder the remote user cannot see.
``state: free`` stops the holders, each after re-checking that the pid is
still the probed process.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from runner.modules.base import Arg, Change, Command, Fact, Module, flag, quote
from runner.modules.pidfile import signal_option
from runner.modules.portprobe import Holder, PortFacts, parse_probe, probe_command
from runner.modules.servicefacts import ALIVE, wait_gone
from runner.results import Diff

WILDCARDS = frozenset({"0.0.0.0", "::", "*", ""})  # noqa: S104 - addresses, not binds


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


def stop_script(holder: Holder, option: str, timeout: int) -> str:
    """Stop one holder: re-check it is still the probed process, signal, wait, SIGKILL."""
    return "\n".join([
        ALIVE,
        f"pid={holder.pid}",
        'if ! alive "$pid"; then echo "pid $pid is already gone"; exit 0; fi',
        f"""if [ "$(tr '\\000' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" != {quote(holder.cmdline)} ]; """
        'then echo "pid $pid is no longer the probed process; not signalled" >&2; exit 1; fi',
        f'kill {option} "$pid" || exit 1',
        *wait_gone(timeout),
        'echo "stopped pid $pid"',
    ])
