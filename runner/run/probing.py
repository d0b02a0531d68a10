"""Fetch the probes of a task and of the tasks after it in one round trip, where sound.

Run stage, used by ``taskrun``. In check mode no step is sent, so the
probes of a task and of the play's tasks after it are fetched together
(``connection.batch``); outside check mode, so are those of consecutive
read-only tasks and the task after them. The results wait in the host's
``ProbeCache``, keyed by command, privilege and environment, until a task
renders exactly that probe; any step sent forgets them all.
"""

from __future__ import annotations

from runner.connection.batch import run_batch
from runner.load import templating
from runner.model import SECTIONS, Task
from runner.modules import MODULES
from runner.run.context import HostContext, ProbeKey, probe_key
from runner.run.rendering import become_for, render_args, truth


def prefetch(ctx: HostContext, task: Task, scope: templating.Scope) -> None:
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
        args = render_args(ctx, task, module, inner)
        become = become_for(ctx, task, inner)
        env = {str(k): str(v) for k, v in templating.render(
            {**ctx.play.environment, **task.environment}, inner, task.location).items()}
        return [(probe_key(f.command, become, env), f.command) for f in module.facts(args).values()]
    except Exception:  # noqa: BLE001 - a task that cannot be rendered yet is simply not prefetched
        return []


__all__ = ["prefetch"]
