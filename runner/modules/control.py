"""The controller-only modules: ``assert``, ``debug``, ``set_fact`` and ``fail``.

Services layer. They send nothing to the host: no facts, no steps. Their
plan is their whole result, and its ``data`` is what ``register`` stores.
Expression arguments (``that``, ``var``) arrive already evaluated by the
executor.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from runner.modules.base import Arg, Change, Module, flag

_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _conditions(that: Any) -> list[tuple[str, bool]]:
    """``that`` as (expression text, value) pairs, whatever shape it arrived in."""
    if isinstance(that, tuple) and len(that) == 2 and isinstance(that[0], str):
        return [(that[0], bool(that[1]))]
    items = that if isinstance(that, list | tuple) else [that]
    pairs = []
    for item in items:
        if isinstance(item, list | tuple) and len(item) == 2:
            pairs.append((str(item[0]), bool(item[1])))
        else:
            pairs.append((str(item), bool(item)))
    return pairs


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)


class AssertModule(Module):
    """Fail the task unless every condition of ``that`` holds."""

    name = "assert"
    summary = "Fail unless every given condition holds"
    read_only = True
    args = {
        "that": Arg(
            "expr",
            required=True,
            doc="A condition or a list of conditions (expressions without {{ }}); all must be true.",
        ),
        "fail_msg": Arg(
            "any", aliases=("msg",), doc="The failure message; default names the first false condition."
        ),
        "success_msg": Arg("any", doc="The message when every condition holds."),
        "quiet": Arg("bool", default=False, doc="Say nothing when every condition holds."),
    }

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        a = self.resolved(args)
        for text, value in _conditions(a["that"]):
            if not value:
                message = _show(a["fail_msg"]) if a["fail_msg"] is not None else f"Assertion failed: {text}"
                data = {"assertion": text, "evaluated_to": False, "msg": message}
                return Change(changed=False, failed=message, data=data)
        message = _show(a["success_msg"]) if a["success_msg"] is not None else "All assertions passed"
        return Change(changed=False, data={"msg": message}, summary="" if flag(a["quiet"]) else message)


class DebugModule(Module):
    """Show a message or a variable's value; registers ``msg`` or the variable."""

    name = "debug"
    summary = "Show a message or the value of a variable"
    read_only = True
    args = {
        "msg": Arg("any", default="Hello world!", doc="The message to show."),
        "var": Arg("expr", doc="A variable or expression to show with its value."),
        "verbosity": Arg("int", default=0, doc="Show only at this -v level or above."),
    }
    mutually_exclusive = (("msg", "var"),)

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        a = self.resolved(args)
        var = args.get("var")
        if var is not None:
            if isinstance(var, list | tuple) and len(var) == 2:
                name, value = str(var[0]), var[1]
            else:
                name, value = "var", var
            return Change(changed=False, data={name: value}, summary=f"{name}: {_show(value)}")
        return Change(changed=False, data={"msg": a["msg"]}, summary=_show(a["msg"]))


class SetFactModule(Module):
    """Set host variables: every argument is a variable name and its value.

    The executor sets each key of ``data["ansible_facts"]`` as a variable of
    the host, for the tasks after this one.
    """

    name = "set_fact"
    summary = "Set variables of the host for the following tasks"
    read_only = True
    open_args = True
    args = {
        "cacheable": Arg(
            "bool", default=False, doc="Accepted for Ansible compatibility; remedy keeps no fact cache."
        ),
    }

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        values = {k: v for k, v in args.items() if k != "cacheable"}
        if not values:
            return Change(changed=False, failed="set_fact needs at least one name: value")
        bad = [str(k) for k in values if not isinstance(k, str) or not _VAR.match(k)]
        if bad:
            return Change(
                changed=False,
                failed=f"invalid variable name(s): {', '.join(bad)}; use letters, digits and '_'",
            )
        return Change(changed=False, data={"ansible_facts": values}, summary=f"set {', '.join(values)}")


class FailModule(Module):
    """Fail the task with a message."""

    name = "fail"
    summary = "Fail the task with a message"
    read_only = True
    args = {
        "msg": Arg("any", default="Failed as requested from task", doc="The failure message."),
    }

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        message = _show(self.resolved(args)["msg"])
        return Change(changed=False, failed=message, data={"msg": message})
