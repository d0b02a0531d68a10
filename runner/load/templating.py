"""Sandboxed Jinja2: render playbook values once, never host data.

Load stage. One ``SandboxedEnvironment`` with ``StrictUndefined``, a
``quote`` filter, and Ansible's everyday filters. ``render`` renders a value
(recursively through lists and mappings) exactly once; a string that is a
single ``{{ expression }}`` keeps the expression's native type. Variables come
from a ``Scope``: playbook and inventory values are templates rendered lazily
on first use; registered results and facts are data and are never rendered.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta
from jinja2 import nodes as jnodes
from jinja2.sandbox import SandboxedEnvironment

from runner.errors import Location, ProblemCollector, TemplateError
from runner.load.marked import UnsafeText

_SINGLE = re.compile(r"^\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}$", re.DOTALL)


def _quote(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(shlex.quote(str(v)) for v in value)
    return shlex.quote(str(value))


def _to_bool(value: Any) -> bool:
    result = to_bool(value)
    return bool(value) if result is None else result


def _regex_search(value: Any, pattern: str) -> str | None:
    match = re.search(pattern, str(value))
    return match.group(0) if match else None


def _regex_replace(value: Any, pattern: str = "", replacement: str = "") -> str:
    return re.sub(pattern, replacement, str(value))


def _mandatory(value: Any) -> Any:
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    return value


def _build_environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True,
        trim_blocks=True,
    )
    env.filters.update({
        "quote": _quote,
        "bool": _to_bool,
        "to_json": lambda v, **kw: json.dumps(v, sort_keys=True, **kw),
        "from_json": json.loads,
        "regex_search": _regex_search,
        "regex_replace": _regex_replace,
        "mandatory": _mandatory,
        "basename": lambda p: str(p).rstrip("/").rsplit("/", 1)[-1],
        "dirname": lambda p: str(p).rsplit("/", 1)[0] if "/" in str(p) else "",
    })
    env.tests.update({
        "failed": lambda r: bool(isinstance(r, Mapping) and r.get("failed")),
        "succeeded": lambda r: not (isinstance(r, Mapping) and r.get("failed")),
        "success": lambda r: not (isinstance(r, Mapping) and r.get("failed")),
        "changed": lambda r: bool(isinstance(r, Mapping) and r.get("changed")),
        "skipped": lambda r: bool(isinstance(r, Mapping) and r.get("skipped")),
        "match": lambda v, p: re.match(p, str(v)) is not None,
        "search": lambda v, p: re.search(p, str(v)) is not None,
    })
    return env


ENV = _build_environment()


def is_template(value: Any) -> bool:
    """Whether a string would be rendered (it contains ``{{`` or ``{%``)."""
    return isinstance(value, str) and not isinstance(value, UnsafeText) and (
        "{{" in value or "{%" in value)


#: Deeper templates are refused: compiling them takes time that grows steeply with depth.
MAX_TEMPLATE_DEPTH = 48


class _TooDeepError(jinja2.TemplateSyntaxError):
    def __init__(self) -> None:
        super().__init__("template nested too deeply", 1)


def _check_depth(tree: jnodes.Node) -> None:
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TEMPLATE_DEPTH:
            raise _TooDeepError()
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())


@lru_cache(maxsize=4096)
def _compile(text: str) -> jinja2.Template:
    tree = ENV.parse(text)
    _check_depth(tree)
    return ENV.from_string(tree)


_TOO_DEEP = "template nested too deeply", "flatten the expression"


def check_syntax(text: str, location: Location, problems: ProblemCollector) -> None:
    """Report a template syntax error, or an operation the sandbox always refuses, at ``location``."""
    if not is_template(text):
        return
    try:
        _compile(text)
    except _TooDeepError:
        problems.add(location, *_TOO_DEEP)
        return
    except jinja2.TemplateSyntaxError as error:
        problems.add(location, f"template syntax error: {error.message}",
                     "check the {{ }} and {% %} pairs")
        return
    except (RecursionError, SyntaxError):  # Python refuses the generated code as too nested
        problems.add(location, *_TOO_DEEP)
        return
    if "_" in text or "{%" in text:
        _check_sandbox(ENV.parse(text), location, problems)


def check_expression(text: str, location: Location, problems: ProblemCollector) -> None:
    """Report a syntax error in a bare expression (``when``, ``until``, ``that``)."""
    try:
        tree = ENV.parse("{{ (" + text + ") }}")
        _check_depth(tree)
    except _TooDeepError:
        problems.add(location, *_TOO_DEEP)
        return
    except jinja2.TemplateSyntaxError as error:
        problems.add(location, f"expression syntax error: {error.message}",
                     "conditions are Jinja2 expressions, e.g. result.rc == 0")
        return
    except RecursionError:
        problems.add(location, *_TOO_DEEP)
        return
    if "_" in text or "{%" in text:
        _check_sandbox(tree, location, problems)


_FORMAT_FIELD = re.compile(r"\{[^{}]*[.\[]_[^{}]*\}?")


def _check_sandbox(tree: jnodes.Template, location: Location, problems: ProblemCollector) -> None:
    """Report what always fails at render: loading other templates, and ``_`` attributes.

    That is ``x.__class__``, ``x['__class__']``, ``x | attr('__class__')`` and a
    format string reaching one (``'{0.__class__}'.format(x)``).
    """
    for loading in tree.find_all((jnodes.Extends, jnodes.Include, jnodes.Import, jnodes.FromImport)):
        what = type(loading).__name__.lower().replace("fromimport", "from ... import")
        problems.add(location, f"'{{% {what} %}}' is not available: templates cannot load other files",
                     "use the template module's src file, or write the text inline")
        return
    for node in tree.find_all((jnodes.Getattr, jnodes.Getitem, jnodes.Filter, jnodes.Call)):
        name = ""
        if isinstance(node, jnodes.Getattr):
            name = node.attr
        elif isinstance(node, jnodes.Getitem) and isinstance(node.arg, jnodes.Const):
            name = str(node.arg.value)
        elif isinstance(node, jnodes.Filter) and node.name == "attr" and node.args \
                and isinstance(node.args[0], jnodes.Const):
            name = str(node.args[0].value)
        elif isinstance(node, jnodes.Call) and isinstance(node.node, jnodes.Getattr) \
                and node.node.attr in ("format", "format_map") \
                and isinstance(node.node.node, jnodes.Const):
            field = _FORMAT_FIELD.search(str(node.node.node.value))
            name = field.group(0) if field else ""
        if name.startswith(("_", "{")):
            what = f"the format field '{name}'" if name.startswith("{") else f"attribute '{name}'"
            problems.add(location, f"unsafe template operation: {what} reaches Python internals",
                         "templates may not use names starting with '_'; remove it")
            return


def undeclared(text: str, *, expression: bool = False) -> set[str]:
    """Variable names a template or expression reads from its scope."""
    source = "{{ (" + text + ") }}" if expression else text
    try:
        return set(meta.find_undeclared_variables(ENV.parse(source)))
    except (jinja2.TemplateSyntaxError, RecursionError):
        return set()


class Scope(Mapping[str, Any]):
    """Variables visible to one task on one host, resolved lazily.

    ``layers`` go from lowest to highest precedence. Values of layers listed in
    ``templated`` are rendered (once, on first use); others are data.
    """

    def __init__(self, layers: list[tuple[Mapping[str, Any], bool]]) -> None:
        self._layers = layers
        self._cache: dict[str, Any] = {}
        self._resolving: list[str] = []

    def child(self, values: Mapping[str, Any], *, templated: bool = False) -> Scope:
        """A new scope with ``values`` on top (loop items, task vars)."""
        return Scope([*self._layers, (values, templated)])

    def __getitem__(self, name: str) -> Any:
        if name in self._cache:
            return self._cache[name]
        for values, templated in reversed(self._layers):
            if name in values:
                value = values[name]
                if templated:
                    value = self._render_var(name, value)
                self._cache[name] = value
                return value
        if name in ENV.globals:
            return ENV.globals[name]
        raise KeyError(name)

    def _render_var(self, name: str, value: Any) -> Any:
        if name in self._resolving:
            chain = " -> ".join([*self._resolving[self._resolving.index(name):], name])
            what = "refers to itself" if chain == f"{name} -> {name}" else "is part of a cycle"
            raise TemplateError.at(Location("<vars>"), f"variable '{name}' {what}: {chain}",
                                   "break the cycle between these variables")
        self._resolving.append(name)
        try:
            return render(value, self)
        finally:
            self._resolving.pop()

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (
            name in self._cache or any(name in v for v, _ in self._layers) or name in ENV.globals)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for values, _ in reversed(self._layers):
            for key in values:
                if key not in seen:
                    seen.add(key)
                    yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _run(template: jinja2.Template, scope: Mapping[str, Any]) -> str:
    context = template.new_context(vars=scope, shared=True)  # type: ignore[arg-type]
    # No ``ENV.handle_exception()``: its traceback rewrite copies the context's
    # variables, which a lazy ``Scope`` must not do; callers wrap the error anyway.
    return ENV.concat(template.root_render_func(context))


def render(value: Any, scope: Mapping[str, Any], location: Location | None = None) -> Any:
    """Render a playbook value once.

    Raises:
        TemplateError: undefined variable, sandbox violation or a failing filter.
    """
    if isinstance(value, UnsafeText):
        return str(value)
    if isinstance(value, str):
        if not is_template(value):
            return value
        return _render_text(value, scope, location)
    if isinstance(value, Mapping):
        return {k: render(v, scope, location) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [render(v, scope, location) for v in value]
    return value


def _render_text(text: str, scope: Mapping[str, Any], location: Location | None) -> Any:
    match = _SINGLE.match(text.strip())
    if match and "{%" not in text:
        return evaluate(match.group("expr"), scope, location)
    try:
        return _run(_compile(text), scope)
    except TemplateError:
        raise
    except Exception as error:  # noqa: BLE001 - every template failure becomes a TemplateError
        raise _template_error(error, text, location) from None


@lru_cache(maxsize=4096)
def _compile_expression(expression: str) -> jinja2.Template:
    _check_depth(ENV.parse("{{ (" + expression + ") }}"))
    compiled = ENV.compile_expression(expression, undefined_to_none=False)
    template: jinja2.Template = compiled._template  # the Template assigning `result`
    return template


def evaluate(expression: str, scope: Mapping[str, Any], location: Location | None = None) -> Any:
    """Evaluate a bare Jinja2 expression (``when``, ``until``, ``that``) to a value.

    Raises:
        TemplateError: as ``render``.
    """
    try:
        template = _compile_expression(expression.strip())
        context = template.new_context(vars=scope, shared=True)  # type: ignore[arg-type]
        for _ in template.root_render_func(context):
            pass
        value = context.vars.get("result")
        if isinstance(value, jinja2.Undefined):
            value._fail_with_undefined_error()
        return value
    except TemplateError:
        raise
    except Exception as error:  # noqa: BLE001
        raise _template_error(error, expression, location) from None


def _template_error(error: Exception, text: str, location: Location | None) -> TemplateError:
    where = location or Location("<template>")
    shown = text if len(text) <= 80 else text[:77] + "..."
    if isinstance(error, jinja2.UndefinedError):
        return TemplateError.at(where, f"{error.message} in {shown!r}",
                                "define the variable (play vars, inventory, -e) or use "
                                "'| default(...)'")
    if isinstance(error, jinja2.exceptions.SecurityError):
        return TemplateError.at(where, f"unsafe template operation in {shown!r}: {error}",
                                "templates cannot reach Python internals")
    if isinstance(error, jinja2.TemplateSyntaxError):
        return TemplateError.at(where, f"template syntax error in {shown!r}: {error.message}")
    return TemplateError.at(where, f"template error in {shown!r}: {type(error).__name__}: {error}")


TRUE_WORDS = frozenset({"yes", "on", "true", "y", "1"})


FALSE_WORDS = frozenset({"no", "off", "false", "n", "0"})


def to_bool(value: Any) -> bool | None:
    """Ansible's boolean reading of a value, or None when it is not a boolean."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    return None
