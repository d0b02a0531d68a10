"""The ``service`` module's pidfile manager, for hosts without systemd.

Services layer. A service is started when its pidfile names a live process
whose command line matches ``match``; any other pidfile is stale. Every step
is one sh script: start detaches ``start`` and waits for the pidfile to name
a live process (with attempts, see ``servicestart``); stop re-checks that the pid is still the probed process
before signalling it, waits ``stop_timeout`` seconds, then sends SIGKILL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from runner.modules.base import Change, Command, quote
from runner.modules.servicefacts import ALIVE, ServiceFacts, service_diff, wait_gone
from runner.modules.servicestart import pidfile_start

_SIGNAL = re.compile(r"^(SIG)?([A-Z][A-Z0-9+-]*|[0-9]{1,2})$")


def signal_option(signal: Any) -> str | None:
    """``-s TERM`` or ``-9`` for kill; None when ``signal`` is not a signal name or number."""
    match = _SIGNAL.match(str(signal).strip().upper())
    if not match:
        return None
    name = match.group(2)
    return f"-{name}" if name.isdigit() else f"-s {name}"


def pidfile_plan(a: Mapping[str, Any], f: ServiceFacts) -> Change:
    """Predict the start/stop/reload scripts from the pidfile's liveness."""
    name, state = str(a["name"]), a["state"]
    stop, reload = signal_option(a["stop_signal"]), signal_option(a["reload_signal"])
    if stop is None or reload is None:
        bad = a["stop_signal"] if stop is None else a["reload_signal"]
        return Change(changed=False, failed=f"{bad!r} is not a signal name or number")
    try:
        running, now = pidfile_running(a, f)
    except re.error as exc:
        return Change(changed=False, failed=f"invalid match pattern: {exc}")
    present = f.pidfile == "present"
    steps: list[Command] = []
    if state == "stopped":
        if running:
            steps.append(Command(_stop_script(a, f, stop)))
        elif present:
            steps.append(Command(f"rm -f -- {quote(a['pidfile'])}"))
        after = "stopped"
    elif state == "reloaded" and running:
        steps.append(Command(_signal_script(a, f, reload)))
        after = f"started (pid {f.pid}, reloaded)"
    else:
        if state != "started" and running:
            steps.append(Command(_stop_script(a, f, stop)))
        if state != "started" or not running:
            if not a["start"]:
                return Change(changed=False, failed=f"the pidfile manager needs start to start {name}")
            steps.append(Command(pidfile_start(a, remove_stale=present and not running)))
        after = "started" + (" (restarted)" if state == "restarted" else "")
    if not steps:
        return Change(changed=False, summary=f"{name} is {now}")
    return Change(
        changed=True,
        steps=tuple(steps),
        diffs=(service_diff(name, [f"state: {now}"], [f"state: {after}"]),),
        summary=f"{name}: {now} -> {after}",
    )


def match_pattern(a: Mapping[str, Any]) -> re.Pattern[str]:
    """``match`` compiled; the escaped service name when none is given.

    Raises:
        re.error: ``match`` is not a regular expression.
    """
    return re.compile(str(a["match"]) if a["match"] is not None else re.escape(str(a["name"])))


def pidfile_running(a: Mapping[str, Any], f: ServiceFacts) -> tuple[bool, str]:
    """Whether the pidfile names a live process matching ``match``, and the state in words.

    Raises:
        re.error: ``match`` is not a regular expression.
    """
    pattern = match_pattern(a)
    present = f.pidfile == "present"
    running = present and f.alive and (f.cmdline is None or bool(pattern.search(f.cmdline)))
    return running, _describe(f, running=running, present=present)


def _describe(f: ServiceFacts, *, running: bool, present: bool) -> str:
    if running:
        return f"started (pid {f.pid})"
    if not present:
        return "stopped"
    if f.alive:
        return f"stopped (stale pidfile: pid {f.pid} is another program: {(f.cmdline or '').strip()})"
    return f"stopped (stale pidfile: pid {f.pid or '?'} is not running)"


def _guard(f: ServiceFacts) -> list[str]:
    """Lines that make sure $pid is still the probed process; exit 0 if it is gone."""
    lines = [ALIVE, f"pid={int(f.pid)}", 'if ! alive "$pid"; then exit 0; fi']
    if f.cmdline is not None:
        lines.append(
            f"""if [ "$(tr '\\000' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" != {quote(f.cmdline)} ]"""
            '; then echo "pid $pid is no longer the probed process; not signalled" >&2; exit 1; fi'
        )
    return lines


def _stop_script(a: Mapping[str, Any], f: ServiceFacts, option: str) -> str:
    timeout = max(int(a["stop_timeout"]), 0)
    return "\n".join(
        [
            f"f={quote(a['pidfile'])}",
            *_guard(f),
            f'kill {option} "$pid" || exit 1',
            *wait_gone(timeout),
            'rm -f -- "$f"',
        ]
    )


def _signal_script(a: Mapping[str, Any], f: ServiceFacts, option: str) -> str:
    return "\n".join([*_guard(f), f'kill {option} "$pid"'])
