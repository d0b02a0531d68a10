"""The ``run``, ``plan``, ``diagnose`` and ``apply`` commands: wiring and output.

Top layer, beside ``cli``: turns parsed arguments into options, opens the
audit log (before any host is contacted: no audit, no run), installs the
signal handlers, calls ``executor.execute`` and renders the results.
"""

from __future__ import annotations

import argparse
import gc
import getpass
import hashlib
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from runner import report
from runner.audit import AuditLog, unfinished_runs
from runner.connection import import_ssh
from runner.errors import InputError, Location, Problem
from runner.events import Listener, Listeners, NullListener
from runner.executor import ConnectOptions, HostPlan, RunOptions, execute, plan_hosts
from runner.inputs import Inputs, bundled_playbooks, load_inputs
from runner.redaction import Redactor
from runner.results import HostResult, Run, Status, TaskResult

DEFAULT_AUDIT = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / \
    "remedy" / "audit.jsonl"


class Console(NullListener):
    """Live progress on a stream: concise by default, commands with -v, nothing with -q."""

    def __init__(self, out: TextIO, redactor: Redactor, *, verbose: int, quiet: bool,
                 diff: bool) -> None:
        self.out = out
        self.redactor = redactor
        self.verbose = verbose
        self.quiet = quiet
        self.diff = diff
        self._lock = threading.Lock()

    def _print(self, text: str) -> None:
        with self._lock:
            print(self.redactor.text(text), file=self.out, flush=True)

    def run_started(self, run_id: str, hosts: Sequence[str], *, check: bool) -> None:
        if not self.quiet:
            mode = " (check mode: nothing will be changed)" if check else ""
            self._print(f"remedy run {run_id}: {len(hosts)} host(s){mode}")

    def task_finished(self, result: TaskResult) -> None:
        if self.quiet:
            return
        if not self.verbose and result.status in (Status.SKIPPED, Status.HEALTHY, Status.NOT_RUN) \
                and result.message in ("not notified", "verification passed", "condition false",
                                       "check mode: runs after a real fix"):
            return
        self._print(report.render_result_line(result, verbose=self.verbose, diff=self.diff,
                                              redact=self.redactor.text))

    def host_finished(self, result: HostResult) -> None:
        if not self.quiet and self.verbose:
            self._print(f"[{result.host}] done: {result.status}")


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

    return RunOptions(
        check=check, diagnose_only=diagnose_only, forks=args.forks, limit=args.limit,
        tags=split(args.tags), skip_tags=split(args.skip_tags), lock_timeout=args.lock_timeout,
        connect=ConnectOptions(
            user=args.user, key_file=args.private_key, password=ssh_password,
            become_password=become_password, known_hosts=args.known_hosts,
            accept_new_host_keys=args.accept_new_host_keys, ssh_config=args.ssh_config,
            connect_timeout=args.connect_timeout),
    )


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
    saved = _load_plan(args.compare_plan) if getattr(args, "compare_plan", None) else None
    run, redactor = _execute(args)
    code = _finish(args, run, redactor, args.command)
    if saved is not None:
        code = max(code, _report_plan_comparison(saved, run, args))
    return code


def _execute(args: argparse.Namespace) -> tuple[Run, Redactor]:
    command = args.command
    check = command in ("plan", "diagnose") or getattr(args, "check", False)
    playbooks = args.playbooks or list(bundled_playbooks())
    inputs = load_inputs(playbooks, args.inventory, args.extra_vars)
    options = _options(args, check=check, diagnose_only=command == "diagnose")
    hosts = plan_hosts(inputs, options)  # selection errors: exit 4 before any connection
    redactor = Redactor([options.connect.password or "", options.connect.become_password or ""])
    for host in hosts:
        redactor.add(host.params.password)
        redactor.add(host.params.become_password)
    audit = _open_audit(args.audit_log, redactor)
    for start in unfinished_runs(audit.path):
        print(f"remedy: warning: the run {start.get('run_id')} started {start.get('ts')} did not finish "
              f"(no run_end in {audit.path}); its hosts may be half-changed, and uploads remove the "
              "temp files it left", file=sys.stderr)
    console = Console(sys.stderr, redactor, verbose=args.verbose, quiet=args.quiet, diff=args.diff)
    stop = threading.Event()
    try:
        with _Signals(stop):
            run = _execute_planned(inputs, options, hosts, Listeners([audit, console]), stop)
    finally:
        audit.close()
    return run, redactor


def _execute_planned(inputs: Inputs, options: RunOptions, hosts: Sequence[HostPlan], listener: Listener,
                     stop: threading.Event | None = None) -> Run:
    """``execute`` the planned ``hosts``, once start-up is settled."""
    _settle_start_up(hosts)
    return execute(inputs, options, listener, stop=stop, hosts=hosts)


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


def _load_plan(path: str) -> dict[str, Any]:
    try:
        saved: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
        saved["hosts"], saved["inputs"]  # noqa: B018 - shape check
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError.at(Location(path), f"not a saved remedy plan: {error}",
                            "create one with 'remedy plan ... -o plan.json'") from None
    return saved


def compare_with_plan(saved: dict[str, Any], run: Run) -> list[str]:
    """Per host x task: did the real run change exactly what the saved plan predicted?"""
    planned = {(h["host"], t["task"]): t.get("predicted") for h in saved["hosts"] for t in h["tasks"]
               if t.get("phase") in ("tasks", "handlers")}
    lines = []
    for result in run.all_results():
        key = (result.host, result.task)
        if key not in planned or result.phase not in ("tasks", "handlers"):
            continue
        expected = planned[key]
        if expected == "unknown":
            continue
        if (expected == "change") != result.changed:
            lines.append(f"{result.host} {result.task}: planned {expected or 'nothing'}, "
                         f"{'changed' if result.changed else 'changed nothing'} ({result.status})")
    return lines


def _report_plan_comparison(saved: dict[str, Any], run: Run, args: argparse.Namespace) -> int:
    out = sys.stderr if args.format == "json" else sys.stdout
    mismatches = compare_with_plan(saved, run)
    if mismatches:
        print("The run differs from the saved plan:", file=out)
        for line in mismatches:
            print("  " + line, file=out)
        return 2
    print("The run changed exactly what the saved plan predicted.", file=out)
    return 0


def _finish(args: argparse.Namespace, run: Run, redactor: Redactor, command: str) -> int:
    out = sys.stderr if args.format == "json" else sys.stdout
    if command == "diagnose":
        print(redactor.text(render_diagnosis(run)), file=out)
    elif run.check:
        print(redactor.text(report.render_plan(run)), file=out)
    else:
        mismatches = prediction_mismatches(run)
        if mismatches:
            print("Plan check: these tasks did not do what their plan predicted:", file=out)
            for line in mismatches:
                print("  " + redactor.text(line), file=out)
    print(redactor.text(report.render_recap(run)), file=out)
    if args.format == "json":
        document = report.run_document(run, redactor.value)
        if command == "diagnose":
            document["diagnosis"] = redactor.value(diagnosis_rows(run))
        print(json.dumps(document, indent=2, sort_keys=True, default=str))
    if getattr(args, "junit", None):
        _write_atomic(Path(args.junit), report.junit_document(run, redactor.text))
    if getattr(args, "output", None):
        _write_atomic(Path(args.output), json.dumps(
            {**report.run_document(run, redactor.value), "inputs": _fingerprint(args)},
            indent=2, sort_keys=True, default=str))
    return run.exit_code


def prediction_mismatches(run: Run) -> list[str]:
    """Tasks whose real effect differs from the prediction made just before they ran."""
    lines = []
    for result in run.all_results():
        if result.phase not in ("tasks", "handlers") or result.status not in (Status.OK, Status.CHANGED):
            continue
        if result.predicted == "change" and not result.changed:
            lines.append(f"{result.host} {result.task}: predicted a change, changed nothing")
        elif result.predicted == "no_change" and result.changed:
            lines.append(f"{result.host} {result.task}: predicted no change, but changed")
    return lines


def diagnosis_rows(run: Run) -> list[dict[str, Any]]:
    """Hosts x playbooks: is the playbook's fault present, with the evidence."""
    rows = []
    for host in run.hosts:
        evidence: dict[str, list[str]] = {}
        states: dict[str, str] = {}
        for result in host.results:
            book = result.task.split(":", 1)[0]
            states.setdefault(book, "healthy")
            if result.phase == "diagnose" and result.message.startswith("fault found"):
                evidence.setdefault(book, []).append(result.message[len("fault found: "):])
            if result.status in (Status.UNREACHABLE, Status.FAILED, Status.TIMED_OUT,
                                 Status.INDETERMINATE) and states[book] == "healthy":
                states[book] = f"{result.status}: {result.message}"  # the first cause, not its echoes
        for book, state in states.items():
            found = evidence.get(book, [])
            rows.append({"host": host.host, "playbook": book,
                         "diagnosis": "fault" if found else state, "evidence": found})
    return rows


def render_diagnosis(run: Run) -> str:
    """The diagnosis table."""
    rows = [[r["host"], r["playbook"], r["diagnosis"].upper() if r["diagnosis"] == "fault"
             else r["diagnosis"], "; ".join(r["evidence"])[:120]] for r in diagnosis_rows(run)]
    return report.table(rows, ["host", "playbook", "diagnosis", "evidence"])


def _fingerprint(args: argparse.Namespace) -> dict[str, Any]:
    def digest(path: str) -> str:
        try:
            return hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            return ""

    from runner.inputs import resolve_playbook_path

    books = [str(resolve_playbook_path(p).resolve()) for p in args.playbooks]
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
    saved = _load_plan(args.plan_file)
    inputs_info = saved["inputs"]
    for path, sha in inputs_info["playbooks"].items():
        current = hashlib.sha256(Path(path).read_bytes()).hexdigest() if Path(path).exists() else ""
        if current != sha:
            raise InputError.at(Location(path), "the playbook changed since the plan was made",
                                "make and review a new plan")
    namespace = _replay_args(args, inputs_info)
    namespace.command, namespace.check = "plan", True
    fresh = _silent_check(namespace)
    drift = _plan_drift(saved, fresh)
    if drift:
        raise InputError([Problem(Location(args.plan_file), line) for line in drift[:20]])
    namespace.command, namespace.check = "run", False
    run, redactor = _execute(namespace)
    code = _finish(namespace, run, redactor, "run")
    return max(code, _report_plan_comparison(saved, run, namespace))


def _replay_args(args: argparse.Namespace, info: dict[str, Any]) -> argparse.Namespace:
    from runner.cli import build_parser

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


def _plan_drift(saved: dict[str, Any], fresh: Run) -> list[str]:
    before = {(h["host"], t["task"]): (t["status"], t["predicted"])
              for h in saved["hosts"] for t in h["tasks"]}
    after = {(r.host, r.task): (str(r.status), r.predicted or None) for r in fresh.all_results()}
    drift = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            drift.append(f"plan drift on {key[0]} {key[1]}: planned {before.get(key)}, "
                         f"now {after.get(key)}; make and review a new plan")
    return drift
