"""The ``apply`` command: check a saved plan, replay its command line, refuse it if stale, run it once.

Command line, beside ``commands``. Before any host is contacted ``apply``
opens the plan (its seal, signature and expiry: ``plan.artifact``), checks
that the files it read are unchanged, and that the audit log has no record
of it being applied; each refusal is one line and exit 4. It then re-plans
in check mode and refuses a stale plan (exit 4, one line per host that is no
longer as planned: ``plan_drift``), records the plan in the audit log
(``claim_plan``: once only) and runs it with the output and connection
options given to ``apply``.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from typing import Any

from runner.cli.commands import (
    audit_path,
    batch_policy,
    execute_args,
    execute_planned,
    finish,
    input_roots,
    max_changed,
    report_plan_comparison,
    run_options,
)
from runner.errors import InputError, Location, PlanRefusedError
from runner.events import NullListener
from runner.load.inputs import Inputs, load_inputs
from runner.output.audit import claim_plan, plan_applied
from runner.plan.artifact import (
    NEW_PLAN,
    check_inputs,
    file_sha256,
    input_files,
    open_plan,
    plan_digest,
    plan_key,
    relocate,
)
from runner.plan.hosts import plan_hosts
from runner.plan.saved import plan_drift
from runner.redaction import MASK
from runner.results import Run, worst_exit

#: ``apply``'s own options that the replayed ``run`` takes over.
_CARRIED = ("format", "verbose", "quiet", "no_color", "diff", "forks", "junit", "audit_log", "output",
            "known_hosts", "accept_new_host_keys", "ssh_config", "user", "private_key", "ask_pass",
            "ask_become_pass", "connect_timeout", "lock_timeout", "serial", "max_fail_percentage",
            "max_changed", "no_evidence")
#: Hosts named when a plan is stale; the rest are counted.
_SHOWN = 20


def apply_command(args: argparse.Namespace) -> int:
    """``remedy apply plan.json``: check the plan, re-plan, refuse it if stale, then run for real."""
    path = args.plan_file
    saved = open_plan(path, key=plan_key(os.environ), now=datetime.now(UTC))
    batch_policy(args)  # bad batch options: exit 4 before the check contacts any host
    max_changed(args)
    info = _inputs_here(path, saved["inputs"])
    namespace = _replay_args(args, info)
    now = {name: sha for name in info["files"] if (sha := file_sha256(name))}
    check_inputs(path, info["files"], now)  # before they are loaded: a broken one is a changed one
    inputs = load_inputs(namespace.playbooks, namespace.inventory, namespace.extra_vars)
    check_inputs(path, info["files"], input_files([b.path for b in inputs.playbooks],
                                                  inputs.inventory.files if inputs.inventory else {},
                                                  namespace.extra_vars))  # and no new one is read
    log = audit_path(args.audit_log)
    _refuse_if_applied(path, saved, plan_applied(log, saved["plan_id"]) if log.exists() else "")
    _refuse_if_stale(path, saved, _silent_check(namespace, inputs))
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        _refuse_if_applied(path, saved, claim_plan(log, saved["plan_id"], plan_sha256=plan_digest(saved),
                                                   plan_file=os.path.abspath(path)))
    except OSError as error:
        raise InputError.at(Location(str(log)), f"cannot write the audit log: {error.strerror or error}",
                            "pass --audit-log FILE with a writable path; remedy never runs unaudited") \
            from None
    run, redactor, _ = execute_args(namespace, inputs)
    code = finish(namespace, run, redactor, "run", inputs)
    return worst_exit(code, report_plan_comparison(saved, run, namespace, redactor))


def _inputs_here(path: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The plan's inputs, read from this checkout if it was made in another; no secret from ``-e``."""
    masked = [item for item in inputs["extra_vars"] if MASK in item]
    if masked:
        raise InputError.at(Location(path), f"the plan was made with a secret on the command "
                            f"line (-e {masked[0]}), and a saved plan never holds secrets",
                            "give secret variables in a file (-e @secrets.yml) or the inventory, "
                            "and make the plan again")
    here = input_roots()
    moved = relocate(inputs, here)
    workdir = dict(inputs.get("roots") or {}).get("workdir")
    if moved != inputs and workdir:
        print(f"remedy: the plan was made in {workdir}; reading its inputs under {here['workdir']}",
              file=sys.stderr)
    return moved


def _refuse_if_applied(path: str, saved: dict[str, Any], when: str) -> None:
    if when:
        raise PlanRefusedError(path, "already applied", f"plan {saved['plan_id']} was applied at {when} "
                               "(the audit log says so); a saved plan runs once", NEW_PLAN)


def _refuse_if_stale(path: str, saved: dict[str, Any], fresh: Run) -> None:
    """Refuse, one short paragraph per host, when a fresh check no longer finds what was planned."""
    drift = plan_drift(saved, fresh)
    if drift:
        more = [f"... and {len(drift) - _SHOWN} more hosts"] if len(drift) > _SHOWN else []
        raise PlanRefusedError(path, "stale", f"{len(drift)} of {len(fresh.hosts)} hosts are no longer "
                               "as planned", "", [*drift[:_SHOWN], *more])


def _replay_args(args: argparse.Namespace, info: dict[str, Any]) -> argparse.Namespace:
    """The ``run`` command line the plan was made with, plus ``apply``'s own options."""
    from runner.cli.parser import build_parser

    argv = ["run", *info["playbooks"]]
    for inventory in info["inventory"]:
        argv += ["-i", inventory]
    for extra in info["extra_vars"]:
        argv += ["-e", extra]
    for option, key in (("-l", "limit"), ("--tags", "tags"), ("--skip-tags", "skip_tags"),
                        ("--slice", "slice")):
        if info.get(key):
            argv += [option, info[key]]
    namespace = build_parser().parse_args(argv)
    for name in _CARRIED:
        setattr(namespace, name, getattr(args, name))
    return namespace


def _silent_check(namespace: argparse.Namespace, inputs: Inputs) -> Run:
    options = run_options(namespace, check=True, diagnose_only=False)
    return execute_planned(inputs, options, plan_hosts(inputs, options), NullListener())
