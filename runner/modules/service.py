"""The ``service`` module: start, stop, restart, reload, enable or inspect a service.

Services layer. One probe says whether systemd is PID 1 and what it knows
of the unit, and, with a ``pidfile``, whether the pidfile names a live
process and that process's command line (plus, when asked, the crashes in
the service's start record and the last lines of its logs). Two managers
plan from that: systemd (``systemctl``) and pidfile (a ``start`` command, a
stop signal with a grace period, stale pidfile removal) for hosts without
systemd. A start can be tried several times with a growing pause, must
keep the service up for ``settle`` seconds, and is never tried (again) once
the service crash-loops (``crash_limit``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from runner.modules.base import Arg, Change, Command, Fact, Module, Outcome, flag, quote
from runner.modules.pidfile import match_pattern, pidfile_plan, pidfile_running
from runner.modules.servicefacts import ServiceFacts, service_diff, service_fact
from runner.modules.servicestart import START_FAILED, crash_count, extras_of, start_failure, systemd_start
from runner.results import CommandResult

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
    when the program still runs in the foreground after ``start_timeout``
    seconds and wrote none), and stops it
    with ``stop_signal``, then SIGKILL after ``stop_timeout`` seconds.

    ``state: inspected`` only reads: its data says whether the service
    runs (``running``), ``strays`` (pidfile manager, when it does not run:
    other processes whose command line matches ``match``), ``crashes`` (systemd's NRestarts, or the starts of
    ``start_record`` within ``crash_window`` seconds that did not end in a
    clean stop), ``crash_loop`` (not running, and ``crashes`` reached
    ``crash_limit``), and ``log_tail``, the last lines of ``logs``.
    A start that fails is tried ``attempts`` times, ``backoff`` seconds
    apart (doubled each time); with ``crash_limit`` a crash loop stops the
    attempts, and is refused before any start. A start that fails leaves
    nothing of the service running.
    """

    name = "service"
    summary = "Start, stop, restart, reload, enable or inspect a service (systemd or pidfile)"
    args = {
        "name": Arg(
            "str", required=True, aliases=("service",), doc="The unit (coze, coze.service) or service name."
        ),
        "state": Arg(
            "str",
            choices=("started", "stopped", "restarted", "reloaded", "inspected"),
            doc="started/stopped are idempotent; restarted/reloaded always act; inspected only reads.",
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
            "int", default=10,
            doc="Seconds to wait for the pidfile to name a live process; a start command still "
            "running in the foreground then, with no pidfile, is taken for the service.",
        ),
        "log": Arg(
            "path",
            default="/dev/null",
            doc="Where the output of start goes (appended) with the pidfile manager.",
        ),
        "attempts": Arg("int", default=1, doc="How many times a start is tried before the task fails."),
        "backoff": Arg(
            "int", default=2, doc="Seconds before the second attempt; doubled before each further one."
        ),
        "settle": Arg(
            "int", default=0, doc="Seconds a started service must keep running to count as started."
        ),
        "crash_limit": Arg(
            "int",
            default=0,
            doc="This many crashes (systemd: NRestarts; pidfile: starts of start_record within "
            "crash_window without a clean stop) make a crash loop: no start is tried (again); 0: no limit.",
        ),
        "crash_window": Arg("int", default=300, doc="Seconds of the start record that count (pidfile)."),
        "start_record": Arg(
            "path",
            doc="Where the service records its starts and clean stops, one line each: "
            "'<epoch seconds> start <pid>', '<epoch seconds> stop <pid>' (pidfile manager).",
        ),
        "logs": Arg(
            "list", elements="path", default=[],
            doc="Log files whose last lines are read: inspected data, and the message of a failed start.",
        ),
        "log_lines": Arg("int", default=10, doc="How many last lines of each log are read."),
    }
    required_one_of = (("state", "enabled"),)

    def reads_only(self, args: Mapping[str, Any]) -> bool:
        return args.get("state") == "inspected" and args.get("enabled") is None

    def facts(self, args: Mapping[str, Any]) -> Mapping[str, Fact]:
        a = self.resolved(args)
        pidfile = a["pidfile"] if a["manager"] != "systemd" else None
        return {"service": service_fact(str(a["name"]), pidfile, extras_of(a))}

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
        try:
            data = _status(a, f, manager)
        except re.error as exc:
            return Change(changed=False, failed=f"invalid match pattern: {exc}")
        if a["state"] == "inspected":
            return Change(changed=False, data=data, summary=data["summary"])
        if data["crash_loop"] and a["state"] in ("started", "restarted", "reloaded"):
            failed = f"{data['summary']}; not started again (a restart does not cure a crash loop)"
            return Change(changed=False, data={**data, "msg": failed}, failed=failed)
        change = systemd_plan(a, f) if manager == "systemd" else pidfile_plan(a, f)
        return replace(change, data=data)

    def outcome(self, args: Mapping[str, Any], facts: Mapping[str, Any], change: Change,
                results: Sequence[CommandResult]) -> Outcome:
        failed = start_failure(change, results)
        if failed is None:
            return super().outcome(args, facts, change, results)
        message, data = failed
        # the start script leaves nothing of the service running: a lone start changed nothing
        alone = self.resolved(args)["state"] == "started" and results[-1].rc in START_FAILED
        return Outcome(changed=change.changed and not alone, failed=message,
                       data={**change.data, **data, "msg": message})


def _status(a: Mapping[str, Any], f: ServiceFacts, manager: str) -> dict[str, Any]:
    """What ``state: inspected`` registers (and every other state, too)."""
    name = str(a["name"])
    if manager == "systemd":
        running = systemd_running(f)
        now = f"{f.unit.get('ActiveState', 'unknown')} ({f.unit.get('SubState', '?')})"
        pid = f.unit.get("MainPID", "")
        strays: list[str] = []
    else:
        running, now = pidfile_running(a, f)
        pid = f.pid
        pattern = match_pattern(a)
        strays = [f"pid {p} ({cmd.strip()})" for p, cmd in f.processes if pattern.search(cmd)]
    crashes = crash_count(f, manager)
    limit = max(int(a["crash_limit"] or 0), 0)
    crash_loop = bool(limit) and not running and crashes >= limit
    summary = f"{name} is {now}"
    if crashes:
        summary += f"; NRestarts={crashes}" if manager == "systemd" else \
            f"; {crashes} starts in the last {int(a['crash_window'])}s without a clean stop"
        summary += f": a crash loop (crash_limit {limit})" if crash_loop else ""
    if strays:
        summary += f"; the pidfile does not name what runs: {'; '.join(strays[:3])}"
    data: dict[str, Any] = {"name": name, "manager": manager, "state": a["state"], "running": running,
                            "pid": pid, "crashes": crashes, "crash_loop": crash_loop, "strays": strays,
                            "log_tail": list(f.log_tail), "summary": summary}
    if manager == "systemd":
        data["status"] = dict(f.unit)
    return data


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


def systemd_running(f: ServiceFacts) -> bool:
    """Whether the unit runs: active, reloading, or activating but not between two crashes."""
    return f.unit.get("ActiveState") in _RUNNING and f.unit.get("SubState") != "auto-restart"


def systemd_plan(a: Mapping[str, Any], f: ServiceFacts) -> Change:
    """Predict ``systemctl`` commands from the unit's ActiveState and UnitFileState."""
    name, unit = str(a["name"]), quote(a["name"])
    active = f.unit.get("ActiveState", "unknown")
    file_state = f.unit.get("UnitFileState", "")
    steps: list[Command] = []
    verbs: list[str] = []
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
            verbs.append("enable" if want else "disable")
            steps.append(Command(f"systemctl {verbs[-1]} -- {unit}"))
            before.append(f"enabled: {file_state or 'unknown'}")
            after.append(f"enabled: {'enabled' if want else 'disabled'}")
    state = a["state"]
    running = systemd_running(f)
    verb = {
        "started": "start" if not running else "",
        "stopped": "stop" if active in _RUNNING or active == "deactivating" else "",
        "restarted": "restart",
        "reloaded": "reload" if running else "start",
    }.get(state or "", "")
    if verb:
        verbs.append(verb)
        steps.append(systemd_start(a, verb) if verb in ("start", "restart") else
                     Command(f"systemctl {verb} -- {unit}"))
        before.append(f"state: {active}")
        after.append(f"state: {'inactive' if verb == 'stop' else 'active'} ({verb})")
    if not steps:
        return Change(changed=False, summary=f"{name} is {active}")
    return Change(
        changed=True,
        steps=tuple(steps),
        diffs=(service_diff(name, before, after),),
        summary=f"{name}: " + ", ".join(verbs),
    )
