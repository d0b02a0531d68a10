"""Typed checks of raw YAML values against keyword and module argument specs.

Load stage, used by ``playbook``. Every check reports to a
``ProblemCollector`` with the value's location and returns a usable default,
so that one pass finds every problem of a file. A value that is a template
(``{{ ... }}``) is type-checked only for its syntax here; it is checked again
after rendering, on the host it is rendered for.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.errors import InputError, Location, ProblemCollector, suggest
from runner.load import templating
from runner.load.localfiles import read_local
from runner.load.marked import MarkedDict, MarkedList, OctalInt
from runner.load.templating import FALSE_WORDS, TRUE_WORDS, to_bool
from runner.modules.base import Arg, Module

_MODE = re.compile(r"^(0?[0-7]{3,4}|([ugoa]*[-+=]([rwxXst]*|[ugo]))(,[ugoa]*[-+=]([rwxXst]*|[ugo]))*)$")
_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Checker:
    """Reads keywords of a mapping with type checks; problems go to the collector."""

    def __init__(self, problems: ProblemCollector) -> None:
        self.problems = problems

    def _type(self, raw: MarkedDict, key: str, expected: str, example: str) -> None:
        """Report that ``raw[key]`` is not of the ``expected`` kind, with an example fix."""
        self.problems.add(raw.value_loc(key),
                          f"'{key}' must be {expected}, not {describe(raw[key])}",
                          f"e.g. {example}")

    def string(self, raw: MarkedDict, key: str) -> str | None:
        if key not in raw or raw[key] is None:
            return None
        value = raw[key]
        if isinstance(value, str):
            templating.check_syntax(value, raw.value_loc(key), self.problems)
            return value
        self._type(raw, key, "a string", f'{key}: "{_text(value)}"')
        return str(value)

    def string_list(self, raw: MarkedDict, key: str) -> tuple[str, ...]:
        if key not in raw or raw[key] is None:
            return ()
        value = raw[key]
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip()) if key == "tags" else (value,)
        if isinstance(value, MarkedList) and all(isinstance(v, str) for v in value):
            return tuple(value)
        self._type(raw, key, "a string or a list of strings", f"{key}: [a, b]")
        return ()

    def mapping(self, raw: MarkedDict, key: str) -> Mapping[str, Any]:
        if key not in raw or raw[key] is None:
            return {}
        value = raw[key]
        if isinstance(value, MarkedDict):
            self.templates(value, raw.value_loc(key))
            return value
        self._type(raw, key, "a mapping", f"{key}: {{name: value}}")
        return {}

    def templates(self, value: Any, loc: Location) -> None:
        """Check the syntax (and sandbox) of every template string inside ``value``."""
        if isinstance(value, str):
            templating.check_syntax(value, loc, self.problems)
        elif isinstance(value, MarkedDict):
            for key, item in value.items():
                self.templates(item, value.value_loc(key))
        elif isinstance(value, MarkedList):
            for index, item in enumerate(value):
                self.templates(item, value.item_loc(index))

    def variable_names(self, raw: MarkedDict, key: str) -> None:
        value = raw.get(key)
        if isinstance(value, MarkedDict):
            for name in value:
                if not isinstance(name, str) or not _VAR.match(name):
                    self.problems.add(value.key_loc(name), f"invalid variable name {name!r}",
                                      "use letters, digits and '_', not starting with a digit")

    def boolean(self, raw: MarkedDict, key: str) -> bool | None:
        if key not in raw:
            return None
        value = to_bool(raw[key])
        if value is None:
            self._type(raw, key, "a boolean", f"{key}: true")
        return value

    def number(self, raw: MarkedDict, key: str, low: float, high: float) -> float | None:
        if key not in raw or raw[key] is None:
            return None
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self._type(raw, key, "a number", f"{key}: {int(low) if low >= 1 else 10}")
            return None
        if not low <= value <= high:
            self.problems.add(raw.value_loc(key), f"'{key}' must be between {low:g} and {high:g}")
            return None
        return float(value)

    def integer(self, raw: MarkedDict, key: str, low: int, high: int) -> int | None:
        value = self.number(raw, key, low, high)
        if value is not None and value != int(value):
            self.problems.add(raw.value_loc(key), f"'{key}' must be a whole number")
        return None if value is None else int(value)

    def conditions(self, raw: MarkedDict, key: str) -> tuple[Any, ...] | None:
        """``when``-like keys: a boolean, an expression, or a list of them (all must hold)."""
        if key not in raw:
            return None
        value = raw[key]
        items = list(value) if isinstance(value, list) else [value]
        loc = raw.value_loc(key)
        for index, item in enumerate(items):
            item_loc = value.item_loc(index) if isinstance(value, MarkedList) else loc
            if isinstance(item, bool):
                continue
            if not isinstance(item, str):
                self.problems.add(item_loc, f"'{key}' must be an expression, a boolean or a list")
                continue
            if templating.is_template(item):
                self.problems.add(item_loc, f"'{key}' is already an expression; remove the {{{{ }}}}",
                                  f"e.g. {key}: result.rc != 0")
                continue
            templating.check_expression(item, item_loc, self.problems)
        return tuple(items)

    def module_args(self, module: type[Module], raw: MarkedDict, key: str) -> dict[str, Any]:
        """The arguments of a module call, checked against ``module.args``."""
        value = raw[key]
        loc = raw.value_loc(key)
        args: dict[str, Any] = {}
        locs: dict[str, Location] = {}
        if isinstance(value, str) and module.free_form:
            args[module.free_form], locs[module.free_form] = value, loc
        elif isinstance(value, MarkedDict):
            for name, item in value.items():
                args[name], locs[name] = item, value.key_loc(name)
        elif value is not None:
            form = f"'{key}: <{module.free_form}>' or a mapping" if module.free_form else "a mapping"
            self.problems.add(loc, f"arguments of '{key}' must be {form}")
            return {}
        extra = raw.get("args")
        if isinstance(extra, MarkedDict):
            for name, item in extra.items():
                args.setdefault(name, item)
                locs.setdefault(name, extra.key_loc(name))
        elif extra is not None:
            self.problems.add(raw.value_loc("args"), "'args' must be a mapping")
        return self._check_args(module, key, args, locs, raw.key_loc(key))

    def _check_args(self, module: type[Module], key: str, args: dict[str, Any],
                    locs: dict[str, Location], loc: Location) -> dict[str, Any]:
        aliases = {alias: name for name, spec in module.args.items() for alias in spec.aliases}
        result: dict[str, Any] = {}
        for name, value in args.items():
            canonical = aliases.get(name, name)
            spec = module.args.get(canonical)
            if spec is None:
                if module.open_args:
                    self.templates(value, locs[name])
                    result[name] = value
                    continue
                self.problems.add(locs[name], f"unknown argument '{name}' for module '{key}'"
                                  + suggest(str(name), module.args),
                                  f"see 'remedy playbooks --module {key}'")
                continue
            result[canonical] = self._arg_value(spec, key, canonical, value, locs[name])
        for name, spec in module.args.items():
            if spec.required and name not in result:
                doc = f" ({spec.doc.rstrip('.')})" if spec.doc else ""
                self.problems.add(loc, f"module '{key}' requires argument '{name}'",
                                  f"add '{name}: ...'{doc}")
        for group in module.mutually_exclusive:
            given = [g for g in group if g in result]
            if len(given) > 1:
                self.problems.add(loc, f"module '{key}': arguments {' and '.join(given)} "
                                  "are mutually exclusive", "keep only one of them")
        for group in module.required_one_of:
            if not any(g in result for g in group):
                self.problems.add(loc, f"module '{key}' needs one of: {', '.join(group)}",
                                  f"add '{group[0]}: ...'")
        return result

    def _arg_value(self, spec: Arg, module: str, name: str, value: Any, loc: Location) -> Any:
        if isinstance(value, str) and templating.is_template(value) and spec.type != "expr":
            templating.check_syntax(value, loc, self.problems)
            return value
        if isinstance(value, (MarkedDict, MarkedList)):
            self.templates(value, loc)
        checked, problem = check_value(spec, value)
        if problem:
            self.problems.add(loc, f"argument '{name}' of '{module}' {problem[0]}", problem[1])
        if isinstance(checked, str) and spec.type == "expr":
            templating.check_expression(checked, loc, self.problems)
        if isinstance(checked, str) and spec.type in ("local_file", "template_file") and not problem:
            self._local_file(spec.type, f"argument '{name}' of '{module}'", checked, loc)
        return checked

    def _local_file(self, kind: str, what: str, path: str, loc: Location) -> None:
        """A ``src`` known now must name a readable file (a template's syntax is checked too)."""
        try:
            target, text = read_local(Path(loc.file).parent, path, kind, loc)
        except InputError as error:
            for found in error.problems:
                self.problems.add(found.location, f"{what}: {found.message}", found.hint)
            return
        if kind == "template_file":
            templating.check_syntax(text, Location(str(target)), self.problems)


def check_value(spec: Arg, value: Any) -> tuple[Any, tuple[str, str] | None]:
    """Coerce ``value`` to ``spec.type``; returns (value, (problem, hint) or None)."""
    kind = spec.type
    if value is None:
        return value, None
    if kind == "mode":
        return _check_mode(value)
    if kind == "bool":
        result = to_bool(value)
        if result is None:
            return value, (f"must be a boolean, not {describe(value)}", "true or false")
        return result, None
    if kind in ("int", "float"):
        if isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value.strip()):
            value = float(value) if kind == "float" or "." in value else int(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value, (f"must be a number, not {describe(value)}", "")
        if not math.isfinite(value):
            return value, (f"must be a finite number, not {value!r}", "")
        if kind == "int" and value != int(value):
            return value, (f"must be a whole number, not {value!r}", "")
        return (int(value) if kind == "int" else value), None
    if kind in ("str", "path", "local_file", "template_file"):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return value, (f"must be a string, not {describe(value)}", "quote the value")
        if isinstance(value, float):
            return value, (f"is the number {value!r}, not a string (YAML reads an unquoted "
                           "3.10 as the number 3.1)", "quote the value to keep it exactly as written")
        text = str(value)
        if kind != "str" and ("\x00" in text or "\n" in text):
            return text, ("must not contain NUL or newline characters", "")
        if spec.choices and text not in spec.choices:
            yaml11 = text.lower() in TRUE_WORDS | FALSE_WORDS
            return text, (f"must be one of {', '.join(spec.choices)}, not {text!r}"
                          + suggest(text, spec.choices),
                          f"'{text}' is a plain string in remedy (not a boolean)" if yaml11 else "")
        return text, _pattern_problem(spec, [text])
    if kind == "list":
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list):
            return value, ("must be a list", "")
        return value, _pattern_problem(spec, value)
    if kind == "dict":
        return (value, None) if isinstance(value, dict) else (value, ("must be a mapping", ""))
    return value, None


def _pattern_problem(spec: Arg, values: list[Any]) -> tuple[str, str] | None:
    """The first value that does not match ``spec.pattern`` (templates are checked once rendered)."""
    if not spec.pattern:
        return None
    for value in values:
        if isinstance(value, str) and templating.is_template(value):
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or \
                not re.fullmatch(spec.pattern, str(value)):
            return f"has {describe(value)}, not {spec.pattern_hint or 'a value it accepts'}", ""
    return None


def _check_mode(value: Any) -> tuple[Any, tuple[str, str] | None]:
    if isinstance(value, OctalInt) and 0 <= value <= 0o7777:  # 0750 in an inventory, as Ansible reads it
        return f"{value:04o}", None
    if isinstance(value, bool):
        return value, (f"is {describe(value)}, not a mode string", 'e.g. mode: "0644"')
    if isinstance(value, (int, float)):
        shown = f"0{value}" if isinstance(value, int) and len(str(value)) == 3 else str(value)
        return value, (f"is the number {value}, not a mode string",
                       f'modes must be quoted strings: mode: "{shown}"')
    if not isinstance(value, str) or not _MODE.match(value):
        return value, (f"{value!r} is not a file mode", 'e.g. mode: "0640" or mode: "u+rwx,g-w"')
    return value, None


def describe(value: Any) -> str:
    """How a YAML value is named in messages: "the string 'x'", "a list", ..."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "empty (null)"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    return f"{type(value).__name__} {value!r}"


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
