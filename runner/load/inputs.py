"""Load everything a command needs, reporting every input problem at once.

Load stage: playbooks + inventory + extra vars -> ``Inputs`` (validated
model and graph), or one ``InputError`` listing the problems of every file.
Nothing here contacts a host.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2 import meta
from jinja2 import nodes as jnodes

from runner.errors import InputError, Location, Problem, ProblemCollector, suggest
from runner.load import templating
from runner.load.argcheck import check_value
from runner.load.extravars import check_extra_vars
from runner.load.graph import TaskGraph, build_graph, fault_order_names
from runner.load.inventory.patterns import select_hosts
from runner.load.localfiles import find_local
from runner.load.marked import MarkedDict
from runner.load.playbook import load_playbook, walk_tasks
from runner.load.yamlfile import load_file
from runner.model import SECTIONS, Play, Playbook, Task
from runner.modules import get_module
from runner.modules.base import Arg

if TYPE_CHECKING:
    from runner.load.inventory import Inventory

BUNDLED = Path(__file__).resolve().parents[2] / "playbooks"
MAGIC_VARS = frozenset({
    "inventory_hostname", "inventory_hostname_short", "group_names", "groups", "hostvars",
    "inventory_dir", "inventory_file", "playbook_dir", "ansible_check_mode", "remedy_run_id",
    "remedy_check_mode", "omit", "item", "ansible_loop", "play_hosts", "ansible_play_hosts",
})


@dataclass(frozen=True)
class Inputs:
    """Validated playbooks, their graph, and (when given) the inventory and extra vars."""

    playbooks: tuple[Playbook, ...]
    graph: TaskGraph
    inventory: Inventory | None = None
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # e.g. an -e variable that nothing declares or reads


def bundled_playbooks() -> dict[str, Path]:
    """The playbooks shipped with remedy, by name."""
    roots = [BUNDLED]
    try:
        from importlib.resources import files

        roots.append(Path(str(files("runner") / "playbooks")))
    except (ModuleNotFoundError, TypeError):
        pass
    found: dict[str, Path] = {}
    for root in roots:
        if root.is_dir():
            for path in sorted(root.glob("*.yml")):
                found.setdefault(path.stem, path)
    return found


def resolve_playbook_path(name: str) -> Path:
    """A path as given, or the bundled playbook of that name."""
    path = Path(name)
    if path.exists() or "/" in name or name.endswith((".yml", ".yaml")):
        return path
    return bundled_playbooks().get(name, path)


def _no_playbook(name: str) -> str:
    """Why ``name`` (a path that does not exist, or no bundled name) names no playbook."""
    path = Path(name)
    if "/" not in name and not name.endswith((".yml", ".yaml")):
        return "not a file, nor a bundled playbook" + suggest(name, bundled_playbooks())
    siblings = path.parent.glob("*.y*ml") if path.parent.is_dir() else ()
    return "cannot read file: no such file" + suggest(
        name, [*(str(path.parent / s.name) for s in siblings), *bundled_playbooks()])


def parse_extra_vars(items: Sequence[str]) -> dict[str, Any]:
    """``-e k=v``, ``-e @file.yml`` and ``-e '{"json": 1}'`` as Ansible reads them.

    Raises:
        InputError: an unreadable file or a malformed item.
    """
    result: dict[str, Any] = {}
    problems = ProblemCollector()
    for item in items:
        where = Location(f"-e {item}")
        if item.startswith("@"):
            data = load_file(item[1:])
            if not isinstance(data, MarkedDict):
                problems.add(Location(item[1:]), "an extra-vars file must hold a mapping")
                continue
            result.update(data)
        elif item.lstrip().startswith("{"):
            from runner.load.yamlfile import load_text

            data = load_text(item, f"-e {item[:30]}")
            if isinstance(data, dict):
                result.update(data)
        else:
            for pair in item.split():
                key, sep, value = pair.partition("=")
                if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                    problems.add(where, f"cannot read extra var {pair!r}",
                                 "use -e name=value, -e @vars.yml or -e '{\"name\": 1}'")
                    continue
                result[key] = value
    problems.raise_if_any()
    return result


def load_inputs(
    playbook_paths: Sequence[str],
    inventory_paths: Sequence[str] = (),
    extra_vars: Sequence[str] = (),
) -> Inputs:
    """Load and validate playbooks, graph and inventory; every problem at once.

    Raises:
        InputError: with the problems of every file.
    """
    problems = ProblemCollector()
    books: list[Playbook] = []
    for name in playbook_paths:
        path = resolve_playbook_path(name)
        if not path.exists():
            problems.add(Location(name), _no_playbook(name), "'remedy playbooks' lists the bundled ones")
            continue
        try:
            books.append(load_playbook(path))
        except InputError as error:
            problems.extend(error)
    inventory = None
    if inventory_paths:
        from runner.load.inventory import load_inventory

        try:
            inventory = load_inventory(list(inventory_paths))
        except InputError as error:
            problems.extend(error)
    extra: dict[str, Any] = {}
    try:
        extra = parse_extra_vars(extra_vars)
    except InputError as error:
        problems.extend(error)
    problems.raise_if_any()
    _check_fault_order(books)
    graph = build_graph(books)
    known = set(MAGIC_VARS) | _names_read(books)
    if inventory is not None:
        known.update(name for host in inventory.hosts for name in inventory.host_vars(host))
    warnings = check_extra_vars(books, extra, known)
    if inventory is not None:
        check_variables(books, inventory, extra)
        check_decided_args(books, inventory, extra)
    return Inputs(playbooks=tuple(books), graph=graph, inventory=inventory, extra_vars=extra,
                  warnings=warnings)


def _check_fault_order(books: Sequence[Playbook]) -> None:
    """``after`` and ``blocked_by`` name a playbook of the run or a bundled one.

    Raises:
        InputError: naming the play and the unknown playbook.
    """
    known = {book.name for book in books} | set(bundled_playbooks())
    problems = ProblemCollector()
    for book in books:
        for play in book.plays:
            for keyword, name in fault_order_names(play):
                if name not in known:
                    problems.add(play.location, f"{keyword} '{name}': no playbook of that name"
                                 + suggest(name, known),
                                 "name a bundled playbook ('remedy playbooks') or one given on the "
                                 "command line")
    problems.raise_if_any()


def check_variables(books: Iterable[Playbook], inventory: Inventory, extra: Mapping[str, Any]) -> None:
    """Every variable a template reads is defined somewhere (exit 4 before any host).

    A variable defined for only some hosts passes here and fails the task on
    the others, naming the variable.

    Raises:
        InputError: with one problem per undefined variable and task.
    """
    defined = set(extra)
    for name in inventory.hosts:
        defined.update(inventory.host_vars(name))
    found = _undefined(list(books), defined)
    if found:
        raise InputError([_merged(uses, "undefined variable '{name}' in task '{task}'{also}")
                          for uses in found])


def unchecked_variables(books: Iterable[Playbook], extra: Mapping[str, Any]) -> list[Problem]:
    """Without an inventory: a warning for each variable that no play, task or ``-e`` defines."""
    message = ("WARNING: variable '{name}' in task '{task}' is not defined by any play or -e{also}; "
               "pass -i INVENTORY to check it")
    return [_merged(uses, message) for uses in _undefined(list(books), set(extra))]


#: One undefined variable in one file: its name, and the tasks that read it (location, label).
_Uses = tuple[str, list[tuple[Location, str]]]


def _undefined(books: list[Playbook], defined: set[str]) -> list[_Uses]:
    """The variables templates read that neither ``defined`` nor any play or task defines."""
    known = set(MAGIC_VARS) | defined | set(templating.ENV.globals)
    for book in books:
        for play in book.plays:
            known.update(play.vars)
            for section in SECTIONS:
                for task in walk_tasks(play.section(section)):
                    known.update(_defined_by(task))
    by_name: dict[tuple[str, str], list[tuple[Location, str]]] = {}
    for book in books:
        for play in book.plays:
            for section in SECTIONS:
                for task in play.section(section):
                    for name, location, label in _undefined_in(task, known, play):
                        by_name.setdefault((name, location.file), []).append((location, label))
    return [(name, uses) for (name, _), uses in by_name.items()]


def check_decided_args(books: Iterable[Playbook], inventory: Inventory, extra: Mapping[str, Any]) -> None:
    """Arguments with choices, and template or local files, that the variables alone decide, are valid.

    Such a templated argument reads only variables (of the play, the
    inventory, ``-e``: no registered result, no loop item); it is rendered for
    every host of its play and checked as a literal value is: one of its
    choices, or a file beside the playbook. What only the host can tell is
    checked when the task runs.

    Raises:
        InputError: one problem per task, argument and fault, naming the hosts (exit 4 before any host).
    """
    found: dict[tuple[Location, str], tuple[str, list[str]]] = {}
    names = set(extra) | _inventory_names(inventory)
    for book in books:
        for play in book.plays:
            decided = _decided_args(play, names | set(play.vars))
            try:
                hosts = select_hosts(inventory, play.hosts) if decided else []
            except InputError:
                continue  # reported when the run selects its hosts
            for host in hosts:
                host_vars = {**play.vars, **inventory.host_vars(host), **inventory.magic_vars(host), **extra}
                scope = templating.Scope([(host_vars, True)])
                for task, name, spec in decided:
                    problem = _decided_problem(task, name, spec, scope, Path(book.path).resolve().parent)
                    if problem:
                        found.setdefault((task.location, problem[0]), (problem[1], []))[1].append(host)
    if found:
        raise InputError([Problem(where, f"{message} (host{'s' * (len(hosts) > 1)} {_few(hosts)})", hint)
                          for (where, message), (hint, hosts) in found.items()])


def _inventory_names(inventory: Inventory) -> set[str]:
    names = set(MAGIC_VARS) - {"item", "ansible_loop"}
    for host in inventory.hosts:
        names.update(inventory.host_vars(host))
    return names


def _decided_args(play: Play, known: set[str]) -> list[tuple[Task, str, Arg]]:
    """The play's templated arguments with choices or a file, whose templates read only ``known``."""
    found = []
    tasks = [t for s in SECTIONS for t in walk_tasks(play.section(s))]
    known = known - {t.register for t in tasks if t.register}
    for task in tasks:
        module = get_module(task.module) if task.module else None
        specs = module.args if module is not None else {}
        for name, value in task.args.items():
            spec = specs.get(name)
            if spec is None or not templating.is_template(value) or \
                    not (spec.choices or spec.type in ("local_file", "template_file")):
                continue
            if templating.undeclared(str(value)) <= known - {task.loop_var, *task.vars}:
                found.append((task, name, spec))
    return found


def _decided_problem(task: Task, name: str, spec: Arg, scope: templating.Scope,
                     playbook_dir: Path) -> tuple[str, str] | None:
    """(message, hint) when the argument renders to a bad value for this host's variables."""
    raw = str(task.args[name])
    try:
        value = templating.render(raw, scope, task.location)
    except InputError:
        return None  # the run reports it, on the host, with its context
    checked, problem = check_value(spec, value)
    where = f"argument '{name}' of '{task.module}' in task '{task.label}' is {raw!r}"
    if problem:
        read = sorted(templating.undeclared(raw))
        return f"{where}, which {problem[0]}", problem[1] or \
            f"set {' or '.join(read) or 'it'} (inventory, play vars or -e) to a valid value"
    if spec.type in ("local_file", "template_file") and checked is not None:
        try:
            find_local(playbook_dir, str(checked), spec.type, task.location)
        except InputError as error:
            return f"{where}: {error.problems[0].message}", error.problems[0].hint
    return None


def _few(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _names_read(books: Iterable[Playbook]) -> set[str]:
    """Every variable name a template of ``books`` reads (tasks, play vars, health)."""
    names: set[str] = set()
    for book in books:
        for play in book.plays:
            texts = [(str(v), False) for v in (*play.vars.values(), *play.health.values())
                     if isinstance(v, str) and templating.is_template(v)]
            for section in SECTIONS:
                for task in walk_tasks(play.section(section)):
                    texts += _templates_of(task, play)
            for text, is_expression in texts:
                names |= _unguarded_names(text, expression=is_expression, guarded_too=True)
    return names


def _merged(found: _Uses, message: str) -> Problem:
    """One problem per undefined variable and file (at its first use), naming the other uses."""
    name, uses = found
    first, label = uses[0]
    others = sorted({where.line for where, _ in uses[1:] if where.line != first.line})
    also = f" (also used at line{'s' if len(others) > 1 else ''} {', '.join(map(str, others))})" \
        if others else ""
    return Problem(first, message.format(name=name, task=label, also=also),
                   "define it in the play's vars, the inventory, or with -e; "
                   "or guard it with '| default(...)'")


def _defined_by(task: Task) -> set[str]:
    names = set(task.vars) | {task.loop_var}
    if task.register:
        names.add(task.register)
    if task.module == "set_fact":
        names.update(task.args)
    return names


def _undefined_in(
    task: Task, known: set[str], play: Play, scope: frozenset[str] = frozenset()
) -> list[tuple[str, Location, str]]:
    """(name, task location, task label) of each unknown variable ``task`` and its children read."""
    local = scope | set(task.vars) | {task.loop_var}
    found: list[tuple[str, Location, str]] = []
    for text, is_expression in _templates_of(task, play):
        for name in sorted(_unguarded_names(text, expression=is_expression) - known - local):
            found.append((name, task.location, task.label))
    for child in task.block + task.rescue + task.always:
        found.extend(_undefined_in(child, known, play, frozenset(local)))
    return found


def _templates_of(task: Task, play: Play) -> list[tuple[str, bool]]:
    found: list[tuple[str, bool]] = []

    def visit(value: Any) -> None:
        if isinstance(value, str) and templating.is_template(value):
            found.append((value, False))
        elif isinstance(value, Mapping):
            for item in value.values():
                visit(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)

    visit([task.name, dict(task.args), task.loop, dict(task.environment), dict(task.vars)])
    for conditions in (task.when, task.until, task.changed_when, task.failed_when):
        for item in conditions or ():
            if isinstance(item, str):
                found.append((item, True))
    return found


def _unguarded_names(text: str, *, expression: bool, guarded_too: bool = False) -> set[str]:
    """Undeclared names, minus those guarded by ``default`` or ``is defined`` (unless ``guarded_too``)."""
    source = "{{ (" + text + ") }}" if expression else text
    try:
        tree = templating.ENV.parse(source)
        names = set(meta.find_undeclared_variables(tree))
    except (jinja2.TemplateSyntaxError, RecursionError):  # reported by the syntax check
        return set()
    if guarded_too:
        return names
    for node in tree.find_all((jnodes.Filter, jnodes.Test)):
        if node.name in ("default", "d", "defined", "undefined") and isinstance(node.node, jnodes.Name):
            names.discard(node.node.name)
        if node.name in ("default", "d", "defined", "undefined") and isinstance(node.node, jnodes.Getattr):
            inner: jnodes.Expr = node.node
            while isinstance(inner, (jnodes.Getattr, jnodes.Getitem)):
                inner = inner.node
            if isinstance(inner, jnodes.Name):
                names.discard(inner.name)
    return names
