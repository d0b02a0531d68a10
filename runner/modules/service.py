"""The ``service`` module: start, stop, restart, reload and enable a service.

Services layer. One probe says whether systemd is PID 1 and what it knows
of the unit, and, with a ``pidfile``, whether the pidfile names a live
process and that process's command line. Two managers plan from that:
systemd (``systemctl``) and pidfile (a ``start`` command, a stop signal with
a grace period, stale pidfile removal) for hosts without systemd.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from runner.modules.base import Arg, Change, Command, Fact, Module, flag, quote
from runner.modules.pidfile import pidfile_plan
from runner.modules.servicefacts import ServiceFacts, service_diff, service_fact

#: ``systemctl is-enabled`` exits 0 for these unit file states.
_ENABLED = frozenset({"enabled", "enabled-runtime", "static", "indirect", "alias", "generated", "transient"})
_FIXED = frozenset({"static", "generated", "transient"})
_RUNNING = frozenset({"active", "reloading", "activating"})


class ServiceModule(Module):
    """Bring a service to a state, with systemd or, without it, with a pidfile.

    ``manager: auto`` uses systemd when it is PID 1 and knows the unit, else
    the pidfile manager when ``pidfile`` is given. The pidfile manager counts
    a service as started when the pidfile names a live process whose command
    line matches ``match``; any other pidfile is stale and is removed. It
    starts a service by running ``start`` detached (writing the pidfile itself
    when the program stays in the foreground and writes none), and stops it
    with ``stop_signal``, then SIGKILL after ``stop_timeout`` seconds.
    """

    name = "service"
    summary = "Start, stop, restart, reload or enable a service (systemd or pidfile)"
    args = {
        "name": Arg(
            "str", required=True, aliases=("service",), doc="The unit (coze, coze.service) or service name."
        ),
        "state": Arg(
            "str",
            choices=("started", "stopped", "restarted", "reloaded"),
            doc="started/stopped are idempotent; restarted/reloaded always act.",
        ),
        "enabled": Arg("bool", doc="Whether the unit starts at boot (systemd only)."),
        "manager": Arg(
            "str",
            default="auto",
            choices=("auto", "systemd", "pidfile"),
            doc="Who controls the service; auto prefers systemd.",
        ),
        "pidfile": Arg("path", doc="The pidfile of the service (pidfile manager)."),
        "start": Arg("str", doc="The sh command that starts the service (pidfile manager)."),
        "match": Arg(
            "str",
            doc="A regular expression the service's command line must match; default: the service name.",
        ),
        "stop_signal": Arg("str", default="TERM", doc="The signal that asks it to stop."),
        "stop_timeout": Arg("int", default=10, doc="Seconds to wait after stop_signal before SIGKILL."),
        "reload_signal": Arg("str", default="HUP", doc="The signal that asks it to reload."),
        "start_timeout": Arg(
            "int", default=10, doc="Seconds to wait for the pidfile to name a live process."
        ),
        "log": Arg(
            "path",
            default="/dev/null",
            doc="Where the output of start goes (appended) with the pidfile manager.",
        ),
    }
    required_one_of = (("state", "enabled"),)

    def facts(self, args: Mapping[str, Any]) -> Mapping[str, Fact]:
        pidfile = args.get("pidfile") if args.get("manager") != "systemd" else None
        return {"service": service_fact(str(args["name"]), pidfile)}

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        a = self.resolved(args)
        f: ServiceFacts = facts["service"]
        if f.error:
            return Change(changed=False, failed=f.error)
        if a["state"] is None and a["enabled"] is None:
            return Change(changed=False, failed="service needs state or enabled")
        manager = _manager(a, f)
        if manager not in ("systemd", "pidfile"):
            return Change(changed=False, failed=manager)
        change = systemd_plan(a, f) if manager == "systemd" else pidfile_plan(a, f)
        data: dict[str, Any] = {"name": a["name"], "manager": manager, "state": a["state"]}
        if manager == "systemd":
            data["status"] = dict(f.unit)
        return replace(change, data=data)


def _manager(a: Mapping[str, Any], f: ServiceFacts) -> str:
    """ "systemd", "pidfile", or why neither can manage the service."""
    wanted = a["manager"]
    loaded = f.unit.get("LoadState") == "loaded"
    if wanted == "systemd" or (wanted == "auto" and f.systemd and (loaded or not a["pidfile"])):
        if not f.systemd:
            return (
                "systemd is not running on this host (PID 1 is not systemd); "
                "use manager: pidfile with pidfile and start"
            )
        if not loaded:
            state = f.unit.get("LoadState") or "unknown"
            return f"systemd has no unit {a['name']} (LoadState={state})"
        return "systemd"
    if not a["pidfile"]:
        return (
            f"cannot manage {a['name']}: systemd is not running and no pidfile was given "
            "(the pidfile manager needs pidfile and start)"
        )
    if a["enabled"] is not None:
        return "enabled needs systemd; the pidfile manager has no start at boot"
    return "pidfile"


def systemd_plan(a: Mapping[str, Any], f: ServiceFacts) -> Change:
    """Predict ``systemctl`` commands from the unit's ActiveState and UnitFileState."""
    name, unit = str(a["name"]), quote(a["name"])
    active = f.unit.get("ActiveState", "unknown")
    file_state = f.unit.get("UnitFileState", "")
    steps: list[Command] = []
    before: list[str] = []
    after: list[str] = []
    if a["enabled"] is not None:
        want = flag(a["enabled"])
        if want != (file_state in _ENABLED):
            if not want and file_state in _FIXED:
                return Change(
                    changed=False,
                    failed=f"unit {name} is {file_state}: it has no [Install] section to disable",
                )
            steps.append(Command(f"systemctl {'enable' if want else 'disable'} -- {unit}"))
            before.append(f"enabled: {file_state or 'unknown'}")
            after.append(f"enabled: {'enabled' if want else 'disabled'}")
    state = a["state"]
    running = active in _RUNNING
    verb = {
        "started": "start" if not running else "",
        "stopped": "stop" if running or active == "deactivating" else "",
        "restarted": "restart",
        "reloaded": "reload" if running else "start",
    }.get(state or "", "")
    if verb:
        steps.append(Command(f"systemctl {verb} -- {unit}"))
        before.append(f"state: {active}")
        after.append(f"state: {'inactive' if verb == 'stop' else 'active'} ({verb})")
    if not steps:
        return Change(changed=False, summary=f"{name} is {active}")
    return Change(
        changed=True,
        steps=tuple(steps),
        diffs=(service_diff(name, before, after),),
        summary=f"{name}: " + ", ".join(s.command.split()[1] for s in steps),
    )
