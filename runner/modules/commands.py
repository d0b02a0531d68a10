"""The ``command`` and ``shell`` modules: run a program on the host.

Services layer. Without ``creates``/``removes`` the effect of a command
cannot be known, so the plan says "will run, effect unknown"; with them one
probe tests the paths and the prediction is exact. ``command`` never lets a
shell interpret its words; ``shell`` hands its text to ``sh`` (or
``executable``) as written.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from runner.modules.base import (
    Arg,
    Change,
    Command,
    Fact,
    Module,
    Outcome,
    command_data,
    failure_message,
    flag,
    quote,
)
from runner.results import CommandResult

_RESERVED = frozenset(
    "! { } case do done elif else esac fi for if in then until while function select time".split()
)
_COMMON = {
    "chdir": Arg("path", doc="Change into this directory before running."),
    "creates": Arg(
        "path",
        doc="Skip the command when this path exists (relative to chdir); "
        "makes the task idempotent and its prediction exact.",
    ),
    "removes": Arg("path", doc="Skip the command unless this path exists (relative to chdir)."),
    "stdin": Arg("str", doc="Text fed to the command's standard input."),
    "stdin_add_newline": Arg("bool", default=True, doc="Append a newline to stdin."),
}


@dataclass(frozen=True)
class Guards:
    """Whether ``creates`` and ``removes`` exist; None when not asked."""

    chdir_ok: bool = True
    creates: bool | None = None
    removes: bool | None = None
    error: str = ""


def guards_fact(a: Mapping[str, Any]) -> Fact:
    """One probe testing ``creates`` and ``removes`` from ``chdir``."""
    lines = []
    if a.get("chdir"):
        lines.append(f"cd -- {quote(a['chdir'])} 2>/dev/null || {{ echo chdir=missing; exit 0; }}")
    for name in ("creates", "removes"):
        if a.get(name):
            lines.append(f"if [ -e {quote(a[name])} ]; then echo {name}=yes; else echo {name}=no; fi")
    chdir = str(a.get("chdir") or "")
    paths = tuple(posixpath.join(chdir, str(a[name])) for name in ("creates", "removes") if a.get(name))
    return Fact("\n".join(lines), _parse_guards, paths=paths)


def _parse_guards(result: CommandResult) -> Guards:
    found = dict(line.partition("=")[::2] for line in result.stdout.splitlines() if "=" in line)
    if result.rc != 0 or not found:
        detail = result.tail("stderr", 3) or f"exit code {result.rc}"
        return Guards(error=f"the creates/removes probe failed: {detail}")
    if found.get("chdir") == "missing":
        return Guards(chdir_ok=False)
    answers = {
        k: found[k] == "yes" if found.get(k) in ("yes", "no") else None for k in ("creates", "removes")
    }
    return Guards(creates=answers["creates"], removes=answers["removes"])


class CommandModule(Module):
    """Run a program with arguments, without a shell.

    ``cmd`` is split into words like a shell would split it, and every word is
    passed verbatim: no pipes, redirections, variables or globs (use ``shell``).
    ``argv`` gives the words as a list instead.
    """

    name = "command"
    summary = "Run a program with arguments on the host, without a shell"
    free_form = "cmd"
    args = {
        "cmd": Arg("str", doc="The command line; split into words, never interpreted by a shell."),
        "argv": Arg("list", elements="str", doc="The command as a list of words, passed as is."),
        **_COMMON,
    }
    mutually_exclusive: ClassVar[tuple[tuple[str, ...], ...]] = (("cmd", "argv"),)
    required_one_of: ClassVar[tuple[tuple[str, ...], ...]] = (("cmd", "argv"),)
    uses_shell: ClassVar[bool] = False

    def facts(self, args: Mapping[str, Any]) -> Mapping[str, Fact]:
        if args.get("creates") or args.get("removes"):
            return {"guards": guards_fact(args)}
        return {}

    def script(self, a: Mapping[str, Any]) -> tuple[str, Any]:
        """The sh text to run and the ``cmd`` to register.

        Raises:
            ValueError: ``cmd`` cannot be split into words, or there are none.
        """
        if a["argv"] is not None:
            words = [str(w) for w in a["argv"]]
        else:
            words = shlex.split(str(a["cmd"])) if a["cmd"] is not None else []
        if not words:
            raise ValueError("the command is empty")
        text = " ".join([_program(words[0]), *(quote(w) for w in words[1:])])
        if a["chdir"]:
            text = f"cd -- {quote(a['chdir'])} && {text}"
        return text, words

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        a = self.resolved(args)
        try:
            text, cmd = self.script(a)
        except ValueError as exc:
            return Change(changed=False, failed=f"cannot run {self.name}: {exc}")
        guards: Guards = facts.get("guards", Guards())
        if guards.error:
            return Change(changed=False, failed=guards.error)
        if not guards.chdir_ok:
            return Change(changed=False, failed=f"chdir {a['chdir']} does not exist")
        skip = _skip_reason(a, guards)
        if skip:
            data = {
                "cmd": cmd,
                "rc": 0,
                "stdout": skip,
                "stderr": "",
                "stdout_lines": [skip],
                "stderr_lines": [],
                "msg": skip,
            }
            return Change(changed=False, data=data, summary=skip)
        stdin = a["stdin"]
        if stdin is not None:
            stdin = str(stdin) + ("\n" if flag(a["stdin_add_newline"]) else "")
        guarded = bool(a["creates"] or a["removes"])
        shown = str(cmd) if self.uses_shell else shlex.join(cmd)
        return Change(
            changed=True,
            steps=(Command(text, stdin=None if stdin is None else stdin.encode("utf-8")),),
            predictable=guarded,
            data={"cmd": cmd},
            summary=f"run {shown}",
        )

    def outcome(
        self,
        args: Mapping[str, Any],
        facts: Mapping[str, Any],
        change: Change,
        results: Sequence[CommandResult],
    ) -> Outcome:
        if not results:
            return Outcome(changed=False, data=dict(change.data))
        result = results[-1]
        data: dict[str, Any] = {**command_data(result), **change.data}
        data["delta"] = str(timedelta(seconds=result.duration))
        if result.rc != 0:
            data["msg"] = "non-zero return code"
            return Outcome(changed=True, failed=failure_message(result), data=data)
        return Outcome(changed=True, data=data)


def _program(word: str) -> str:
    """The first word, quoted so that sh reads it as a program: never a keyword or assignment."""
    quoted = quote(word)
    if quoted == word and (word in _RESERVED or "=" in word):
        return f"'{word}'"
    return quoted


def _skip_reason(a: Mapping[str, Any], guards: Guards) -> str:
    if a["creates"] and guards.creates:
        return f"skipped, since {a['creates']} exists"
    if a["removes"] and guards.removes is False:
        return f"skipped, since {a['removes']} does not exist"
    return ""


class ShellModule(CommandModule):
    """Run a command line through ``sh`` (pipes, redirections, variables allowed).

    Values interpolated into ``cmd`` should pass through the ``quote`` filter.
    """

    name = "shell"
    summary = "Run a command line through the host's sh (pipes and redirections allowed)"
    args = {
        "cmd": Arg("str", required=True, doc="The shell command line, run as written."),
        "executable": Arg("path", doc="The shell to run cmd with instead of sh, e.g. /bin/bash."),
        **_COMMON,
    }
    mutually_exclusive = ()
    required_one_of = ()
    uses_shell = True

    def script(self, a: Mapping[str, Any]) -> tuple[str, Any]:
        cmd = str(a["cmd"])
        if not cmd.strip():
            raise ValueError("the command is empty")
        text = f"{quote(a['executable'])} -c {quote(cmd)}" if a["executable"] else cmd
        if a["chdir"]:
            text = f"cd -- {quote(a['chdir'])} || exit\n{text}"
        return text, cmd
