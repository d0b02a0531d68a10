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
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from runner.cli.parser import DEFAULT_AUDIT, EXIT_PENDING
from runner.connection import import_ssh
from runner.errors import InputError, Location
from runner.events import Listener, Listeners
from runner.load.inputs import Inputs, bundled_playbooks, load_inputs
from runner.output.audit import AuditLog, unfinished_runs
from runner.output.console import Console, ConsoleOptions, wants_color
from runner.output.firstcontact import render_first_contact
from runner.output.markdown import render_markdown
from runner.output.runs import (
    junit_document,
    plan_summary,
    prediction_mismatches,
    render_plan,
    render_recap,
    run_document,
)
from runner.output.tables import terminal_width
from runner.output.verdicts import (
    diagnosis_rows,
    render_diagnosis,
    render_failures,
    render_faults,
    render_health,
    with_next_playbooks,
)
from runner.plan.artifact import absolute_sources, input_files, parse_ttl, plan_key, seal_plan
from runner.plan.hosts import ConnectOptions, HostPlan, RunOptions, plan_hosts
from runner.plan.saved import compare_with_plan, load_plan
from runner.redaction import Redactor
from runner.results import FaultState, Run, worst_exit
from runner.run.executor import execute


def _passwords(args: argparse.Namespace) -> tuple[str | None, str | None]:
    ssh = os.environ.get("REMEDY_SSH_PASSWORD")
    become = os.environ.get("REMEDY_BECOME_PASSWORD")
    if getattr(args, "ask_pass", False) and ssh is None:
        ssh = getpass.getpass("SSH password: ")
    if getattr(args, "ask_become_pass", False) and become is None:
        become = getpass.getpass("sudo password: ")
    return ssh, become


def run_options(args: argparse.Namespace, *, check: bool, diagnose_only: bool) -> RunOptions:
    ssh_password, become_password = _passwords(args)
    if args.forks < 1 or args.forks > 500:
        raise InputError.at(Location("<command line --forks>"), "--forks must be between 1 and 500")
    def split(text: str) -> frozenset[str]:
        return frozenset(t.strip() for t in text.split(",") if t.strip())

    serial, max_fail = batch_policy(args)
    keep_evidence = not (check or getattr(args, "no_evidence", True))
    return RunOptions(
        check=check, diagnose_only=diagnose_only, forks=args.forks, limit=args.limit,
        tags=split(args.tags), skip_tags=split(args.skip_tags),
        lock_timeout=getattr(args, "lock_timeout", 0.0),  # diagnose takes no lock
        serial=serial, max_fail_percentage=max_fail, max_changed=max_changed(args), slice=host_slice(args),
        evidence_dir=str(evidence_root(getattr(args, "audit_log", None))) if keep_evidence else "",
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


def max_changed(args: argparse.Namespace) -> int | str | None:
    """``--max-changed``: a positive count or a percentage (None where not given).

    Raises:
        InputError: any other value.
    """
    from runner.load.playbook import serial_entry

    text = getattr(args, "max_changed", None)
    if text is None:
        return None
    entry = serial_entry(int(text) if text.strip().isdigit() else text)
    if entry is None or isinstance(entry, str) and not 0 < float(entry.rstrip("%")) <= 100:
        raise InputError.at(Location("<command line --max-changed>"),
                            f"--max-changed {text!r} is not a positive count of hosts or a percentage "
                            "above 0% and at most 100%",
                            "e.g. --max-changed 5 (five hosts at most) or --max-changed 10%")
    return entry


def host_slice(args: argparse.Namespace) -> tuple[int, int] | None:
    """``--slice K/N`` as (K, N) (None where not given).

    Raises:
        InputError: not two whole numbers with 1 <= K <= N.
    """
    text = getattr(args, "slice", None)
    if text is None:
        return None
    index, _, count = text.partition("/")
    if not (index.strip().isdigit() and count.strip().isdigit() and 1 <= int(index) <= int(count)):
        raise InputError.at(Location("<command line --slice>"),
                            f"--slice {text!r} is not K/N with whole numbers 1 <= K <= N",
                            "e.g. --slice 2/3 runs the second of three slices; run every K from 1 to N "
                            "and join the results with 'remedy merge'")
    return int(index), int(count)


def evidence_root(audit_log: str | None) -> Path:
    """Where runs keep their evidence: ``evidence/`` beside the audit log."""
    return audit_path(audit_log).parent / "evidence"


def audit_path(path: str | None) -> Path:
    """The audit log's path: ``--audit-log``, else the default."""
    return Path(path) if path else DEFAULT_AUDIT


def open_audit(path: str | None, redactor: Redactor) -> AuditLog:
    """The audit log at ``path`` (default ``DEFAULT_AUDIT``), its directory made if missing.

    Raises:
        InputError: it cannot be opened (remedy never runs unaudited).
    """
    target = audit_path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return AuditLog(target, redactor)
    except OSError as error:
        raise InputError.at(Location(str(target)), f"cannot open the audit log: {error.strerror}",
                            "pass --audit-log FILE with a writable path; remedy never runs unaudited") \
            from None


class Signals:
    """SIGINT/SIGTERM set the stop flag; a second signal aborts at once."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> Signals:
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
    return run_and_report(args)[0]


def run_and_report(args: argparse.Namespace) -> tuple[int, Run]:
    """``run_command``, also giving the finished ``Run`` (for callers that act on its faults).

    Beyond the command line's options, ``args`` may carry ``stop`` (a
    ``threading.Event`` that stops the run as SIGINT does), ``results_dir``
    (the JSON document is also written to ``DIR/<run_id>.json``) and
    ``trigger`` (a mapping added to the JSON document as ``trigger``).
    """
    saved = load_plan(args.compare_plan) if getattr(args, "compare_plan", None) else None
    if getattr(args, "output", None) and args.command == "plan":  # a bad --plan-ttl or key: exit 4
        parse_ttl(args.plan_ttl)
        plan_key(os.environ)
    run, redactor, inputs = execute_args(args)
    code = finish(args, run, redactor, args.command, inputs)
    if saved is not None:
        code = worst_exit(code, report_plan_comparison(saved, run, args, redactor))
    return code, run


def execute_args(args: argparse.Namespace, inputs: Inputs | None = None) -> tuple[Run, Redactor, Inputs]:
    """Load the inputs (unless given), plan the hosts, open the audit log and run."""
    command = args.command
    check = command in ("plan", "diagnose") or getattr(args, "check", False)
    if inputs is None:
        inputs = load_inputs(args.playbooks or list(bundled_playbooks()), args.inventory, args.extra_vars)
    warn_inputs(inputs)
    options = run_options(args, check=check, diagnose_only=command == "diagnose")
    hosts = plan_hosts(inputs, options)  # selection errors: exit 4 before any connection
    if options.slice and not hosts:
        print(f"remedy: slice {args.slice} holds none of the selected hosts: nothing to do", file=sys.stderr)
    redactor = run_redactor(options, hosts)
    audit = open_audit(args.audit_log, redactor)
    _warn_unfinished(audit)
    quiet = args.quiet or (command == "diagnose" and not args.verbose)  # the diagnosis says it all
    diff = getattr(args, "diff", False) and not check  # a plan shows its diffs on stdout
    color = wants_color(sys.stderr, no_color=getattr(args, "no_color", False))
    console = Console(sys.stderr, redactor, ConsoleOptions(verbose=args.verbose, quiet=quiet, diff=diff,
                                                           color=color))
    stop = getattr(args, "stop", None) or threading.Event()
    try:
        with Signals(stop):
            run = execute_planned(inputs, options, hosts, Listeners([audit, console]), stop, redactor)
    finally:
        audit.close()
    if audit.audit_error() and not run.audit_error:  # the run_end record, or a deferred error
        run = dataclasses.replace(run, audit_error=audit.audit_error())
    return run, redactor, inputs


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


def run_redactor(options: RunOptions, hosts: Sequence[HostPlan]) -> Redactor:
    """A redactor that knows every secret of the run: passwords and each host's secret variables."""
    redactor = Redactor([options.connect.password or "", options.connect.become_password or ""])
    for host in hosts:
        redactor.add(host.params.password)
        redactor.add(host.params.become_password)
        for secret in host.secrets:
            redactor.add(secret)
    return redactor


def execute_planned(inputs: Inputs, options: RunOptions, hosts: Sequence[HostPlan], listener: Listener,
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


def report_plan_comparison(saved: dict[str, Any], run: Run, args: argparse.Namespace,
                           redactor: Redactor) -> int:
    out = sys.stderr if args.format != "text" else sys.stdout
    mismatches = compare_with_plan(saved, run)
    if mismatches:
        print("The run differs from the saved plan:", file=out)
        for line in mismatches:
            print("  " + redactor.text(line), file=out)
        return 2
    print("The run changed exactly what the saved plan predicted.", file=out)
    return 0


def finish(args: argparse.Namespace, run: Run, redactor: Redactor, command: str, inputs: Inputs) -> int:
    out = sys.stderr if args.format != "text" else sys.stdout
    width = terminal_width(out)
    run = _with_next_playbooks(run)
    if command == "diagnose":
        print(redactor.text(render_diagnosis(run, lambda books, hosts: _fix_command(args, books, hosts),
                                             width)), file=out)
    elif run.check:
        print(redactor.text(render_plan(run, width)), file=out)
    else:
        mismatches = prediction_mismatches(run)
        if mismatches:
            print("Plan check: these tasks did not do what their plan predicted:", file=out)
            for line in mismatches:
                print("  " + redactor.text(line), file=out)
    if command != "diagnose" or args.verbose:
        print(redactor.text(render_recap(run, verbose=args.verbose > 0, width=width)), file=out)
        failures = render_failures(run, lambda books, hosts: _fix_command(
            args, books or [Path(p).stem for p in args.playbooks], hosts), width, _diagnose_all(args))
        if failures:
            print(redactor.text(failures), file=out)
    kept = sorted({str(Path(path).parent.parent) for host in run.hosts
                   for phase, path in host.evidence.items() if phase != "error"})
    if kept:
        print(f"Evidence (before the first change and at the end, per host): {', '.join(kept)}", file=out)
    for section in (render_faults(run, width) if command != "diagnose" else "", render_health(run, width),
                    render_first_contact(run, width)):
        if section:
            print(redactor.text(section), file=out)
    if run.check and command != "diagnose":
        print(redactor.text(plan_summary(run)), file=out)
    _write_documents(args, run, redactor, command, inputs)
    if run.exit_code == 0 and getattr(args, "detailed_exitcode", False) and _pending(run, command):
        return EXIT_PENDING
    return run.exit_code


def _write_documents(args: argparse.Namespace, run: Run, redactor: Redactor, command: str,
                     inputs: Inputs) -> None:
    """The ``--format json|markdown`` document on stdout (and in ``results_dir``), ``--junit`` and ``-o``.

    The run's JSON document is built once, and only when one of them is written.
    """
    output = getattr(args, "output", None) if command != "plan" else None  # a plan's -o: the sealed plan
    sealed = getattr(args, "output", None) if command == "plan" else None
    wanted = args.format == "json" or getattr(args, "results_dir", None) or output
    document = ({**run_document(run, redactor.value), "slice": slice_document(args, inputs, command)}
                if wanted or sealed else {})
    text = _document_text(args, run, redactor, command, document) if wanted else ""
    if args.format == "json":
        print(text)
    if getattr(args, "results_dir", None):
        write_atomic(Path(args.results_dir) / f"{run.run_id}.json", text + "\n")
    if args.format == "markdown":
        print(redactor.text(render_markdown(run)), end="")
    if getattr(args, "junit", None):
        write_atomic(Path(args.junit), junit_document(run, redactor.text))
    if sealed:
        plan = {**document, "inputs": redactor.value(_fingerprint(args, inputs))}
        write_atomic(Path(sealed), seal_plan(plan, now=datetime.now(UTC), ttl=parse_ttl(args.plan_ttl),
                                             key=plan_key(os.environ)))
    elif output:
        write_atomic(Path(output), text + "\n")


def slice_document(args: argparse.Namespace, inputs: Inputs, command: str) -> dict[str, Any] | None:
    """What ``remedy merge`` checks of a sliced run: its slice, and a digest of what chose its hosts
    and tasks (the command, the content of every input file, -l, -t, --skip-tags, -e k=v)."""
    chosen = host_slice(args)
    if chosen is None:
        return None
    books = [book.path for book in inputs.playbooks]
    files = input_files(books, inputs.inventory.files if inputs.inventory else {}, args.extra_vars)
    what = {"command": "run" if command == "apply" else command, "files": sorted(files.values()),
            "extra_vars": sorted(e for e in args.extra_vars if not e.startswith("@")),
            "limit": args.limit, "tags": args.tags, "skip_tags": args.skip_tags}
    digest = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()
    return {"index": chosen[0], "count": chosen[1], "inputs": digest}


def _document_text(args: argparse.Namespace, run: Run, redactor: Redactor, command: str,
                   base: dict[str, Any]) -> str:
    """The run's JSON document (``--format json``, ``results_dir``, ``-o`` of a run), as text.

    ``base``: the run's document and its slice, which a saved plan holds too.
    """
    document = dict(base)
    if command == "diagnose":
        document["diagnosis"] = redactor.value(diagnosis_rows(run))
    if getattr(args, "trigger", None):
        document["trigger"] = redactor.value(args.trigger)
    return json.dumps(document, indent=2, sort_keys=True, default=str)


def _pending(run: Run, command: str) -> bool:
    """Whether a plan would change something (``plan``) or a fault was found (``diagnose``)."""
    if command == "diagnose":
        return any(f.state in (FaultState.FOUND, FaultState.BLOCKED) for h in run.hosts for f in h.faults)
    return any(r.predicted in ("change", "unknown") for r in run.all_results()
               if r.phase in ("tasks", "handlers"))


def _diagnose_all(args: argparse.Namespace) -> Callable[[list[str]], str] | None:
    """The command that diagnoses every bundled playbook on some hosts, for a run that named only
    some of them (None for a run of them all, or of a playbook file of the user's own)."""
    bundled = bundled_playbooks()
    named = [str(p) for p in args.playbooks]
    if not named or not all(p in bundled for p in named) or set(named) >= set(bundled):
        return None
    return lambda hosts: _fix_command(args, [], hosts, verb="diagnose")


def _fix_command(args: argparse.Namespace, books: list[str], hosts: list[str], verb: str = "run") -> str:
    """The ``remedy VERB`` command line for ``books`` on ``hosts``, with this run's inputs."""
    given = {Path(p).stem: p for p in args.playbooks}
    words = ["remedy", verb, *(given.get(b, b) for b in books)]
    for inventory in args.inventory:
        words += ["-i", inventory]
    for extra in args.extra_vars:
        words += ["-e", extra]
    words += ["-l", ",".join(hosts)]
    return shlex.join(words)


def _fingerprint(args: argparse.Namespace, inputs: Inputs) -> dict[str, Any]:
    """What ``apply`` replays, with absolute paths, and the sha256 of every file the plan read."""
    books = [os.path.abspath(book.path) for book in inputs.playbooks]
    inventory, extra = absolute_sources(args.inventory, args.extra_vars)
    files = input_files(books, inputs.inventory.files if inputs.inventory else {}, extra)
    return {"playbooks": books, "inventory": inventory, "extra_vars": extra, "limit": args.limit,
            "tags": args.tags, "skip_tags": args.skip_tags, "slice": getattr(args, "slice", None),
            "files": files, "roots": input_roots()}


def input_roots() -> dict[str, str]:
    """The directories a saved plan's paths may be relative to: the working dir, the bundled playbooks."""
    bundled = bundled_playbooks()
    return {"workdir": os.getcwd(),
            **({"bundled": str(next(iter(bundled.values())).parent)} if bundled else {})}


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
