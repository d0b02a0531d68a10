"""Judge a config file: YAML syntax, required keys, types, paths that exist, the service's checker.

Services layer, used by the ``config_file`` module. ``judge`` takes what the
config probe read of one file and returns a ``Verdict``: the problems found
(a YAML error names its line and column), or an ``error`` when the file
cannot be judged at all (unreadable, too large, a checker that cannot run).
Only top-level keys are checked; the YAML is read as PyYAML's safe loader
reads it (as most services do), with a budget on alias expansion.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from runner.modules.configprobe import SIZE_LIMIT, ConfigText, PathKind

#: The types a config key may be declared to have.
TYPES: dict[str, str] = {
    "str": "a non-empty string",
    "int": "an integer",
    "bool": "true or false",
    "port": "an integer 1-65535",
    "path": "an absolute path",
    "dir": "the absolute path of an existing directory",
    "file": "the absolute path of an existing file",
}
#: Nodes the aliases of one config may expand to (an alias bomb stops here).
ALIAS_BUDGET = 10_000
#: Exit statuses of a checker that could not run at all: not executable, not found.
CANNOT_RUN = (126, 127)
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_LINE = re.compile(r"^[ \t-]*(?P<key>[^\s:#'\"]+)[ \t]*:[ \t]+(?P<value>\S.*?)[ \t]*(?:[ \t]#.*)?$", re.M)
#: Keys whose values are masked in every output, unless the task says otherwise.
SECRET_KEYS = ("*password*", "*passwd*", "*secret*", "*token*", "*_key", "*credential*")


@dataclass(frozen=True)
class Schema:
    """The keys a config must have, and the type of each key it may have."""

    required: tuple[str, ...] = ()
    types: Mapping[str, str] = field(default_factory=dict)

    @property
    def path_keys(self) -> tuple[str, ...]:
        """Keys whose value must name something that exists on the host."""
        return tuple(k for k, t in self.types.items() if t in ("dir", "file"))


@dataclass(frozen=True)
class Verdict:
    """What is wrong with a config; ``error`` when it cannot be judged."""

    problems: tuple[str, ...] = ()
    line: int | None = None  # of a YAML error, 1-based
    column: int | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems and not self.error


def make_schema(required: Any, types: Any) -> Schema | str:
    """The schema of the ``required`` and ``types`` arguments, or what is wrong with them."""
    required = list(required or [])
    types = dict(types or {})
    bad = [str(k) for k in [*required, *types] if not (isinstance(k, str) and _KEY.fullmatch(k))]
    if bad:
        return f"config keys must be plain top-level names, not {', '.join(map(repr, bad))}"
    unknown = {k: v for k, v in types.items() if v not in TYPES}
    if unknown:
        key, value = next(iter(unknown.items()))
        return f"types: {key}: {value!r} is not a type (one of {', '.join(TYPES)})"
    return Schema(tuple(required), types)


def judge(config: ConfigText, schema: Schema, *, checker: bool) -> Verdict:
    """Judge one probed file: the built-in checks, then what the checker said (if ``checker``)."""
    if config.state in ("absent", "other"):
        return Verdict(("it is missing",) if config.state == "absent" else ("it is not a regular file",))
    cannot = _unjudgeable(config)
    if cannot:
        return Verdict(error=cannot)
    if config.error:
        return Verdict((config.error,))
    assert config.text is not None
    verdict = judge_text(config.text, schema, config.paths)
    if not checker:
        return verdict
    if config.check_rc in CANNOT_RUN:
        detail = config.check_output[-1] if config.check_output else ""
        return Verdict(error=f"the checker cannot run on this host (exit {config.check_rc}: {detail})")
    if config.check_rc:
        said = "; ".join(line.strip() for line in config.check_output[-3:] if line.strip())
        problem = f"the service's checker exits {config.check_rc}" + (f": {said}" if said else "")
        return Verdict((*verdict.problems, problem), verdict.line, verdict.column)
    return verdict


def _unjudgeable(config: ConfigText) -> str:
    if config.state == "unreadable":
        return f"cannot read {config.path} (not readable by the remote user: run as root)"
    if config.state == "large":
        return f"{config.path} is larger than {SIZE_LIMIT // 1024} KiB ({config.size} bytes): not judged"
    if config.state == "file" and config.text is None and not config.error:
        return f"cannot read {config.path}"
    if config.state != "file":
        return f"cannot read {config.path} ({config.state or 'nothing'} was probed)"
    return ""


def judge_text(text: str, schema: Schema, paths: Sequence[PathKind] = ()) -> Verdict:
    """The built-in checks of a config's text; ``paths``: what the probe found at its path values."""
    try:
        data = load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        where = f"line {line}, column {column}: " if line is not None else ""
        return Verdict((f"{where}invalid YAML: {exc.problem or exc.context}",), line, column)
    except (yaml.YAMLError, ValueError) as exc:
        return Verdict((f"invalid YAML: {exc}",))
    if not isinstance(data, dict):
        return Verdict((f"expected a mapping of keys to values, got {_shape(data)}",))
    problems = [f"{key}: missing (required)" for key in schema.required if key not in data]
    for key, kind in schema.types.items():
        if key in data:
            problem = _type_problem(kind, data[key], _found(paths, key, data[key]))
            if problem:
                problems.append(f"{key}: {problem}")
    return Verdict(tuple(problems))


def load_yaml(text: str) -> Any:
    """One YAML document as PyYAML's safe loader reads it, refusing alias bombs.

    Raises:
        yaml.YAMLError: a syntax error, several documents, an unknown tag.
        ValueError: an empty document, or aliases that expand beyond ``ALIAS_BUDGET`` nodes.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ValueError("the file holds no YAML document (it is empty)")
        if _expanded_size(node) > ALIAS_BUDGET:
            raise ValueError(f"its aliases expand to more than {ALIAS_BUDGET} values")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(root: yaml.Node) -> int:
    """Nodes visited when every alias is expanded, counted up to just past the budget."""
    count, stack = 0, [root]
    while stack and count <= ALIAS_BUDGET:
        node = stack.pop()
        count += 1
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend(item for pair in node.value for item in pair)
    return count


def secret_values(text: str, patterns: Sequence[str]) -> set[str]:
    """Values of the keys that match ``patterns`` (globs, any case), at any depth.

    Read from each ``key: value`` line as written (also in a file that does
    not parse), and from the parsed document: a quoted or escaped value is
    found either way.
    """
    def secret(key: Any) -> bool:
        return isinstance(key, str) and any(fnmatch.fnmatch(key.lower(), p.lower()) for p in patterns)

    found: set[str] = set()
    for match in _LINE.finditer(text):
        if secret(match["key"]):
            found.add(match["value"].strip("\"'"))
    try:
        data = load_yaml(text)
    except (yaml.YAMLError, ValueError):
        return found
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.update(str(v) for k, v in item.items() if secret(k) and isinstance(v, (str, int)))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _found(paths: Sequence[PathKind], key: str, value: Any) -> PathKind | None:
    """What the probe found at ``value``, if it read that very value for ``key``."""
    return next((p for p in paths if p.key == key and p.value == value), None)


def _type_problem(kind: str, value: Any, found: PathKind | None) -> str:
    expected = f"expected {TYPES[kind]}, got {value!r}"
    if kind == "str":
        return "" if isinstance(value, str) and value else expected
    if kind == "bool":
        return "" if isinstance(value, bool) else expected
    if kind in ("int", "port"):
        if not isinstance(value, int) or isinstance(value, bool):
            return expected
        return "" if kind == "int" or 1 <= value <= 65535 else expected
    if not (isinstance(value, str) and value.startswith("/")):
        return expected
    wanted = {"dir": "directory", "file": "file"}.get(kind)
    if wanted is None or found is None or found.kind == wanted:
        return ""  # a path the probe could not read exactly is not judged
    return f"{value} does not exist" if found.kind == "absent" else f"{value} is not a {wanted}"


def _shape(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    return "nothing" if value is None else f"the {type(value).__name__} {value!r}"


def verdict_summary(path: str, verdict: Verdict) -> str:
    """One line: the file and everything wrong with it."""
    if verdict.error:
        return f"{path}: {verdict.error}"
    if verdict.ok:
        return f"{path} passes every check"
    return f"{path}: {'; '.join(verdict.problems)}"
