"""Run one task on one host: conditions, loops, retries, the module, verdicts.

Run stage, called by ``playwalk`` and ``hostwalk``. ``run_task`` never raises: every
exception becomes the task's ``TaskResult`` (timed_out, indeterminate or
failed). In check mode only the module's read-only facts are probed; its
steps are never sent, so the probes of a task and of the play's tasks after
it are fetched together in one round trip (``probing``); outside check mode, so are
those of consecutive read-only tasks and the task after them. Arguments,
``become`` and conditions are rendered by ``rendering``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from runner.connection import Become
from runner.errors import (
    CommandInterrupted,
    CommandTimeout,
    ConnectionLost,
    InputError,
    RemedyError,
)
from runner.load import templating
from runner.model import Task
from runner.modules import MODULES
from runner.modules.base import Change, Command, Fact, Fetch, Module, Upload
from runner.results import CommandResult, Diff, Status, TaskResult
from runner.run.context import HostContext, probe_key
from runner.run.probing import prefetch
from runner.run.rendering import become_for, render_args, truth
from runner.run.transfer import fetch, upload

#: The failure message of a task whose ``failed_when`` held.
FAILED_WHEN = "failed_when condition is true"


@dataclass
class _Attempt:
    """One execution of the module (one loop item, one retry)."""

    changed: bool = False
    failed: str = ""
    predicted: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    diffs: list[Diff] = field(default_factory=list)
    commands: list[CommandResult] = field(default_factory=list)
    status: Status | None = None  # set for timed_out / indeterminate
    summary: str = ""


class TaskAbort(Exception):  # noqa: N818 - internal control flow
    """Stops the task with a definite status (timeout, lost connection)."""

    def __init__(self, status: Status, message: str, attempt: _Attempt) -> None:
        self.status = status
        self.message = message
        self.attempt = attempt
        super().__init__(message)


def run_task(ctx: HostContext, node_id: str, task: Task, scope: templating.Scope,
             *, phase: str = "tasks") -> TaskResult:
    """Run ``task`` on ``ctx.host``; never raises."""
    started = time.monotonic()
    base = TaskResult(host=ctx.host, task=node_id, name=task.label, status=Status.OK,
                      phase=phase, no_log=task.no_log)
    try:
        result = _run(ctx, task, scope, base)
    except TaskAbort as abort:
        result = _result(base, abort.attempt, abort.status, abort.message)
    except InputError as error:
        message = "; ".join(p.message for p in error.problems)
        result = replace(base, status=Status.FAILED, message=message,
                         data={"failed": True, "msg": message, "error": "input"})
    except RemedyError as error:
        result = replace(base, status=Status.FAILED, message=str(error))
    except Exception as error:  # noqa: BLE001 - no exception crosses the executor
        result = replace(base, status=Status.FAILED,
                         message=f"internal error: {type(error).__name__}: {error}")
    return replace(result, duration=time.monotonic() - started)


def _run(ctx: HostContext, task: Task, scope: templating.Scope, base: TaskResult) -> TaskResult:
    prefetch(ctx, task, scope)
    scope = scope.child(task.vars, templated=True)
    for condition in task.when:
        if not truth(condition, scope, task.location):
            return replace(base, status=Status.SKIPPED, message="condition false",
                           data={"skipped": True, "changed": False})
    if task.loop is None:
        attempt = _with_retries(ctx, task, scope)
        return _result(base, attempt)
    items = templating.render(task.loop, scope, task.location)
    if not isinstance(items, list):
        return replace(base, status=Status.FAILED,
                       message=f"loop must be a list, got {type(items).__name__}")
    total = _Attempt(predicted="no_change")
    results = []
    summaries: list[str] = []
    for index, item in enumerate(items):
        item_scope = scope.child({task.loop_var: item, "ansible_loop": {"index0": index,
                                                                      "index": index + 1}})
        one = _with_retries(ctx, task, item_scope)
        one.data[task.loop_var] = item
        results.append(one.data)
        if one.summary and (one.changed or one.predicted != "no_change"):
            summaries.append(one.summary)
        total.changed |= one.changed
        total.diffs += one.diffs
        total.commands += one.commands
        total.predicted = _merge_prediction(total.predicted, one.predicted)
        if one.failed and not total.failed:
            total.failed = f"item {index + 1}: {one.failed}"
        if one.status is not None:
            total.status = one.status
            break
    total.data = {"results": results, "changed": total.changed, "failed": bool(total.failed)}
    total.summary = _loop_summary(len(items), summaries)
    return _result(base, total)


def _loop_summary(count: int, summaries: list[str]) -> str:
    """One line for a whole loop: what its items will do or did."""
    if not summaries:
        return f"{count} item(s), nothing to change"
    shown = "; ".join(summaries[:3]) + (f"; and {len(summaries) - 3} more" if len(summaries) > 3 else "")
    return f"{len(summaries)} of {count} item(s): {shown}"


def _merge_prediction(current: str, new: str) -> str:
    order = ["no_change", "change", "unknown"]
    return max(current, new, key=lambda p: order.index(p) if p in order else 0)


def _with_retries(ctx: HostContext, task: Task, scope: templating.Scope) -> _Attempt:
    retries = task.retries if task.retries is not None else (3 if task.until else 0)
    attempts = 0
    while True:
        attempts += 1
        attempt = _attempt(ctx, task, scope)
        if task.until is None or ctx.check or attempt.status is not None:
            return attempt
        check_scope = scope.child(_registered(task, attempt))
        if all(truth(c, check_scope, task.location) for c in task.until):
            attempt.data["attempts"] = attempts
            return attempt
        if attempts > retries:
            attempt.failed = attempt.failed or f"'until' still false after {attempts} attempts"
            attempt.data["attempts"] = attempts
            return attempt
        if ctx.stop.wait(task.delay):
            return attempt


def _registered(task: Task, attempt: _Attempt) -> dict[str, Any]:
    data = {**attempt.data, "changed": attempt.changed, "failed": bool(attempt.failed)}
    names = {"result": data}
    if task.register:
        names[task.register] = data
    return names


def _attempt(ctx: HostContext, task: Task, scope: templating.Scope) -> _Attempt:
    module = MODULES[task.module]()
    args = render_args(ctx, task, module, scope)
    become = become_for(ctx, task, scope)
    env = {str(k): str(v) for k, v in
           templating.render({**ctx.play.environment, **task.environment}, scope, task.location).items()}
    attempt = _Attempt()
    facts = _probe(ctx, task, module, args, become, env, attempt)
    for secret in module.secrets(args, facts):
        ctx.redactor.add(secret)
    if ctx.check and ctx.foresight.planned:
        facts, depends = ctx.foresight.adjust(module.facts(args), facts)
        if depends and not module.reads_only(args):
            return _depends(ctx, task, module.facts(args), facts, depends, attempt)
    change = module.plan(args, facts)
    attempt.predicted = "unknown" if not change.predictable else ("change" if change.changed else "no_change")
    attempt.diffs = list(change.diffs)
    attempt.summary = change.summary
    if change.failed and ctx.check and ctx.pending_change:
        attempt.predicted = "unknown"
        attempt.summary = (f"cannot predict before earlier planned changes are made: "
                           f"{change.failed}")
        attempt.data = {**change.data, "check_mode": True}
        ctx.foresight.record(task.label, Change(changed=True), module.facts(args), facts)
        return attempt
    if change.failed:
        attempt.failed = change.failed
        attempt.data = {**change.data, "msg": change.failed}
        return _verdicts(task, scope, attempt)
    if ctx.check and change.steps:
        attempt.changed = change.changed
        attempt.data = {**change.data, "changed": change.changed, "check_mode": True}
        ctx.pending_change |= change.changed or not change.predictable
        if (change.changed or not change.predictable) and not module.reads_only(args):
            ctx.foresight.record(task.label, change, module.facts(args), facts)
        return attempt
    results = _send(ctx, task, change, become, env, attempt)
    outcome = module.outcome(args, facts, change, results)
    attempt.changed, attempt.failed = outcome.changed, outcome.failed
    attempt.summary = outcome.summary or attempt.summary
    if outcome.failed and outcome.changed and facts:
        attempt.changed = _changed_since(ctx, task, module, (args, become, env), facts, attempt)
    attempt.data = dict(outcome.data)
    return _verdicts(task, scope, attempt)


def _depends(ctx: HostContext, task: Task, declared: Mapping[str, Fact], facts: Mapping[str, Any],
             earlier: str, attempt: _Attempt) -> _Attempt:
    """Check mode: the plan of a task that reads what an earlier planned change leaves unknown."""
    attempt.predicted = "unknown"
    attempt.summary = f"effect depends on an earlier change ('{earlier}')"
    attempt.data = {"check_mode": True}
    ctx.pending_change = True
    ctx.foresight.record(task.label, Change(changed=True), declared, facts)  # its own paths: unknown too
    return attempt


def _changed_since(ctx: HostContext, task: Task, module: Module, call: tuple[Mapping[str, Any],
                   Become | None, Mapping[str, str]], before: Mapping[str, Any], attempt: _Attempt) -> bool:
    """Whether a failed task changed the host: its facts probed again differ from ``before``.

    A step that fails may have changed nothing (the first command refused) or
    something (a chown that stopped half-way); the module's own facts tell.
    When they cannot be read again, the task counts as changed.
    """
    args, become, env = call
    try:
        return _probe(ctx, task, module, args, become, env, attempt) != before
    except TaskAbort:
        return True


def _verdicts(task: Task, scope: templating.Scope, attempt: _Attempt) -> _Attempt:
    """Apply ``changed_when`` and ``failed_when`` to the attempt."""
    if task.changed_when is None and task.failed_when is None:
        return attempt
    check_scope = scope.child(_registered(task, attempt))
    if task.changed_when is not None:
        attempt.changed = all(truth(c, check_scope, task.location) for c in task.changed_when)
    if task.failed_when is not None:
        failed = all(truth(c, check_scope, task.location) for c in task.failed_when)
        attempt.failed = FAILED_WHEN if failed else ""
    return attempt


def _probe(ctx: HostContext, task: Task, module: Module, args: Mapping[str, Any],
           become: Become | None, env: Mapping[str, str], attempt: _Attempt) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for name, fact in module.facts(args).items():
        cached = ctx.probes.results.get(probe_key(fact.command, become, env))
        if cached is not None:
            attempt.commands.append(cached)
            facts[name] = fact.parse(cached)
            continue
        result = _call(ctx, task, fact.command, attempt, become=become, env=env, contained=True)
        facts[name] = fact.parse(result)
    return facts


def _send(ctx: HostContext, task: Task, change: Change, become: Become | None,
          env: Mapping[str, str], attempt: _Attempt) -> list[CommandResult]:
    results: list[CommandResult] = []
    if change.steps:
        ctx.probes.clear()
    for step in change.steps:
        if isinstance(step, Command):
            result = _call(ctx, task, step.command, attempt, become=become, env=env, stdin=step.stdin,
                           contained=step.contained)
            ok = result.rc in step.ok_rc
        elif isinstance(step, Upload):
            result = _guarded(ctx, task, attempt, lambda s=step: upload(
                ctx.conn, s, become=become, timeout=task.timeout, run_id=ctx.run_id))
            ok = result.rc == 0
        else:
            assert isinstance(step, Fetch)
            result = fetch(ctx.conn, step, ctx.host)
            attempt.commands.append(result)
            ok = result.rc == 0
        results.append(result)
        if not ok:
            break
    return results


def _call(ctx: HostContext, task: Task, command: str, attempt: _Attempt, *, become: Become | None,
          env: Mapping[str, str], stdin: bytes | None = None, contained: bool = False) -> CommandResult:
    return _guarded(ctx, task, attempt, lambda: ctx.conn.run(
        command, stdin=stdin, timeout=task.timeout, become=become, env=env or None, contained=contained))


def _guarded(ctx: HostContext, task: Task, attempt: _Attempt, call: Any) -> CommandResult:
    try:
        result: CommandResult = call()
    except CommandTimeout as error:
        if isinstance(error.result, CommandResult):
            attempt.commands.append(error.result)
        raise TaskAbort(Status.TIMED_OUT, f"timed out after {task.timeout or 'the default'}s; "
                        "the command's process group was killed", attempt) from None
    except ConnectionLost as error:
        if isinstance(error.result, CommandResult):
            attempt.commands.append(error.result)
        raise TaskAbort(Status.INDETERMINATE, f"connection lost while the command ran; its effect "
                        f"is unknown and it will not be re-run ({error})", attempt) from None
    except CommandInterrupted as error:
        if isinstance(error.result, CommandResult):
            attempt.commands.append(error.result)
        raise TaskAbort(Status.INDETERMINATE, "interrupted: the command was killed mid-way; "
                        "its effect is unknown", attempt) from None
    attempt.commands.append(result)
    return result


def _result(base: TaskResult, attempt: _Attempt, status: Status | None = None,
            message: str = "") -> TaskResult:
    if status is None:
        status = attempt.status or (Status.FAILED if attempt.failed else
                                    Status.CHANGED if attempt.changed else Status.OK)
    data = {**attempt.data, "changed": attempt.changed, "failed": bool(attempt.failed)}
    if attempt.failed:
        data.setdefault("msg", attempt.failed)
    return replace(base, status=status, message=message or attempt.failed or attempt.summary,
                   changed=attempt.changed, predicted=attempt.predicted,
                   diffs=tuple(attempt.diffs), commands=tuple(attempt.commands), data=data)


def ignore_failure(result: TaskResult) -> TaskResult:
    """A failed result turned into ``ok`` for ``ignore_errors: true``."""
    if result.status is not Status.FAILED:
        return result
    return replace(result, status=Status.OK, message=f"failed (ignored): {result.message}")


def remember(task: Task, result: TaskResult, registered: dict[str, Any]) -> None:
    """Store what a finished task makes visible to later tasks (register, set_fact)."""
    if task.register:
        registered[task.register] = dict(result.data)
    if task.module == "set_fact" and result.status is not Status.FAILED:
        registered.update(result.data.get("ansible_facts", {}))


__all__ = ["FAILED_WHEN", "ignore_failure", "remember", "run_task"]
