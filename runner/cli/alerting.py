"""The ``trigger`` and ``listen`` commands: Alertmanager notifications -> normal remedy runs.

Command line, beside ``commands``. Both load the rules file, the inventory
and the rules' playbooks first (every problem is exit 4 before anything is
served or run), open the audit log and the guards' state beside it, and
build one ``alerts.Dispatcher`` whose run function is ``commands``'s own:
a triggered run is ``remedy run`` (or ``remedy plan``) with the rule's
playbooks, ``-l`` the alert's host, the rule's vars as ``-e`` (label values
marked ``!unsafe``: never rendered) and this command's other options, so it
writes the same audit records, recap and JSON document (also to
``--results-dir``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from runner.alerts.dispatch import Dispatcher, Setup
from runner.alerts.payload import MAX_PAYLOAD_BYTES, read_notification
from runner.alerts.rules import require_rules
from runner.alerts.server import Receiver, ServerOptions
from runner.alerts.store import GuardStore, state_path
from runner.alerts.targets import HostIndex, TriggeredRun, Verdict
from runner.cli.commands import open_audit, run_and_report
from runner.cli.parser import DEFAULT_AUDIT
from runner.errors import InputError, Location
from runner.load.inputs import load_inputs
from runner.load.inventory.patterns import select_hosts
from runner.output.audit import AuditLog
from runner.redaction import Redactor
from runner.results import Run, worst_exit

#: Exit code of ``trigger`` when an alert was escalated: its host is left unfixed.
EXIT_ESCALATED = 2
EXIT_INTERRUPTED = 99


@dataclass(frozen=True)
class _Prepared:
    dispatcher: Dispatcher
    audit: AuditLog


def trigger_command(args: argparse.Namespace) -> int:
    """``remedy trigger ALERT.json -r rules.yml -i INV``: one notification, its runs one after another."""
    notification = read_notification(_payload_bytes(args.alert), args.alert)
    prepared = _prepare(args, threading.Event(), "remedy trigger")
    try:
        decisions, runs = prepared.dispatcher.receive(notification)
        code = EXIT_ESCALATED if any(d.verdict is Verdict.ESCALATED for d in decisions) else 0
        for index, triggered in enumerate(runs):
            result = prepared.dispatcher.execute(triggered)
            code = worst_exit(code, result)
            if result == EXIT_INTERRUPTED:
                for rest in runs[index + 1:]:
                    prepared.dispatcher.release(rest, "interrupted")
                return EXIT_INTERRUPTED
        return code
    finally:
        prepared.audit.close()


def _payload_bytes(name: str) -> bytes:
    """The payload file's bytes (``-`` reads stdin), at most one byte beyond the limit."""
    try:
        if name == "-":
            return sys.stdin.buffer.read(MAX_PAYLOAD_BYTES + 1)
        with open(name, "rb") as handle:
            return handle.read(MAX_PAYLOAD_BYTES + 1)
    except OSError as error:
        raise InputError.at(Location(name), f"cannot read the alert payload: {error.strerror}",
                            "pass the file an Alertmanager webhook sent (see examples/alerts/payloads/)") \
            from None


def listen_command(args: argparse.Namespace) -> int:
    """``remedy listen -r rules.yml -i INV``: serve Alertmanager's webhook until SIGTERM, then drain."""
    options = _server_options(args, _token(args))
    stop = threading.Event()
    prepared = _prepare(args, stop, "remedy listen")
    receiver = Receiver(prepared.dispatcher, options, stop)
    gc.enable()  # a long-lived process: start-up's objects are collected as usual
    try:
        host, port = receiver.start()
    except OSError as error:
        prepared.audit.close()
        raise InputError.at(Location("<command line --bind/--port>"),
                            f"cannot listen on {args.bind} port {args.port}: {error.strerror}",
                            "pick another --port, or stop what holds it") from None
    shown = f"[{host}]" if ":" in host else host
    auth = "bearer token" if options.token else "NO auth"
    _say("remedy listen", f"serving http://{shown}:{port}/alerts ({auth}, {options.workers} worker(s), "
         f"queue of {options.queue_size}); SIGTERM drains and stops")
    try:
        return _serve_until_signalled(receiver)
    finally:
        prepared.audit.close()


def _serve_until_signalled(receiver: Receiver) -> int:
    """Wait for SIGTERM/SIGINT, then drain; a second signal stops the running runs."""
    signalled = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        if signalled.is_set():
            _say("remedy listen", "second signal: stopping the running runs, dropping the queued ones")
            receiver.abort()
        signalled.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        signalled.wait()
        _say("remedy listen", f"stopping: no new alerts; finishing {receiver.queue.qsize()} queued run(s) "
             "and the running ones (signal again to stop them)")
        receiver.drain()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _say("remedy listen", "stopped")
    return EXIT_INTERRUPTED if receiver.stop.is_set() else 0


def _server_options(args: argparse.Namespace, token: str | None) -> ServerOptions:
    """``listen``'s numbers checked (exit 4 before anything is loaded or bound)."""
    limits = {"--port": (args.port, 0, 65535), "--max-body": (args.max_body, 1, 64 * 1024 * 1024),
              "--queue-size": (args.queue_size, 1, 100_000), "--workers": (args.workers, 1, 64)}
    for option, (value, low, high) in limits.items():
        if not low <= value <= high:
            raise InputError.at(Location(f"<command line {option}>"),
                                f"{option} {value} is not between {low} and {high}")
    return ServerOptions(bind=args.bind, port=args.port, token=token, max_body=args.max_body,
                         queue_size=args.queue_size, workers=args.workers)


def _token(args: argparse.Namespace) -> str | None:
    """The bearer token from ``--token-env``'s variable; None with ``--no-auth`` (loopback only)."""
    if args.no_auth:
        if args.bind not in ("127.0.0.1", "::1", "localhost") and not args.bind.startswith("127."):
            raise InputError.at(Location("<command line --no-auth>"),
                                f"--no-auth on {args.bind}: anyone who reaches it could run playbooks",
                                "keep --no-auth on a loopback address, or set a token")
        return None
    token = os.environ.get(args.token_env, "")
    if len(token) < 16:
        what = "is not set" if not token else "is shorter than 16 characters"
        raise InputError.at(Location(f"<environment {args.token_env}>"), f"the listener's token {what}",
                            f"export {args.token_env}=$(openssl rand -hex 32) and give Alertmanager the "
                            "same token (authorization: credentials_file); or --no-auth on loopback")
    return token


def _prepare(args: argparse.Namespace, stop: threading.Event, who: str) -> _Prepared:
    """Rules, inventory, playbooks, audit log and guard state checked; the dispatcher built."""
    rules = require_rules(args.rules)
    placeholders = {name: "" for rule in rules.rules for name in rule.vars}
    inputs = load_inputs(rules.playbooks, args.inventory,
                         [*args.extra_vars, *([json.dumps(placeholders)] if placeholders else [])])
    assert inputs.inventory is not None  # -i is required
    allowed = frozenset(select_hosts(inputs.inventory, args.limit)) if args.limit else None
    audit_path = Path(args.audit_log) if args.audit_log else DEFAULT_AUDIT
    audit = open_audit(str(audit_path), Redactor())
    store = GuardStore(Path(args.state) if args.state else state_path(audit_path))
    try:
        store.load()
    except InputError:
        audit.close()
        raise
    results = Path(args.results_dir) if args.results_dir else audit_path.parent / "runs"
    setup = Setup(rules, HostIndex.of(inputs.inventory), store, audit, allowed)
    run = _run_function(args, results, stop)
    return _Prepared(Dispatcher(setup, run, lambda line: _say(who, line)), audit)


def _run_function(args: argparse.Namespace, results: Path,
                  stop: threading.Event) -> Callable[[TriggeredRun], tuple[int, Run]]:
    def run(triggered: TriggeredRun) -> tuple[int, Run]:
        namespace = argparse.Namespace(**vars(args))
        namespace.command, namespace.check = str(triggered.mode), False
        namespace.playbooks = list(triggered.playbooks)
        namespace.limit = ",".join(triggered.hosts)
        namespace.extra_vars = [*args.extra_vars, *([unsafe_vars(triggered.vars)] if triggered.vars else [])]
        namespace.output = namespace.compare_plan = None
        namespace.stop, namespace.results_dir = stop, str(results)
        namespace.trigger = {"rule": triggered.rule, "mode": str(triggered.mode),
                             "alerts": list(triggered.fingerprints), "reason": triggered.reason}
        return run_and_report(namespace)

    return run


def unsafe_vars(values: Any) -> str:
    """``-e`` text for ``values`` with every string tagged ``!unsafe`` (used literally, never rendered)."""
    if isinstance(values, str):
        return "!unsafe " + json.dumps(values, ensure_ascii=False)
    if isinstance(values, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {unsafe_vars(v)}" for k, v in values.items()) + "}"
    if isinstance(values, (list, tuple)):
        return "[" + ", ".join(unsafe_vars(v) for v in values) + "]"
    return json.dumps(values)


def _say(who: str, line: str) -> None:
    print(f"{who}: {line}", file=sys.stderr, flush=True)
