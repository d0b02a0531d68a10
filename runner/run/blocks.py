"""``block`` / ``rescue`` / ``always``: one graph node, run as a unit.

Run stage, called by ``playwalk``. The block's tasks run in order and stop
at the first failure; then ``rescue`` runs (a successful rescue clears the
failure), and ``always`` runs in every case. The block's single
``TaskResult`` carries its children's results in ``data["results"]``, each
concealed when its task is ``no_log``; ``no_log`` on the block holds for every
task in it. No task of a block starts once the run is stopped.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from runner.load import templating
from runner.model import Task
from runner.redaction import conceal
from runner.results import STOPPED, Status, TaskResult
from runner.run.context import HostContext
from runner.run.rendering import truth
from runner.run.taskrun import ignore_failure, remember, run_task


def run_block(ctx: HostContext, node_id: str, block: Task, scope: templating.Scope,
              phase: str, registered: dict[str, Any]) -> TaskResult:
    """Run a block node; never raises."""
    children: list[TaskResult] = []
    scope = scope.child(block.vars, templated=True)
    for condition in block.when:
        if not truth(condition, scope, block.location):
            return TaskResult(ctx.host, node_id, block.label, Status.SKIPPED,
                              message="condition false", phase=phase)

    def run_list(tasks: tuple[Task, ...]) -> TaskResult | None:
        return _run_list(ctx, node_id, tasks, scope, phase, registered, children,
                         block_no_log=block.no_log)

    failed = run_list(block.block)
    rescued = False
    if failed is not None and block.rescue:
        rescue_failed = run_list(block.rescue)
        rescued = rescue_failed is None
        failed = rescue_failed or (None if rescued else failed)
    always_failed = run_list(block.always)
    failed = failed or always_failed
    changed = any(c.changed for c in children)
    if failed is not None:
        status, message = failed.status, f"{failed.name}: {failed.message}"
    else:
        status = Status.CHANGED if changed else Status.OK
        message = "rescued" if rescued else ""
    data = {"results": [dict(c.data) for c in children], "changed": changed,
            "failed": failed is not None, "rescued": rescued}
    predicted = "unknown" if any(c.predicted == "unknown" for c in children) else \
        "change" if any(c.predicted == "change" for c in children) else "no_change"
    return TaskResult(ctx.host, node_id, block.label, status, message=message, changed=changed,
                      predicted=predicted, data=data, phase=phase, no_log=block.no_log,
                      diffs=tuple(d for c in children for d in c.diffs),
                      commands=tuple(cmd for c in children for cmd in c.commands))


def _run_list(ctx: HostContext, node_id: str, tasks: tuple[Task, ...], scope: templating.Scope,
              phase: str, registered: dict[str, Any], children: list[TaskResult], *,
              block_no_log: bool = False) -> TaskResult | None:
    """Run tasks in order (concealed as their ``no_log`` says); the first failing one, or None."""
    for task in tasks:
        child_id = f"{node_id}/{task.id}"
        task = replace(task, no_log=True) if block_no_log else task
        current = scope.child(dict(registered))
        if ctx.stop.is_set():
            result = TaskResult(ctx.host, child_id, task.label, Status.NOT_RUN, phase=phase,
                                message=STOPPED)
        elif task.is_block:
            result = run_block(ctx, child_id, task, current, phase, registered)
        else:
            result = run_task(ctx, child_id, task, current, phase=phase)
            if task.ignore_errors:
                result = ignore_failure(result)
            remember(task, result, registered)
        children.append(conceal(replace(result, task=child_id)))
        if children[-1].status.is_failure or children[-1].status is Status.NOT_RUN:
            return children[-1]
    return None
