"""The exception tree, and source locations that input errors point at.

Data layer: every stage raises one of these; only ``cli`` turns them into text
and exit codes.

    RemedyError
    ├── InputError          exit 4, raised before any host is contacted;
    │   │                   carries one or more ``Problem`` (location + message + hint)
    │   ├── LoadError       the YAML itself (syntax, size, encoding, tags, duplicates)
    │   ├── PlaybookError   the playbook schema (unknown keys, wrong types, modules)
    │   ├── InventoryError  inventory files and --limit patterns
    │   ├── GraphError      cycles, unknown or duplicate ids
    │   └── TemplateError   undefined variables, sandbox violations
    ├── PlanRefusedError    exit 4: ``apply`` refuses a saved plan (``.check``), in one line
    ├── UnreachableError    exit 3: connect, auth or host key (``.host``, ``.reason``)
    ├── CommandError        a command could not complete (``.result``)
    │   ├── CommandTimeout  the deadline passed; the remote process group was killed
    │   ├── ConnectionLost  the session died mid-command: outcome indeterminate
    │   └── CommandInterrupted  SIGINT/SIGTERM: the process group was killed
    ├── LockedError         another run holds the host's lock
    └── ModuleError         a module's expected, user-facing failure
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self


@dataclass(frozen=True, order=True)
class Location:
    """A position in an input file; ``line`` and ``column`` count from 1 (0 = unknown)."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line and self.column:
            return f"{self.file}:{self.line}:{self.column}"
        if self.line:
            return f"{self.file}:{self.line}"
        return self.file


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where, what, and how to fix it."""

    location: Location
    message: str
    hint: str = ""

    def render(self, *, source_lines: Sequence[str] | None = None) -> str:
        """Format as ``file:line:col: message``, the offending line with a caret, and the hint."""
        text = f"{self.location}: {self.message}"
        excerpt = _excerpt(self.location, source_lines)
        if excerpt:
            text += "\n" + excerpt
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


def _excerpt(location: Location, source_lines: Sequence[str] | None) -> str:
    if not location.line:
        return ""
    lines = source_lines
    if lines is None:
        lines = _read_lines(location.file)
    if not lines or location.line > len(lines):
        return ""
    raw = lines[location.line - 1].rstrip("\r\n")
    shown = printable(raw)[:160]
    number = f"{location.line:>5} | "
    caret = ""
    if location.column:
        caret = "\n" + " " * (len(number) - 2) + "| " + " " * (location.column - 1) + "^"
    return number + shown + caret


def printable(text: str) -> str:
    """Escape control characters (tabs stay) so a text can never drive the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c == "\t" or c.isprintable() else repr(c)[1:-1] for c in text)


_LINE_CACHE: dict[str, list[str]] = {}


def _read_lines(file: str) -> list[str]:
    if file not in _LINE_CACHE:
        try:
            data = Path(file).read_bytes()[: 8 * 1024 * 1024]
            _LINE_CACHE[file] = data.decode("utf-8-sig", "replace").splitlines()
        except OSError:
            _LINE_CACHE[file] = []
    return _LINE_CACHE[file]


class RemedyError(Exception):
    """Base of every error remedy raises on purpose."""

    exit_code = 1


class InputError(RemedyError):
    """Bad input found before any host was contacted (exit 4)."""

    exit_code = 4

    def __init__(self, problems: Iterable[Problem] | Problem) -> None:
        items = [problems] if isinstance(problems, Problem) else list(problems)
        if not items:
            raise ValueError("InputError needs at least one problem")
        self.problems: list[Problem] = sorted(items, key=lambda p: p.location)
        super().__init__(self.render())

    @classmethod
    def at(cls, location: Location, message: str, hint: str = "") -> Self:
        return cls([Problem(location, message, hint)])

    def render(self) -> str:
        return "\n".join(p.render() for p in self.problems)


class LoadError(InputError):
    """The YAML file itself cannot be accepted."""


class PlaybookError(InputError):
    """A playbook does not match the schema."""


class InventoryError(InputError):
    """An inventory file or a host pattern is invalid."""


class GraphError(InputError):
    """The task graph has a cycle, an unknown or a duplicate id."""


class TemplateError(InputError):
    """A template references an undefined variable or breaks the sandbox."""


class PlanRefusedError(RemedyError):
    """``apply`` refuses a saved plan before any host is contacted (exit 4).

    ``check`` names the check that failed (``damaged``, ``tampered``,
    ``signature``, ``unsigned``, ``expired``, ``input changed``, ``already
    applied``, ``stale``); the message is one line: the plan, the check, why,
    and what to do; ``details`` adds one indented line each (``stale``: per host).
    """

    exit_code = 4

    def __init__(self, plan: str, check: str, reason: str, fix: str, details: Sequence[str] = ()) -> None:
        self.plan = plan
        self.check = check
        first = f"apply refused: {plan}: {check}: {printable(reason)}" + (f"; {fix}" if fix else "")
        super().__init__("\n  ".join([first, *map(printable, details)]))


class UnreachableError(RemedyError):
    """A host could not be reached: ``reason`` is ``connect``, ``auth`` or ``host_key``."""

    exit_code = 3

    def __init__(self, host: str, reason: str, detail: str) -> None:
        self.host = host
        self.reason = reason
        self.detail = detail
        super().__init__(f"{host}: unreachable ({reason}): {detail}")


class CommandError(RemedyError):
    """A command could not complete; ``result`` holds what was seen."""

    def __init__(self, message: str, result: Any = None) -> None:
        self.result = result
        super().__init__(message)


class CommandTimeout(CommandError):  # noqa: N818 - a leaf named for what happened
    """The command passed its deadline; its remote process group was killed."""


class ConnectionLost(CommandError):  # noqa: N818
    """The session died while a command ran: whether it took effect is unknown."""


class CommandInterrupted(CommandError):  # noqa: N818
    """The run was interrupted; the command's process group was killed mid-way."""


class LockedError(RemedyError):
    """Another remedy run holds the host's lock."""

    def __init__(self, host: str, owner: str) -> None:
        self.host = host
        self.owner = owner
        super().__init__(f"{host}: locked by another run ({owner})")


class ModuleError(RemedyError):
    """A module refuses or fails in an expected, explainable way."""


@dataclass
class ProblemCollector:
    """Gathers problems so that one pass can report all errors of a file at once."""

    problems: list[Problem] = field(default_factory=list)

    def add(self, location: Location, message: str, hint: str = "") -> None:
        self.problems.append(Problem(location, message, hint))

    def extend(self, error: InputError) -> None:
        self.problems.extend(error.problems)

    def raise_if_any(self, cls: type[InputError] = InputError) -> None:
        if self.problems:
            raise cls(self.problems)


def suggest(word: str, candidates: Iterable[str]) -> str:
    """A " (did you mean 'x'?)" suffix for the closest candidate, or ''."""
    import difflib

    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""
