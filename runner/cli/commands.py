"""The ``run``, ``plan``, ``diagnose`` and ``apply`` commands: wiring and output.

Command line, beside ``program``: turns parsed arguments into options, registers
every secret with the run's redactor and opens the audit log (both before any
host is contacted: no audit, no run), installs the signal handlers, calls
``executor.execute`` and renders the results, each through the redactor.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import getpass
import hashlib
import json
import math
import os
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from runner.cli.parser import DEFAULT_AUDIT, EXIT_PENDING
from runner.connection import import_ssh
from runner.errors import InputError, Location, Problem
from runner.events import Listener, Listeners, NullListener
from runner.load.inputs import Inputs, bundled_playbooks, load_inputs
from runner.output.audit import AuditLog, unfinished_runs
from runner.output.console import Console
from runner.output.firstcontact import render_first_contact
from runner.output.runs import junit_document, prediction_mismatches, render_plan, render_recap, run_document
from runner.output.verdicts import (
    diagnosis_rows,
    render_diagnosis,
    render_faults,
    render_health,
    with_next_playbooks,
)
from runner.plan.hosts import ConnectOptions, HostPlan, RunOptions, plan_hosts
from runner.plan.saved import compare_with_plan, load_plan, plan_drift
from runner.redaction import MASK, Redactor
from runner.results import FaultState, Run
from runner.run.executor import execute


def _passwords(args: argparse.Namespace) -> tuple[str | None, str | None]:
    ssh = os.environ.get("REMEDY_SSH_PASSWORD")
    become = os.environ.get("REMEDY_BECOME_PASSWORD")
    if getattr(args, "ask_pass", False) and ssh is None:
        ssh = getpass.getpass("SSH password: ")
    if getattr(args, "ask_become_pass", False) and become is None:
        become = getpass.getpass("sudo password: ")
    return ssh, become


def _options(args: argparse.Namespace, *, check: bool, diagnose_only: bool) -> RunOptions:
    ssh_password, become_password = _passwords(args)
    if args.forks < 1 or args.forks > 500:
        raise InputError.at(Location("<command line --forks>"), "--forks must be between 1 and 500")
    def split(text: str) -> frozenset[str]:
        return frozenset(t.strip() for t in text.split(",") if t.strip())

    serial, max_fail = batch_policy(args)
    return RunOptions(
        check=check, diagnose_only=diagnose_only, forks=args.forks, limit=args.limit,
        tags=split(args.tags), skip_tags=split(args.skip_tags), lock_timeout=args.lock_timeout,
        serial=serial, max_fail_percentage=max_fail,
        connect=ConnectOptions(
            user=args.user, key_file=args.private_key, password=ssh_password,
            become_password=become_password, known_hosts=args.known_hosts,
            accept_new_host_keys=args.accept_new_host_keys, ssh_config=args.ssh_config,
            connect_timeout=args.connect_timeout),
    )


def batch_policy(args: argparse.Namespace) -> tuple[tuple[int | str, ...] | None, float | None]:
    """``--serial`` and ``--max-fail-percentage`` (None where not given).

    Raises:
        InputError: a batch that is not a positive count or a percentage, or a
            percentage that is not a number from 0 to 100.
    """
    from runner.load.playbook import serial_entry

    serial: tuple[int | str, ...] | None = None
    text = getattr(args, "serial", None)
    if text is not None:
        words = [w.strip() for w in text.split(",")]
        entries = [serial_entry(int(w) if w.isdigit() else w) for w in words]
        bad = [w for w, e in zip(words, entries, strict=True) if e is None]
        if bad:
            raise InputError.at(Location("<command line --serial>"),
                                f"--serial {text!r}: {bad[0]!r} is not a positive count or a percentage",
                                "e.g. --serial 1,10%,100% (one canary host, then 10% of the hosts, "
                                "then the rest) or --serial 5")
        serial = tuple(e for e in entries if e is not None)
    max_fail: float | None = None
    text = getattr(args, "max_fail_percentage", None)
    if text is not None:
        try:
            max_fail = float(text)
        except ValueError:
            max_fail = math.nan
        if not 0 <= max_fail <= 100:
            raise InputError.at(Location("<command line --max-fail-percentage>"),
                                f"--max-fail-percentage {text!r} is not a number from 0 to 100",
                                "e.g. --max-fail-percentage 0 stops the run after a batch with any failure")
    return serial, max_fail


def _open_audit(path: str | None, redactor: Redactor) -> AuditLog:
    target = Path(path) if path else DEFAULT_AUDIT
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return AuditLog(target, redactor)
    except OSError as error:
        raise InputError.at(Location(str(target)), f"cannot open the audit log: {error.strerror}",
                            "pass --audit-log FILE with a writable path; remedy never runs unaudited") \
            from None


class _Signals:
    """SIGINT/SIGTERM set the stop flag; a second signal aborts at once."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def run_command(args: argparse.Namespace) -> int:
    """``remedy run`` / ``plan`` / ``diagnose``."""
    saved = load_plan(args.compare_plan) if getattr(args, "compare_plan", None) else None
    run, redactor = _execute(args)
    code = _finish(args, run, redactor, args.command)
    if saved is not None:
        code = max(code, _report_plan_comparison(saved, run, args, redactor))
    return code


def _execute(args: argparse.Namespace) -> tuple[Run, Redactor]:
    command = args.command
    check = command in ("plan", "diagnose") or getattr(args, "check", False)
    playbooks = args.playbooks or list(bundled_playbooks())
    inputs = load_inputs(playbooks, args.inventory, args.extra_vars)
    warn_inputs(inputs)
    options = _options(args, check=check, diagnose_only=command == "diagnose")
    hosts = plan_hosts(inputs, options)  # selection errors: exit 4 before any connection
    redactor = _redactor(options, hosts)
    audit = _open_audit(args.audit_log, redactor)
    _warn_unfinished(audit)
    quiet = args.quiet or (command == "diagnose" and not args.verbose)  # the diagnosis says it all
    console = Console(sys.stderr, redactor, verbose=args.verbose, quiet=quiet, diff=args.diff)
    stop = threading.Event()
    try:
        with _Signals(stop):
            run = _execute_planned(inputs, options, hosts, Listeners([audit, console]), stop, redactor)
    finally:
        audit.close()
    if audit.audit_error() and not run.audit_error:  # the run_end record, or a deferred error
        run = dataclasses.replace(run, audit_error=audit.audit_error())
    return run, redactor


def warn_inputs(inputs: Inputs) -> None:
    """One line per doubt about the input that does not stop the run (an -e nothing reads)."""
    for warning in inputs.warnings:
        print(f"remedy: warning: {warning}", file=sys.stderr)


def _warn_unfinished(audit: AuditLog) -> None:
    """One line per earlier run that was killed before its end (a run_start with no run_end)."""
    for start in unfinished_runs(audit.path):
        print(f"remedy: warning: the run {start.get('run_id')} started {start.get('ts')} did not finish "
              f"(no run_end in {audit.path}); its hosts may be half-changed, and uploads remove the "
              "temp files it left", file=sys.stderr)


def _with_next_playbooks(run: Run) -> Run:
    """Name, for a host whose health still fails, the bundled playbooks that answer its checks."""
    if not any(host.health.get("failing") for host in run.hosts):
        return run
    from runner.load.playbook import load_playbook

    return with_next_playbooks(run, [load_playbook(p) for p in bundled_playbooks().values()])


def _redactor(options: RunOptions, hosts: Sequence[HostPlan]) -> Redactor:
    """A redactor that knows every secret of the run: passwords and each host's secret variables."""
    redactor = Redactor([options.connect.password or "", options.connect.become_password or ""])
    for host in hosts:
        redactor.add(host.params.password)
        redactor.add(host.params.become_password)
        for secret in host.secrets:
            redactor.add(secret)
    return redactor


def _execute_planned(inputs: Inputs, options: RunOptions, hosts: Sequence[HostPlan], listener: Listener,
                     stop: threading.Event | None = None, redactor: Redactor | None = None) -> Run:
    """``execute`` the planned ``hosts``, once start-up is settled."""
    _settle_start_up(hosts)
    return execute(inputs, options, listener, stop=stop, hosts=hosts, redactor=redactor)


def _settle_start_up(hosts: Sequence[HostPlan]) -> None:
    """Freeze what start-up loaded and turn the garbage collector back on.

    ``cli.entry`` starts the program with the collector off. What it loaded
    (modules, inputs, paramiko's modules for SSH hosts) lives until exit; frozen,
    it is left out of every later collection. Callers that run ``cli.main``
    in-process keep their collector as it was.
    """
    if gc.isenabled():
        return
    if any(host.params.kind == "ssh" for host in hosts):
        import_ssh()
    gc.freeze()
    gc.enable()


def _report_plan_comparison(saved: dict[str, Any], run: Run, args: argparse.Namespace,
                            redactor: Redactor) -> int:
    out = sys.stderr if args.format == "json" else sys.stdout
    mismatches = compare_with_plan(saved, run)
    if mismatches:
        print("The run differs from the saved plan:", file=out)
        for line in mismatches:
            print("  " + redactor.text(line), file=out)
        return 2
    print("The run changed exactly what the saved plan predicted.", file=out)
    return 0


def _finish(args: argparse.Namespace, run: Run, redactor: Redactor, command: str) -> int:
    out = sys.stderr if args.format == "json" else sys.stdout
    run = _with_next_playbooks(run)
    if command == "diagnose":
        print(redactor.text(render_diagnosis(run, lambda books, hosts: _fix_command(args, books, hosts))),
              file=out)
    elif run.check:
        print(redactor.text(render_plan(run)), file=out)
    else:
        mismatches = prediction_mismatches(run)
        if mismatches:
            print("Plan check: these tasks did not do what their plan predicted:", file=out)
            for line in mismatches:
                print("  " + redactor.text(line), file=out)
    if command != "diagnose" or args.verbose:
        print(redactor.text(render_recap(run)), file=out)
    for section in (render_faults(run) if command != "diagnose" else "", render_health(run),
                    render_first_contact(run)):
        if section:
            print(redactor.text(section), file=out)
    if args.format == "json":
        document = run_document(run, redactor.value)
        if command == "diagnose":
            document["diagnosis"] = redactor.value(diagnosis_rows(run))
        print(json.dumps(document, indent=2, sort_keys=True, default=str))
    if getattr(args, "junit", None):
        _write_atomic(Path(args.junit), junit_document(run, redactor.text))
    if getattr(args, "output", None):
        _write_atomic(Path(args.output), json.dumps(
            {**run_document(run, redactor.value), "inputs": redactor.value(_fingerprint(args))},
            indent=2, sort_keys=True, default=str))
    if run.exit_code == 0 and getattr(args, "detailed_exitcode", False) and _pending(run, command):
        return EXIT_PENDING
    return run.exit_code


def _pending(run: Run, command: str) -> bool:
    """Whether a plan would change something (``plan``) or a fault was found (``diagnose``)."""
    if command == "diagnose":
        return any(f.state in (FaultState.FOUND, FaultState.BLOCKED) for h in run.hosts for f in h.faults)
    return any(r.predicted in ("change", "unknown") for r in run.all_results()
               if r.phase in ("tasks", "handlers"))


def _fix_command(args: argparse.Namespace, books: list[str], hosts: list[str]) -> str:
    """The ``remedy run`` command line that fixes ``books`` on ``hosts``, with this run's inputs."""
    given = {Path(p).stem: p for p in args.playbooks}
    words = ["remedy", "run", *(given.get(b, b) for b in books)]
    for inventory in args.inventory:
        words += ["-i", inventory]
    for extra in args.extra_vars:
        words += ["-e", extra]
    words += ["-l", ",".join(hosts)]
    return shlex.join(words)


def _fingerprint(args: argparse.Namespace) -> dict[str, Any]:
    def digest(path: str) -> str:
        try:
            return hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            return ""

    from runner.load.inputs import resolve_playbook_path

    books = [str(resolve_playbook_path(p).resolve()) for p in args.playbooks or bundled_playbooks()]
    return {"playbooks": {p: digest(p) for p in books}, "inventory": list(args.inventory),
            "extra_vars": list(args.extra_vars), "limit": args.limit,
            "tags": args.tags, "skip_tags": args.skip_tags}


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def apply_command(args: argparse.Namespace) -> int:
    """``remedy apply plan.json``: re-plan, refuse on drift, then run for real."""
    saved = load_plan(args.plan_file)
    batch_policy(args)  # bad batch options: exit 4 before the check contacts any host
    inputs_info = saved["inputs"]
    masked = [item for item in inputs_info["extra_vars"] if MASK in item]
    if masked:
        raise InputError.at(Location(args.plan_file), f"the plan was made with a secret on the command "
                            f"line (-e {masked[0]}), and a saved plan never holds secrets",
                            "give secret variables in a file (-e @secrets.yml) or the inventory, "
                            "and make the plan again")
    for path, sha in inputs_info["playbooks"].items():
        current = hashlib.sha256(Path(path).read_bytes()).hexdigest() if Path(path).exists() else ""
        if current != sha:
            raise InputError.at(Location(path), "the playbook changed since the plan was made",
                                "make and review a new plan")
    namespace = _replay_args(args, inputs_info)
    namespace.command, namespace.check = "plan", True
    fresh = _silent_check(namespace)
    drift = plan_drift(saved, fresh)
    if drift:
        raise InputError([Problem(Location(args.plan_file), line) for line in drift[:20]])
    namespace.command, namespace.check = "run", False
    namespace.serial, namespace.max_fail_percentage = args.serial, args.max_fail_percentage
    run, redactor = _execute(namespace)
    code = _finish(namespace, run, redactor, "run")
    return max(code, _report_plan_comparison(saved, run, namespace, redactor))


def _replay_args(args: argparse.Namespace, info: dict[str, Any]) -> argparse.Namespace:
    from runner.cli.parser import build_parser

    argv = ["run", *info["playbooks"]]
    for inventory in info["inventory"]:
        argv += ["-i", inventory]
    for extra in info["extra_vars"]:
        argv += ["-e", extra]
    if info.get("limit"):
        argv += ["-l", info["limit"]]
    if info.get("tags"):
        argv += ["--tags", info["tags"]]
    argv += ["--format", args.format]
    namespace = build_parser().parse_args(argv)
    namespace.verbose, namespace.quiet = args.verbose, args.quiet
    return namespace


def _silent_check(namespace: argparse.Namespace) -> Run:
    inputs = load_inputs(namespace.playbooks, namespace.inventory, namespace.extra_vars)
    options = _options(namespace, check=True, diagnose_only=False)
    return _execute_planned(inputs, options, plan_hosts(inputs, options), NullListener())


