"""Reading tasks and their keywords: a YAML task list -> validated ``Task``s.

Load stage, used by ``playbook`` for every section of a play (and for the
``block``/``rescue``/``always`` lists inside a task). A task's keys are its
keywords (``TASK_KEYS``) plus exactly one module, whose arguments are checked
against the module's declared ``Arg``s by ``argcheck``; keys remedy refuses on
purpose (``UNSUPPORTED``) get a reason. Problems go to a ``ProblemCollector``
so that one pass finds every problem of a file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from runner.errors import Location, ProblemCollector, suggest
from runner.load import argcheck
from runner.load.marked import MarkedDict, MarkedList
from runner.model import Task
from runner.modules import MODULES

TASK_KEYS = frozenset(
    {
        "name",
        "id",
        "requires",
        "undoes",
        "blocked_by",
        "when",
        "register",
        "notify",
        "listen",
        "loop",
        "with_items",
        "loop_control",
        "retries",
        "until",
        "delay",
        "timeout",
        "become",
        "become_user",
        "ignore_errors",
        "changed_when",
        "failed_when",
        "tags",
        "no_log",
        "vars",
        "environment",
        "block",
        "rescue",
        "always",
        "args",
    }
)
UNSUPPORTED = {
    "delegate_to": "remedy runs every task on its own host; use a separate play for another host",
    "local_action": "use a play with `hosts: localhost` instead",
    "import_tasks": "list the tasks in the playbook, or pass several playbooks to remedy",
    "include_tasks": "list the tasks in the playbook, or pass several playbooks to remedy",
    "roles": "remedy playbooks are self-contained; list the tasks instead",
    "async": "use `timeout:`; remedy runs every task to completion or its deadline",
}
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TaskReader:
    """Reads task lists and tasks into ``Task``s, reporting problems to a collector."""

    def __init__(self, file: str, problems: ProblemCollector) -> None:
        self.file = file
        self.problems = problems
        self.check = argcheck.Checker(problems)

    def tasks(self, raw: MarkedDict, key: str, prefix: str) -> tuple[Task, ...]:
        if key not in raw or raw[key] is None:
            return ()
        value = raw[key]
        if not isinstance(value, MarkedList):
            self.problems.add(
                raw.value_loc(key),
                f"'{key}' must be a list of tasks, not {argcheck.describe(value)}",
                "start each task with '- '",
            )
            return ()
        tasks = []
        for index, item in enumerate(value):
            task = self.task(
                item, value.item_loc(index), f"{prefix}[{index + 1}]", is_handler=(key == "handlers")
            )
            if task is not None:
                tasks.append(task)
        return tuple(tasks)

    def task(self, raw: Any, loc: Location, auto_id: str, *, is_handler: bool) -> Task | None:
        if not isinstance(raw, MarkedDict):
            self.problems.add(loc, "a task must be a mapping", "e.g. '- name: ...\\n  command: ...'")
            return None
        module_keys = [k for k in raw if k not in TASK_KEYS]
        for key in module_keys:
            if key in UNSUPPORTED:
                self.problems.add(raw.key_loc(key), f"'{key}' is not supported", UNSUPPORTED[key])
        module_keys = [k for k in module_keys if k not in UNSUPPORTED]
        is_block = "block" in raw
        module, args = self._module(raw, module_keys, is_block=is_block)
        task_id = self._task_id(raw, auto_id)
        return Task(
            id=task_id,
            explicit_id="id" in raw,
            name=self.check.string(raw, "name") or "",
            location=raw.loc,
            module=module,
            args=args,
            requires=self._requires(raw),
            undoes=self.check.string_list(raw, "undoes"),
            blocked_by=self.check.string(raw, "blocked_by") or "",
            when=self.check.conditions(raw, "when") or (),
            register=self._register(raw),
            notify=self.check.string_list(raw, "notify"),
            listen=self.check.string_list(raw, "listen") if is_handler else self._no(raw, "listen"),
            loop=self._loop(raw),
            **self._loop_control(raw),
            retries=self.check.integer(raw, "retries", 0, 10_000),
            until=self.check.conditions(raw, "until"),
            delay=_default(self.check.number(raw, "delay", 0, 86_400), 5.0),
            timeout=self.check.number(raw, "timeout", 0.001, 86_400 * 7),
            become=self.check.boolean(raw, "become"),
            become_user=self.check.string(raw, "become_user"),
            ignore_errors=bool(self.check.boolean(raw, "ignore_errors")),
            changed_when=self.check.conditions(raw, "changed_when"),
            failed_when=self.check.conditions(raw, "failed_when"),
            tags=self.check.string_list(raw, "tags"),
            no_log=bool(self.check.boolean(raw, "no_log")),
            vars=self.check.mapping(raw, "vars"),
            environment=self.check.mapping(raw, "environment"),
            block=self.tasks(raw, "block", f"{task_id}.block") if is_block else self._no(raw, "block"),
            rescue=self.tasks(raw, "rescue", f"{task_id}.rescue") if is_block else self._no(raw, "rescue"),
            always=self.tasks(raw, "always", f"{task_id}.always") if is_block else self._no(raw, "always"),
        )

    def _no(self, raw: MarkedDict, key: str) -> tuple[Any, ...]:
        if key in raw:
            where = "handlers" if key == "listen" else "a block"
            self.problems.add(raw.key_loc(key), f"'{key}' is only valid in {where}")
        return ()

    def _module(self, raw: MarkedDict, keys: list[str], *, is_block: bool) -> tuple[str, Mapping[str, Any]]:
        if is_block:
            for key in keys:
                if key in MODULES:
                    self.problems.add(
                        raw.key_loc(key),
                        f"a block cannot also run a module ('{key}')",
                        f"move '{key}' into a task inside 'block:'",
                    )
                else:
                    self.problems.add(
                        raw.key_loc(key), f"unknown key '{key}' in a block" + suggest(str(key), TASK_KEYS)
                    )
            if "args" in raw:
                self.problems.add(raw.key_loc("args"), "'args' is not valid on a block")
            return "", {}
        known = [k for k in keys if k in MODULES]
        unknown = [k for k in keys if k not in MODULES]
        for key in unknown:
            hint = suggest(str(key), [*MODULES, *TASK_KEYS])
            kind = "module or task key" if not known else "task key"
            self.problems.add(
                raw.key_loc(key),
                f"unknown {kind} '{key}'{hint}",
                "" if hint else "run 'remedy playbooks --modules' to list modules",
            )
        if not known:
            if not unknown:
                self.problems.add(raw.loc, "task has no module", "add one module key, e.g. 'command: ...'")
            return "", {}
        if len(known) > 1:
            self.problems.add(
                raw.key_loc(known[1]),
                f"task has more than one module: {', '.join(known)}",
                "split it into one task per module",
            )
        name = known[0]
        return name, self.check.module_args(MODULES[name], raw, name)

    def _task_id(self, raw: MarkedDict, auto_id: str) -> str:
        if "id" not in raw:
            return auto_id
        value = raw["id"]
        if not isinstance(value, str) or not _ID.match(value):
            self.problems.add(
                raw.value_loc("id"),
                f"invalid task id {value!r}",
                "use letters, digits, '_', '-' and '.', starting with a letter",
            )
            return auto_id
        return value

    def _requires(self, raw: MarkedDict) -> tuple[str, ...] | None:
        if "requires" not in raw:
            return None
        return self.check.string_list(raw, "requires")

    def _register(self, raw: MarkedDict) -> str:
        value = self.check.string(raw, "register") or ""
        if value and not _NAME.match(value):
            self.problems.add(
                raw.value_loc("register"), f"invalid variable name {value!r}", "use letters, digits and '_'"
            )
        return value

    def _loop(self, raw: MarkedDict) -> Any:
        if "loop" in raw and "with_items" in raw:
            self.problems.add(raw.key_loc("with_items"), "use either 'loop' or 'with_items'")
        value = raw.get("loop", raw.get("with_items"))
        key = "loop" if "loop" in raw else "with_items"
        if value is not None and not isinstance(value, (list, str)):
            self.problems.add(
                raw.value_loc(key),
                f"'{key}' must be a list or a template string, not {argcheck.describe(value)}",
                f'e.g. {key}: [a, b] or {key}: "{{{{ paths }}}}"',
            )
            return None
        self.check.templates(value, raw.value_loc(key))
        return value

    def _loop_control(self, raw: MarkedDict) -> dict[str, str]:
        control = self.check.mapping(raw, "loop_control")
        result = {"loop_var": "item", "loop_label": ""}
        if not isinstance(control, MarkedDict):
            return result
        for key in control:
            if key not in ("loop_var", "label"):
                self.problems.add(
                    control.key_loc(key),
                    f"unknown loop_control key '{key}'" + suggest(key, ["loop_var", "label"]),
                )
        loop_var = control.get("loop_var", "item")
        if not isinstance(loop_var, str) or not _NAME.match(loop_var):
            self.problems.add(control.value_loc("loop_var"), f"invalid loop_var {loop_var!r}")
        else:
            result["loop_var"] = loop_var
        result["loop_label"] = str(control.get("label", ""))
        return result


def _default(value: float | None, default: float) -> float:
    return default if value is None else value
