"""Per-host fault verdicts and the service's health after a run, as text and JSON.

Output stage, beside ``runs``: takes a finished ``Run`` and returns
text or plain data. A host may have several faults; this says, per host, which
playbooks' faults were found, in the order their playbooks ran, what became
of each (fixed, rolled back, blocked ...), and what the service's health
check still reports, with the bundled playbook that answers each failing
check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from runner.load.graph import build_graph
from runner.model import Playbook
from runner.output.tables import DEFAULT_WIDTH, text_lines, wrap
from runner.results import FaultState, HostResult, Run, Status

#: Fault verdicts that no single task's record shows: a JUnit test case of their own.
FAILED_FAULTS = frozenset({FaultState.ROLLED_BACK, FaultState.ROLLBACK_FAILED, FaultState.BLOCKED})
_SHOWN = {
    FaultState.FOUND: "found",
    FaultState.FIXED: "fixed",
    FaultState.FAILED: "FAILED",
    FaultState.ROLLED_BACK: "ROLLED BACK",
    FaultState.ROLLBACK_FAILED: "ROLLBACK FAILED",
    FaultState.BLOCKED: "BLOCKED",
    FaultState.WAITING: "waits",
    FaultState.NOT_RUN: "not run",
}


def fault_documents(host: HostResult) -> list[dict[str, Any]]:
    """The host's faults for the JSON document, in the order their playbooks ran."""
    return [{"playbook": f.playbook, "state": str(f.state), "evidence": list(f.evidence),
             "detail": f.detail, "blocked_by": f.blocked_by or None} for f in host.faults]


def render_faults(run: Run, width: int = DEFAULT_WIDTH) -> str:
    """One line per host that had a fault: its playbooks in run order and their verdicts (wrapped to
    ``width``)."""
    lines = []
    for host in run.hosts:
        found = [f for f in host.faults if f.state is not FaultState.HEALTHY]
        if not found:
            continue
        parts = []
        for number, fault in enumerate(found, 1):
            why = ""
            if fault.state in (FaultState.BLOCKED, FaultState.WAITING, FaultState.FAILED,
                               FaultState.ROLLED_BACK, FaultState.ROLLBACK_FAILED):
                why = f" ({' '.join(fault.detail.split())})" if fault.detail else ""
            parts.append(f"{number}. {fault.playbook}: {_SHOWN.get(fault.state, str(fault.state))}{why}")
        lines.extend(wrap(f"{host.host}: " + "; ".join(parts), width, indent="  "))
    if not lines:
        return ""
    title = "Faults per host, in the order their playbooks run:" if run.check else \
        "Faults per host, in the order their playbooks ran:"
    return "\n".join([title, *lines])


def with_next_playbooks(run: Run, books: Iterable[Playbook]) -> Run:
    """``run`` with ``health["next"]``: the playbooks whose ``health.checks`` name a failing check,
    in the fault order (a blocked playbook after the one it waits for)."""
    books = list(books)
    order = [book.name for book, _ in build_graph(books).plays]  # the fault order
    answers: dict[str, list[str]] = {}
    for book in sorted(books, key=lambda b: order.index(b.name)):
        for play in book.plays:
            for check in play.health.get("checks") or []:
                answers.setdefault(str(check), [])
                if book.name not in answers[str(check)]:
                    answers[str(check)].append(book.name)
    hosts = []
    for host in run.hosts:
        failing = host.health.get("failing") or []
        if not failing:
            hosts.append(host)
            continue
        fixed = {f.playbook for f in host.faults if f.state is FaultState.FIXED}
        upcoming = {name for check in failing for name in answers.get(check, []) if name not in fixed}
        hosts.append(replace(host, health={**host.health, "next": [n for n in order if n in upcoming]}))
    return replace(run, hosts=tuple(hosts))


def render_health(run: Run, width: int = DEFAULT_WIDTH) -> str:
    """The service's health after the run, for each host it was read on (wrapped to ``width``), and the
    command that fixes what still fails."""
    lines = []
    for host in run.hosts:
        health: Mapping[str, Any] = host.health
        if not health:
            continue
        if health.get("ok"):
            lines.extend(wrap(f"{host.host}: healthy ({health.get('status')})", width, indent="  "))
            continue
        reasons = "; ".join(health.get("reasons") or []) or str(health.get("message", ""))
        lines.extend(wrap(f"{host.host}: status {health.get('status')}: {reasons}", width, indent="  "))
        if health.get("next"):  # a command to paste: never wrapped
            lines.append(f"    next: remedy run {' '.join(health['next'])} -l {host.host}")
    return "\n".join(["Health after the run:", *lines]) if lines else ""


def diagnosis_rows(run: Run) -> list[dict[str, Any]]:
    """Hosts x playbooks: is the playbook's fault present, with the evidence, in the fault order."""
    rows: list[dict[str, Any]] = []
    for host in run.hosts:
        if not host.faults:  # never diagnosed: unreachable, or not run
            cause = next((r for r in host.results if r.status.is_failure or r.status is Status.NOT_RUN), None)
            state = f"{host.status}: {cause.message}" if cause else str(host.status)
            rows.append({"host": host.host, "playbook": None, "diagnosis": state, "evidence": [],
                         "blocked_by": None})
            continue
        for fault in host.faults:
            rows.append({"host": host.host, "playbook": fault.playbook,
                         "diagnosis": _DIAGNOSIS.get(fault.state, str(fault.state))
                         if fault.state is not FaultState.FAILED else f"error: {fault.detail}",
                         "evidence": list(fault.evidence) or ([fault.detail] if fault.blocked_by else []),
                         "blocked_by": fault.blocked_by or None})
    return rows


_DIAGNOSIS = {FaultState.FOUND: "fault", FaultState.BLOCKED: "fault", FaultState.HEALTHY: "healthy"}


def render_diagnosis(run: Run, fix: Callable[[list[str], list[str]], str], width: int = DEFAULT_WIDTH) -> str:
    """Per host, the faults found with their evidence and the command that fixes them.

    ``fix(playbooks, hosts)`` is that command. Hosts that need the same
    playbooks share one command; healthy hosts are listed on one line. Lines are wrapped to ``width``.
    """
    lines: list[str] = []
    commands: dict[tuple[str, ...], list[str]] = {}
    healthy: list[str] = []
    for host in run.hosts:
        rows = [r for r in diagnosis_rows(run) if r["host"] == host.host]
        found = [r for r in rows if r["diagnosis"] != "healthy"]
        if not found:
            healthy.append(host.host)
            continue
        faults = [r for r in found if r["diagnosis"] == "fault"]
        lines.append(f"{host.host}: " + (f"{len(faults)} fault{'s' * (len(faults) != 1)}" if faults
                                          else "could not be diagnosed"))
        for row in found:
            name = row["playbook"] or "(host)"
            if row["blocked_by"]:
                name += f" (runs after {row['blocked_by']})"
            what = "; ".join(row["evidence"]) if row["diagnosis"] == "fault" else row["diagnosis"]
            first, *more = text_lines(what, most=10)  # line breaks kept, up to 10 lines, each wrapped
            lines.extend(wrap(f"{name}: {first}", width, indent="  "))
            for line in more:
                lines.extend(wrap(line, width, indent="    "))
        books = tuple(r["playbook"] for r in faults)
        if books:
            commands.setdefault(books, []).append(host.host)
    if healthy:
        lines.extend(wrap(f"healthy: {', '.join(healthy)}", width))
    if commands:
        lines.append("")
        lines.append("To fix (each host's playbooks run in this order):")
        lines.extend(f"  {fix(list(books), hosts)}" for books, hosts in commands.items())  # never wrapped
    return "\n".join(lines) if lines else "no host was diagnosed"


_UNREACHABLE_HINTS = {
    "auth": "check the remote user and key: -u USER, --private-key FILE, or ansible_user and "
            "ansible_ssh_private_key_file in the inventory",
    "host_key": "check the host's key: a new one is recorded with --accept-new-host-keys (or add it to "
                "known_hosts); a changed one is never accepted",
    "connect": "check that the host is up and sshd listens on its ansible_host and ansible_port "
               "(--connect-timeout S waits longer)",
}


def render_failures(run: Run, rerun: Callable[[list[str], list[str]], str],
                    width: int = DEFAULT_WIDTH, diagnose: Callable[[list[str]], str] | None = None) -> str:
    """After the recap: each failing host with its one root cause and what to do about it.

    ``rerun(playbooks, hosts)`` is the command that runs ``playbooks`` again on
    ``hosts`` (every playbook of the run when ``playbooks`` is empty). ``diagnose(hosts)``, given
    when the run left out some of the bundled playbooks, is the command that diagnoses them all:
    a failed task may be another fault's doing (a probe that cannot read a config file that
    ``config_error`` would restore). Lines are wrapped to ``width``, except a command, on a line
    of its own.
    """
    lines = []
    for host in run.hosts:
        if not (host.status.is_failure or host.status is Status.NOT_RUN):
            continue
        causes = host.root_causes()
        if causes:
            first = causes[0]
            where = "" if first.status in (Status.UNREACHABLE, Status.NOT_RUN) else f" at '{first.name}'"
            what = f"{_word(first.status)}{where}: {' '.join(first.message.split())}"
        else:
            first, what = None, _word(host.status)
        fault = next((f for f in host.faults if f.state in FAILED_FAULTS | {FaultState.FAILED}), None)
        if fault is not None and fault.state is not FaultState.FAILED:
            what = f"{fault.playbook} {_SHOWN[fault.state]}: {' '.join(fault.detail.split())} ({what})"
        more = f" (and {len(causes) - 1} more failure(s) above)" if len(causes) > 1 else ""
        books = [f.playbook for f in host.faults if f.state not in (FaultState.HEALTHY, FaultState.FIXED)]
        lines.extend(wrap(f"{host.host}: {what}{more}", width, indent="  "))
        hint, command = _hint(host.status, first, fault, rerun(books, [host.host]))
        lines.extend(wrap(f"fix: {hint}", width, indent="    "))
        lines.extend([f"      {command}"] if command else [])  # a command to paste: never wrapped
        if diagnose is not None and first is not None and first.status in (Status.FAILED, Status.TIMED_OUT):
            lines.extend(wrap("another fault may be the cause: every bundled playbook's diagnosis of "
                              "the host says which:", width, indent="    "))
            lines.append(f"      {diagnose([host.host])}")
    return "\n".join(["Failures (one root cause per host):", *lines]) if lines else ""


def _word(status: Status) -> str:
    return {Status.NOT_RUN: "not run", Status.TIMED_OUT: "timed out"}.get(status, str(status)).upper()


def _hint(status: Status, cause: Any, fault: Any, rerun: str) -> tuple[str, str]:
    """What the person on call does next about a host that ended with ``status``, and the command."""
    message = cause.message if cause is not None else ""
    if status is Status.UNREACHABLE:
        return _UNREACHABLE_HINTS.get(message.split(":", 1)[0], _UNREACHABLE_HINTS["connect"]), ""
    if status is Status.NOT_RUN and message.startswith("locked"):
        return "another remedy run holds the host's lock: wait for it, or pass --lock-timeout SECONDS", ""
    if status is Status.ROLLBACK_FAILED:
        return ("the host is in neither its old nor its fixed state and needs a person: see the failed "
                "rollback task in the progress above (-v shows its commands and output)"), ""
    if status is Status.BLOCKED and fault is not None and fault.blocked_by:
        return f"{fault.blocked_by} must fix its fault first:", rerun
    if status is Status.INDETERMINATE:
        return "the connection was lost mid-command: check the host's state by hand before running again", ""
    if status is Status.NOT_RUN:
        return "run it again:", rerun
    return "see the failing task's commands and output, fix the cause, then run again:", f"{rerun} -v"
