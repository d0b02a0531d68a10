"""Render a task for one host: its arguments, its ``become`` and its conditions.

Run stage, used by ``taskrun`` to run a task and by ``probing`` to work out
ahead what a task would probe. Arguments are rendered in the task's scope and
checked against the module's argument spec once rendered (``InputError`` if
one is invalid); ``local_file`` and ``template_file`` arguments are read where
``load.localfiles`` finds them, and secret arguments are added to the run's
redactor before any output shows the task.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runner.connection import Become
from runner.errors import InputError, Location
from runner.load import templating
from runner.load.argcheck import check_value
from runner.load.localfiles import read_local
from runner.load.templating import to_bool
from runner.model import Task
from runner.modules.base import Module

if TYPE_CHECKING:
    from runner.run.context import HostContext


def truth(condition: Any, scope: Mapping[str, Any], location: Location) -> bool:
    """Whether a ``when``-like condition (a boolean or an expression) holds."""
    if isinstance(condition, bool):
        return condition
    value = templating.evaluate(str(condition), scope, location)
    result = to_bool(value)
    return bool(value) if result is None else result


def become_for(ctx: HostContext, task: Task, scope: templating.Scope) -> Become | None:
    """The task's ``become``, else its play's, else the host's ``ansible_become`` (as in Ansible)."""
    enabled = task.become if task.become is not None else ctx.play.become or host_becomes(scope)
    if not enabled:
        return None
    user = task.become_user or ctx.play.become_user or "root"
    user = str(templating.render(user, scope, task.location))
    return Become(user=user, password=ctx.become_password)


def host_becomes(host_vars: Mapping[str, Any]) -> bool:
    """Whether the inventory turns ``become`` on for the host's plays (``ansible_become``)."""
    return bool(to_bool(host_vars.get("ansible_become", False)))


def render_args(ctx: HostContext, task: Task, module: Module, scope: templating.Scope) -> dict[str, Any]:
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
            if spec.type in ("local_file", "template_file") and rendered is not None:
                rendered = _read_local(ctx, str(rendered), spec.type, scope, task.location)
            if spec.secret:
                ctx.redactor.add(str(rendered))
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
    target, text = read_local(ctx.playbook_dir, path, kind, location)
    if kind == "template_file":
        return str(templating.render(text, scope, Location(str(target))))
    return text


__all__ = ["become_for", "render_args", "truth"]
