"""From a notification to runs: resolve, guard, record, run, settle.

Alerts stage. A ``Dispatcher`` is shared by ``remedy trigger`` (one
notification, its runs one after another) and ``remedy listen`` (each POST
is ``receive``d at once, its runs go on the worker queue): ``receive``
decides every alert (``targets``, then ``guards`` under the store's lock)
and records each decision in the audit log (event ``alert``);
``execute`` starts one ``TriggeredRun`` through the command line's run
function (a normal run: audit log, JSON result, recap), re-checks the storm
first, and records what it fixed (event ``alert_run``, and the guards).
Nothing here raises out of ``execute``: a run that cannot start is logged.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from runner.alerts.guards import Admission, GuardState, admit, settle, storm_reason, withdraw
from runner.alerts.payload import Notification
from runner.alerts.rules import Mode, RuleSet
from runner.alerts.store import GuardStore, owner
from runner.alerts.targets import Decision, HostIndex, TriggeredRun, resolve
from runner.errors import RemedyError
from runner.output.audit import AuditLog
from runner.results import FaultState, Run

#: Runs one triggered run as a normal remedy run: (exit code, the finished run).
RunFunction = Callable[[TriggeredRun], tuple[int, Run]]
#: Where the dispatcher says what it decided and did, one line at a time.
LogFunction = Callable[[str], None]


@dataclass(frozen=True)
class Setup:
    """What the dispatcher decides with: rules, hosts, the guards' store and the audit log."""

    rules: RuleSet
    index: HostIndex
    store: GuardStore
    audit: AuditLog
    allowed: frozenset[str] | None = None  # the hosts alerts may act on (-l); None: all


class Dispatcher:
    """Decides alerts and starts their runs; safe to call from several threads."""

    def __init__(self, setup: Setup, run: RunFunction, log: LogFunction,
                 clock: Callable[[], float] = time.time) -> None:
        self.setup = setup
        self.run = run
        self.log = log
        self.clock = clock

    def receive(self, notification: Notification) -> tuple[list[Decision], tuple[TriggeredRun, ...]]:
        """Every alert's decision (in the notification's order) and the runs to start.

        Raises:
            InputError: the guard state cannot be read or written.
        """
        setup = self.setup
        triggers, ignored = resolve(notification, setup.rules, setup.index, setup.allowed)
        now = self.clock()

        def decide(state: GuardState) -> tuple[GuardState, Admission]:
            admission = admit(state, triggers, setup.rules.guards, now=now, owner=owner(now))
            return admission.state, admission

        admission = setup.store.transact(decide)
        order = {alert.fingerprint: i for i, alert in enumerate(notification.alerts)}
        decisions = sorted([*ignored, *admission.decisions], key=lambda d: order.get(d.fingerprint, 0))
        for decision in decisions:
            setup.audit.record("alert", **decision.fields())
            where = f" on {decision.host}" if decision.host else ""
            self.log(f"alert {decision.alertname}{where} [{decision.fingerprint}]: "
                     f"{decision.verdict}: {decision.reason}")
        return decisions, admission.runs

    def execute(self, triggered: TriggeredRun) -> int:
        """Start one triggered run; returns its exit code (never raises)."""
        triggered = self._storm_check(triggered)
        what = f"{triggered.mode} {' '.join(triggered.names)} on {','.join(triggered.hosts)}"
        self.log(f"alert run ({triggered.rule}): {what}")
        run: Run | None = None
        try:
            code, run = self.run(triggered)
        except RemedyError as error:
            code = error.exit_code
            self.log(f"alert run ({triggered.rule}): could not start: {error}")
        except Exception:  # noqa: BLE001 - a bug in one run must not stop the others
            code = 1
            self.log(f"alert run ({triggered.rule}): internal error:\n{traceback.format_exc()}")
        self._settle(triggered, code, run)
        return code

    def release(self, triggered: TriggeredRun, why: str) -> None:
        """A run that will not start (the queue is full, interrupted): its alerts are no longer in
        flight and its cooldown is not started, so that a retry of the alert runs."""
        self.setup.store.transact(lambda state: (withdraw(state, triggered), None))
        self.setup.audit.record("alert_run", **self._fields(triggered), triggered_run_id=None, exit_code=None,
                                not_run=why)
        self.log(f"alert run ({triggered.rule}): not run: {why}")

    def _storm_check(self, triggered: TriggeredRun) -> TriggeredRun:
        """A run that may change hosts only plans when a storm began since it was queued."""
        if triggered.mode is not Mode.RUN:
            return triggered
        guards, now = self.setup.rules.guards, self.clock()

        def check(state: GuardState) -> tuple[GuardState, str]:
            storm = storm_reason(state, guards, now)  # a plan starts no cooldown
            return (withdraw(state, triggered, in_flight=True) if storm else state), storm

        storm = self.setup.store.transact(check)
        if not storm:
            return triggered
        self.log(f"alert run ({triggered.rule}): {storm}")
        return dataclasses.replace(triggered, mode=Mode.PLAN, reason=storm)

    @staticmethod
    def _fields(triggered: TriggeredRun) -> dict[str, object]:
        return {"rule": triggered.rule, "mode": str(triggered.mode), "hosts": list(triggered.hosts),
                "playbooks": list(triggered.names), "fingerprints": list(triggered.fingerprints),
                "reason": triggered.reason}

    def _settle(self, triggered: TriggeredRun, code: int, run: Run | None) -> None:
        fixed = [(h.host, f.playbook) for h in (run.hosts if run else ()) for f in h.faults
                 if f.state is FaultState.FIXED] if triggered.mode is Mode.RUN else []
        guards, now = self.setup.rules.guards, self.clock()
        notices = self.setup.store.transact(lambda state: settle(state, triggered, fixed, guards, now))
        self.setup.audit.record("alert_run", **self._fields(triggered),
                                triggered_run_id=run.run_id if run else None, exit_code=code,
                                fixed=[f"{h} {p}" for h, p in fixed], escalations=notices)
        ended = f"run {run.run_id}" if run else "no run"
        self.log(f"alert run ({triggered.rule}): {ended}, exit {code}"
                 + (f", fixed {', '.join(f'{p} on {h}' for h, p in fixed)}" if fixed else ""))
        for notice in notices:
            self.log(f"ESCALATION: {notice}")
