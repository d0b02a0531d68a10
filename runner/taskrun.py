"""Run one task on one host: conditions, loops, retries, the module, verdicts.

Stages layer, called by ``hostwalk``. ``run_task`` never raises: every
exception becomes the task's ``TaskResult`` (timed_out, indeterminate or
failed). In check mode only the module's read-only facts are probed; its
steps are never sent, so the probes of a task and of the play's tasks after
it are fetched together in one round trip (``ProbeCache``); outside check mode, so are
those of consecutive read-only tasks and the task after them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runner import templating
from runner.argcheck import check_value, confine, to_bool
from runner.connection import Become, Connection
from runner.connection.batch import run_batch
from runner.errors import (
    CommandInterrupted,
    CommandTimeout,
    ConnectionLost,
    InputError,
    Location,
    RemedyError,
)
from runner.model import SECTIONS, Play, Task
from runner.modules import MODULES
from runner.modules.base import Change, Command, Fetch, Module, Outcome, Upload
from runner.results import CommandResult, Diff, Status, TaskResult
from runner.transfer import fetch, upload

#: The failure message of a task whose ``failed_when`` held.
FAILED_WHEN = "failed_when condition is true"
#: A probe command with the privilege and environment it runs with.
ProbeKey = tuple[str, Become | None, tuple[tuple[str, str], ...]]


@dataclass
class ProbeCache:
    """Probe results fetched ahead of their tasks; forgotten whenever a step is sent."""

    results: dict[ProbeKey, CommandResult] = field(default_factory=dict)
    considered: set[int] = field(default_factory=set)  # id() of tasks already looked ahead at

    def clear(self) -> None:
        self.results.clear()
        self.considered.clear()


@dataclass
class HostContext:
    """What a task needs to know about its host and run (one per host x play)."""

    host: str
    conn: Connection
    play: Play
    playbook_dir: Path
    check: bool = False
    become_password: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    secrets: set[str] = field(default_factory=set)
    probes: ProbeCache = field(default_factory=ProbeCache)
    #: Check mode: an earlier task of this host predicted a change that was not made,
    #: so facts read now may not be what the real run will see.
    pending_change: bool = False


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
    _prefetch(ctx, task, scope)
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


def truth(condition: Any, scope: Mapping[str, Any], location: Location) -> bool:
    """Whether a ``when``-like condition (a boolean or an expression) holds."""
    if isinstance(condition, bool):
        return condition
    value = templating.evaluate(str(condition), scope, location)
    result = to_bool(value)
    return bool(value) if result is None else result


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
    args = _render_args(ctx, task, module, scope)
    become = _become(ctx, task, scope)
    env = {str(k): str(v) for k, v in
           templating.render({**ctx.play.environment, **task.environment}, scope, task.location).items()}
    attempt = _Attempt()
    facts = _probe(ctx, task, module, args, become, env, attempt)
    change = module.plan(args, facts)
    attempt.predicted = "unknown" if not change.predictable else ("change" if change.changed else "no_change")
    attempt.diffs = list(change.diffs)
    attempt.summary = change.summary
    if change.failed and ctx.check and ctx.pending_change:
        attempt.predicted = "unknown"
        attempt.summary = (f"cannot predict before earlier planned changes are made: "
                           f"{change.failed}")
        attempt.data = {**change.data, "check_mode": True}
        return attempt
    if change.failed:
        attempt.failed = change.failed
        attempt.data = {**change.data, "msg": change.failed}
        return _verdicts(task, scope, attempt)
    if ctx.check and change.steps:
        attempt.changed = change.changed
        attempt.data = {**change.data, "changed": change.changed, "check_mode": True}
        ctx.pending_change |= change.changed or not change.predictable
        return attempt
    results = _send(ctx, task, change, become, env, attempt)
    outcome = module.outcome(args, facts, change, results)
    attempt.changed, attempt.failed = outcome.changed, outcome.failed
    attempt.data = dict(outcome.data)
    return _verdicts(task, scope, attempt)


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
        cached = ctx.probes.results.get(_probe_key(fact.command, become, env))
        if cached is not None:
            attempt.commands.append(cached)
            facts[name] = fact.parse(cached)
            continue
        result = _call(ctx, task, fact.command, attempt, become=become, env=env, contained=True)
        facts[name] = fact.parse(result)
    return facts


def _probe_key(command: str, become: Become | None, env: Mapping[str, str]) -> ProbeKey:
    return (command, become, tuple(sorted(env.items())))


def _prefetch(ctx: HostContext, task: Task, scope: templating.Scope) -> None:
    """Fetch the probes of ``task`` and of the tasks after it in one round trip, where sound.

    In check mode no step is sent, so the probes of every later task of the
    section come along. Outside it, only while the tasks are read-only
    (``stat``, ``assert``, ...), up to and including the first task that may
    change the host: its probe still runs before its own steps. Any step sent
    forgets every result fetched ahead. Tasks are rendered ahead with the scope
    known now; one whose rendering needs more (a later ``register``) or whose
    ``when`` is false is left out and probes on its own when it runs, and a
    result is used only by a task that renders exactly the same command.
    """
    cache = ctx.probes
    if id(task) in cache.considered or not (ctx.check or _reads_only(task)):
        return
    sections = (getattr(ctx.play, name) for name in SECTIONS)
    section = next((tasks for tasks in sections if any(t is task for t in tasks)), ())
    start = next((i for i, t in enumerate(section) if t is task), len(section))
    wanted: dict[ProbeKey, str] = {}
    for other in section[start:]:
        if id(other) in cache.considered:
            continue
        cache.considered.add(id(other))
        for key, command in _ahead(ctx, other, scope):
            if key not in cache.results:
                wanted.setdefault(key, command)
        if not (ctx.check or _reads_only(other)):
            break
    group = [(k, c) for k, c in wanted.items() if k[1:] == next(iter(wanted))[1:]]
    if len(group) < 2:
        return
    try:
        results = run_batch(ctx.conn, [c for _, c in group], become=group[0][0][1],
                            env=dict(group[0][0][2]), timeout=task.timeout)
    except Exception:  # noqa: BLE001 - each task then probes on its own and reports what went wrong
        return
    for (key, _), result in zip(group, results or [], strict=False):
        cache.results[key] = result


def _reads_only(task: Task) -> bool:
    module = MODULES.get(task.module)
    return module is not None and not task.is_block and module.read_only


def _ahead(ctx: HostContext, task: Task, scope: templating.Scope) -> list[tuple[ProbeKey, str]]:
    """The probe commands ``task`` would send if it ran now; [] when that is not known yet."""
    if task.is_block or task.loop is not None or task.module not in MODULES:
        return []
    try:
        inner = scope.child(task.vars, templated=True)
        if not all(truth(c, inner, task.location) for c in task.when):
            return []
        module = MODULES[task.module]()
        args = _render_args(ctx, task, module, inner)
        become = _become(ctx, task, inner)
        env = {str(k): str(v) for k, v in templating.render(
            {**ctx.play.environment, **task.environment}, inner, task.location).items()}
        return [(_probe_key(f.command, become, env), f.command) for f in module.facts(args).values()]
    except Exception:  # noqa: BLE001 - a task that cannot be rendered yet is simply not prefetched
        return []


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
                ctx.conn, s, become=become, timeout=task.timeout))
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


def _become(ctx: HostContext, task: Task, scope: templating.Scope) -> Become | None:
    enabled = task.become if task.become is not None else ctx.play.become
    if not enabled:
        return None
    user = task.become_user or ctx.play.become_user or "root"
    user = str(templating.render(user, scope, task.location))
    return Become(user=user, password=ctx.become_password)


def _render_args(ctx: HostContext, task: Task, module: Module, scope: templating.Scope) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for name, value in task.args.items():
        spec = module.args.get(name)
        if spec is not None and spec.type == "expr":
            args[name] = _evaluate_expr(name, value, scope, task.location)
            continue
        rendered = templating.render(value, scope, task.location)
        if spec is not None:
            rendered, problem = check_value(spec, rendered)
            if problem:
                raise InputError.at(task.location, f"argument '{name}' {problem[0]}", problem[1])
            if spec.type in ("local_file", "template_file"):
                rendered = _read_local(ctx, str(rendered), spec.type, scope, task.location)
            if spec.secret:
                ctx.secrets.add(str(rendered))
        args[name] = rendered
    return args


def _evaluate_expr(name: str, value: Any, scope: templating.Scope, location: Location) -> Any:
    if name == "var":
        return (str(value), templating.evaluate(str(value), scope, location))
    items = value if isinstance(value, list) else [value]
    return [(str(item), item if isinstance(item, bool) else
             bool(truth(item, scope, location))) for item in items]


def _read_local(ctx: HostContext, path: str, kind: str, scope: templating.Scope,
                location: Location) -> str:
    candidates = [path] if path.startswith("/") else \
        [path, f"templates/{path}" if kind == "template_file" else f"files/{path}"]
    for candidate in candidates:
        target = confine(ctx.playbook_dir, candidate)
        if target is None:
            raise InputError.at(location, f"'{path}' is outside the playbook's directory",
                                "keep templates and files beside the playbook")
        if target.is_file():
            text = target.read_text(encoding="utf-8")
            if kind == "template_file":
                return str(templating.render(text, scope, Location(str(target))))
            return text
    raise InputError.at(location, f"file '{path}' not found next to the playbook",
                        f"looked in {ctx.playbook_dir}")


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


__all__ = ["HostContext", "Outcome", "ignore_failure", "remember", "run_task", "truth"]
