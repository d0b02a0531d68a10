"""A minimal local stand-in for the executor, to run modules against this machine's sh.

Probes and ``Command`` steps run with ``sh -c``; an ``Upload`` is written the
way the executor's remote script does (temp file in the destination directory,
mode, owner, rename). Used to check probes on real files and that a second
plan on the result state predicts no change.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.modules import MODULES
from runner.modules.base import Change, Command, Fetch, Module, Upload
from runner.results import CommandResult


def sh(command: str, stdin: bytes | None = None, env: Mapping[str, str] | None = None) -> CommandResult:
    done = subprocess.run(
        ["sh", "-c", command], input=stdin, capture_output=True, timeout=120, env=env, check=False
    )
    return CommandResult(
        command,
        done.returncode,
        done.stdout.decode("utf-8", "surrogateescape"),
        done.stderr.decode("utf-8", "surrogateescape"),
    )


#: What probes, steps and the upload script run: ``path_without`` links these.
TOOLS = ("sh", "stat", "ls", "readlink", "sha256sum", "openssl", "wc", "cat", "find", "sort", "uniq",
         "sed", "tail", "tr", "mktemp", "rm", "mv", "chmod", "chown", "sync", "wget", "curl", "date",
         "sleep", "awk", "grep")


def path_without(tmp_path: Path, *missing: str) -> dict[str, str]:
    """An environment whose PATH (``tmp_path/bin``) holds ``TOOLS`` except ``missing``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in TOOLS:
        found = shutil.which(tool)
        if found and tool not in missing:
            (bin_dir / tool).symlink_to(found)
    return {"PATH": str(bin_dir)}


def gather(module: Module, args: Mapping[str, Any], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {name: fact.parse(sh(fact.command, env=env)) for name, fact in module.facts(args).items()}


def plan(name: str, args: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Change:
    module = MODULES[name]()
    return module.plan(args, gather(module, args, env))


def apply(change: Change) -> list[CommandResult]:
    """Run every step; stop at the first failure, as the executor does."""
    results = []
    for step in change.steps:
        if isinstance(step, Command):
            result = sh(step.command, step.stdin)
        elif isinstance(step, Upload):
            result = _upload(step)
        else:
            assert isinstance(step, Fetch)
            shutil.copyfile(step.src, step.dest)
            result = CommandResult("fetch", 0)
        results.append(result)
        if result.rc != (0 if not isinstance(step, Command) else step.ok_rc[0]):
            break
    return results


def _upload(step: Upload) -> CommandResult:
    dest = Path(step.dest)
    assert not dest.is_symlink(), "the executor refuses a symbolic link at the destination"
    fd, temp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    with os.fdopen(fd, "wb") as handle:
        handle.write(step.content)
    if step.mode:
        os.chmod(temp, int(step.mode, 8))
    if step.owner or step.group:
        shutil.chown(temp, _id(step.owner), _id(step.group))  # type: ignore[arg-type]
    os.replace(temp, dest)
    return CommandResult(f"upload {dest}", 0)


def _id(name: str | None) -> int | str | None:
    return int(name) if name is not None and name.isdigit() else name


def converge(name: str, args: Mapping[str, Any]) -> Change:
    """Plan and apply once; the next plan must predict no change. Returns the first plan."""
    first = plan(name, args)
    assert not first.failed, first.failed
    results = apply(first)
    assert all(r.rc == 0 for r in results), [r.stderr for r in results]
    second = plan(name, args)
    assert not second.failed, second.failed
    assert not second.changed, f"not idempotent: {second.steps} {second.diffs}"
    return first
