"""What a module is: declared arguments, read-only facts, a pure plan, an outcome.

Services layer. A module never talks to a host. It declares

* ``args``: its arguments (type, required, default, choices, docs), used by
  the validator, by ``remedy playbooks`` and by the executor;
* ``facts(args)``: read-only probes (a command plus a parser) that the
  executor runs on the host;
* ``plan(args, facts) -> Change``: a pure function that predicts whether the
  task changes the host and returns the steps that would do it;
* ``outcome(args, facts, change, results)``: turns the executed steps'
  results into the task's registered data and changed/failed verdict.

Only the executor sends ``Change.steps``, so check mode (stop after ``plan``)
is safe by construction, and modules are tested as golden files
(args + probe output -> steps + diff).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, ClassVar

from runner.results import CommandResult, Diff

#: Argument types the validator understands.
#:   str, int, float, bool, list, dict, any  - plain YAML values (bool accepts yes/no/on/off)
#:   path   - an absolute or relative POSIX path (no NUL, no newline)
#:   mode   - a file mode as a quoted string: "0644", "u+rwx,g-w" (never a YAML number,
#:            except an inventory value written in YAML 1.1 octal, 0750, as Ansible reads it)
#:   expr   - a Jinja2 expression evaluated by the executor (assert `that`, debug `var`)
#:   local_file    - a controller file (files/ beside the playbook, the playbook dir, or absolute)
#:   template_file - like local_file (templates/ first), rendered with the task's variables
ARG_TYPES = frozenset(
    {
        "str",
        "int",
        "float",
        "bool",
        "list",
        "dict",
        "any",
        "path",
        "mode",
        "expr",
        "local_file",
        "template_file",
    }
)


@dataclass(frozen=True)
class Arg:
    """One documented module argument."""

    type: str = "str"
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    doc: str = ""
    aliases: tuple[str, ...] = ()
    elements: str = ""  # element type for lists
    secret: bool = False  # value is redacted from every output
    #: A regular expression the value (each element of a list) must match in full, checked
    #: when the playbook is loaded (literal values) and again once rendered on a host;
    #: ``pattern_hint`` names what is allowed ("a package name (letters, digits ...)").
    pattern: str = ""
    pattern_hint: str = ""

    def __post_init__(self) -> None:
        if self.type not in ARG_TYPES:
            raise ValueError(f"unknown argument type {self.type!r}")


@dataclass(frozen=True)
class Fact:
    """A read-only probe: a POSIX sh command and a parser of its result.

    ``paths`` are the host paths it reads (and what is below them): in check
    mode a plan made from it depends on the earlier planned changes of those
    paths. A fact parsed into a ``PathInfo`` needs none: its path is known.
    """

    command: str
    parse: Callable[[CommandResult], Any]
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class PathEffect:
    """What a planned change leaves at one host path, for the plans of the tasks after it.

    ``kind`` is what the path becomes (``absent``, ``file``, ``directory``: a
    new path, nothing of the old one kept) or "" (it stays, with the attributes
    and ``content`` given here changed). ``mode`` holds permission bits; ``owner``
    and ``group`` are names or numbers as a task gives them; None leaves one
    as it was (or unknown, on a new path). ``below``: what becomes of the paths
    under it, ``kept``, ``gone`` (removed, or a new empty directory) or
    ``unknown``. With ``known`` False the change's effect on the path cannot
    be told, and a plan that reads it says it depends on an earlier change.
    """

    path: str
    kind: str = ""
    mode: int | None = None
    owner: str | None = None
    group: str | None = None
    content: bytes | None = field(default=None, repr=False)
    below: str = "kept"
    known: bool = True


@dataclass(frozen=True)
class Command:
    """A mutating command step; fails the task unless its rc is in ``ok_rc``."""

    command: str
    stdin: bytes | None = field(default=None, repr=False)
    ok_rc: tuple[int, ...] = (0,)
    contained: bool = False  # starts no process that outlives it (see ``Connection.run``)


@dataclass(frozen=True)
class Upload:
    """Write ``content`` to ``dest`` atomically (temp file in dest's directory + rename)."""

    dest: str
    content: bytes = field(repr=False)
    mode: str | None = None
    owner: str | None = None
    group: str | None = None
    backup: bool = False
    validate: str | None = None  # command with %s for the temp path
    owner_is_dest: bool = False  # owner and group are dest's own (kept): no chown when they are the user's


@dataclass(frozen=True)
class Fetch:
    """Copy a file from the host to the controller path ``dest``.

    With ``flat`` False the executor stores it under
    ``dest/<inventory hostname>/<src without its leading />`` (Ansible's layout),
    so that one task run on many hosts keeps one file per host.
    """

    src: str
    dest: str
    flat: bool = True


Step = Command | Upload | Fetch


@dataclass(frozen=True)
class Change:
    """A module's prediction for one task on one host.

    ``changed``: whether the host would change. ``predictable`` is False when
    the effect cannot be known before running ("will run, effect unknown").
    ``failed`` is a failure the module detected from facts alone (no step is sent).
    ``steps`` run whenever the task runs outside check mode, even when
    ``changed`` is False: ``wait_for`` and ``uri`` send a step that only reads.
    ``data`` is the registered data known before any step runs (``stat``, ``debug``).
    ``effects`` say what the steps leave at the paths they change (check mode
    plans the tasks after this one from them).
    """

    changed: bool
    steps: tuple[Step, ...] = ()
    predictable: bool = True
    diffs: tuple[Diff, ...] = ()
    summary: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    failed: str = ""
    effects: tuple[PathEffect, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """What actually happened after the steps ran."""

    changed: bool
    failed: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""  # what the task did, when the steps' results tell more than the plan's summary


class Module:
    """Base class of every module; subclasses are listed in ``runner.modules.MODULES``."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    doc: ClassVar[str] = ""
    args: ClassVar[Mapping[str, Arg]] = {}
    #: The argument a bare string value fills (``command: echo hi``).
    free_form: ClassVar[str | None] = None
    #: Accept arbitrary keys (``set_fact``); ``args`` then documents the known ones.
    open_args: ClassVar[bool] = False
    #: Groups of arguments of which at most one may be given.
    mutually_exclusive: ClassVar[tuple[tuple[str, ...], ...]] = ()
    #: Groups of arguments of which at least one must be given.
    required_one_of: ClassVar[tuple[tuple[str, ...], ...]] = ()
    #: True for modules that only read (stat, assert, debug): safe in diagnose/verify.
    read_only: ClassVar[bool] = False

    def resolved(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """``args`` with every declared argument present; a missing or None one takes its default."""
        values = dict(args)
        for name, spec in self.args.items():
            if values.get(name) is None:
                values[name] = spec.default
        return values

    def reads_only(self, args: Mapping[str, Any]) -> bool:
        """Whether this call only reads; ``read_only`` unless a module refines it (``uri``)."""
        return self.read_only

    def facts(self, args: Mapping[str, Any]) -> Mapping[str, Fact]:
        """The read-only probes this task needs; none by default."""
        return {}

    def secrets(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> tuple[str, ...]:
        """Secret values the probed facts hold (a password in a config file); none by default.

        The executor masks them in every output, as it masks registered secrets.
        """
        return ()

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        """Predict the change from arguments and probed facts. Must be pure."""
        raise NotImplementedError

    def outcome(
        self,
        args: Mapping[str, Any],
        facts: Mapping[str, Any],
        change: Change,
        results: Sequence[CommandResult],
    ) -> Outcome:
        """Interpret the executed steps. Default: fail on a bad exit code."""
        data: dict[str, Any] = dict(change.data)
        if results:
            last = results[-1]
            data.update(command_data(last))
        for step, result in zip(change.steps, results, strict=False):
            ok_rc = step.ok_rc if isinstance(step, Command) else (0,)
            if result.rc not in ok_rc:
                return Outcome(changed=change.changed, failed=failure_message(result), data=data)
        return Outcome(changed=change.changed, data=data)


def chained(steps: Sequence[Command]) -> tuple[Command, ...]:
    """``steps`` as one command joined with ``&&``: one round trip that stops at the first failure.

    Only plain steps chain (no stdin, success is rc 0); the result is contained if all were.
    """
    if len(steps) < 2:
        return tuple(steps)
    if any(step.stdin is not None or step.ok_rc != (0,) for step in steps):
        raise ValueError("only steps without stdin that succeed with rc 0 can be chained")
    return (Command(" && ".join(step.command for step in steps), contained=all(s.contained for s in steps)),)


def command_data(result: CommandResult) -> dict[str, Any]:
    """The Ansible-shaped registered fields of a command result.

    As in Ansible, ``stdout`` and ``stderr`` lose their trailing newlines, so
    ``result.stdout == "stale"`` holds for ``echo stale``.
    """
    return {
        "cmd": result.command,
        "rc": result.rc,
        "stdout": result.stdout.rstrip("\r\n"),
        "stderr": result.stderr.rstrip("\r\n"),
        "stdout_lines": result.stdout.splitlines(),
        "stderr_lines": result.stderr.splitlines(),
    }


def failure_message(result: CommandResult) -> str:
    """A one-paragraph explanation of a failed command, with the tail of stderr."""
    tail = result.tail("stderr", 5) or result.tail("stdout", 5)
    rc = "unknown" if result.rc is None else str(result.rc)
    message = f"command exited {rc}"
    return f"{message}: {tail}" if tail else message


def quote(value: object) -> str:
    """Quote one word for POSIX sh."""
    return shlex.quote(str(value))


def operand(path: str) -> str:
    """Quote a path for a command that has no ``--`` (find): ``-x`` becomes ``./-x``."""
    return quote(f"./{path}" if path.startswith("-") else path)


def parent_dir(path: str) -> str:
    """The directory that holds ``path`` (``.`` for a bare name)."""
    return str(PurePosixPath(path).parent)


def flag(value: Any) -> bool:
    """A boolean argument's value; tolerates the strings the validator accepts."""
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "on", "true", "y", "1")
    return bool(value)
