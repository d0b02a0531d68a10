"""Check mode: plan each task from the state that the earlier planned changes leave.

Run stage, used by ``taskrun`` through the ``HostContext``. In check mode no
step is sent, so a task's probes read the host as it was before every
change planned ahead of it. Each planned change records what it leaves at
the paths it changes: the module's ``Change.effects``, or, when it declares
none, "unknown" for every path its facts read. A later task's facts are then
adjusted: the ``PathInfo`` of a changed path, or of a path under one, becomes
the state those effects predict; a fact that reads a path whose state cannot
be predicted makes the task's plan depend on that earlier change, and the
task says so instead of predicting from a stale probe.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from runner.modules.base import Change, Fact, PathEffect
from runner.modules.pathfact import CONTENT_LIMIT, PathInfo

_TYPE_BITS = {"file": 0o100000, "directory": 0o040000}


@dataclass(frozen=True)
class _Planned:
    """One effect of a planned change, and the task that plans it."""

    effect: PathEffect
    task: str


@dataclass
class Foresight:
    """The effects of the changes planned so far on one host, in plan order."""

    planned: list[_Planned] = field(default_factory=list)

    def record(self, task: str, change: Change, facts: Mapping[str, Fact], values: Mapping[str, Any]) -> None:
        """Remember what ``change`` (planned for ``task``) leaves; without effects, its paths are unknown."""
        effects = change.effects or tuple(PathEffect(path, below="unknown", known=False)
                                          for path in _paths(facts, values))
        self.planned.extend(_Planned(replace(e, path=posixpath.normpath(e.path)), task) for e in effects)

    def adjust(self, facts: Mapping[str, Fact], values: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """``values`` (the parsed ``facts``) as the planned changes leave them.

        Returns the adjusted values and the task whose change makes one of
        them unknowable ("" when every one is known); an unknowable value is
        left as it was probed.
        """
        adjusted = dict(values)
        cause = ""
        for name, value in values.items():
            if isinstance(value, PathInfo):
                info, why = self._path(value)
                adjusted[name] = value if info is None else info
            else:
                declared = facts.get(name)
                why = self._reads(declared.paths if declared else ())
            cause = cause or why
        return adjusted, cause

    def _path(self, info: PathInfo) -> tuple[PathInfo | None, str]:
        """The predicted ``PathInfo`` of ``info``'s path (None: unknown), and the task that made it so."""
        path = posixpath.normpath(info.path)
        state: PathInfo | None = info
        cause = ""
        for planned in self.planned:
            effect = planned.effect
            if effect.path == path:
                after = _applied(state, effect) if effect.known else None
            elif _under(path, effect.path):
                after = _below(path, effect, state)
            elif _under(effect.path, path) and info.tree is not None:
                after = None  # a tree histogram of the path: something in it changed
            else:
                continue
            if after is None and state is not None:
                cause = planned.task
            elif after is not None:
                cause = ""
            state = after
        return state, cause

    def _reads(self, paths: Iterable[str]) -> str:
        """The first task whose planned change touches one of ``paths`` (or what is below them), or ""."""
        for path in (posixpath.normpath(p) for p in paths):
            for planned in self.planned:
                where = planned.effect.path
                if where == path or _under(where, path) or _under(path, where):
                    return planned.task
        return ""


def _paths(facts: Mapping[str, Fact], values: Mapping[str, Any]) -> list[str]:
    """The host paths a task's facts read."""
    found = [path for fact in facts.values() for path in fact.paths]
    found += [value.path for value in values.values() if isinstance(value, PathInfo)]
    return list(dict.fromkeys(found))


def _under(path: str, ancestor: str) -> bool:
    return path != ancestor and path.startswith(ancestor.rstrip("/") + "/")


def _applied(state: PathInfo | None, effect: PathEffect) -> PathInfo | None:
    """What ``effect`` leaves at its path, which held ``state`` (None: unknown)."""
    if effect.kind == "absent":
        return PathInfo(effect.path, kind="absent", parent=state.parent if state else "directory")
    if effect.kind:
        state = PathInfo(effect.path, kind=effect.kind, raw_mode=None, parent="directory")
    elif state is None or not state.exists:
        return None
    return _with_content(_with_attributes(state, effect), effect.content)


def _below(path: str, effect: PathEffect, state: PathInfo | None) -> PathInfo | None:
    """What ``effect`` on an ancestor of ``path`` leaves at ``path``."""
    if not effect.known or effect.below == "unknown":
        return None
    if effect.below == "kept":
        return state
    parent = "absent"
    if posixpath.dirname(path) == effect.path:
        parent = {"absent": "absent", "file": "other"}.get(effect.kind, "directory")
    return PathInfo(path, kind="absent", parent=parent)


def _with_attributes(state: PathInfo, effect: PathEffect) -> PathInfo:
    if effect.mode is not None:
        state = replace(state, raw_mode=_TYPE_BITS.get(state.kind, 0) | effect.mode)
    if effect.owner is not None:
        uid = int(effect.owner) if effect.owner.isdigit() else None
        state = replace(state, uid=uid, owner="" if uid is not None else effect.owner)
    if effect.group is not None:
        gid = int(effect.group) if effect.group.isdigit() else None
        state = replace(state, gid=gid, group="" if gid is not None else effect.group)
    return state


def _with_content(state: PathInfo, content: bytes | None) -> PathInfo:
    if content is None:
        return state
    try:
        text: str | None = content.decode("utf-8") if len(content) <= CONTENT_LIMIT else None
    except UnicodeDecodeError:
        text = None
    return replace(state, checksum=hashlib.sha256(content).hexdigest(), content=text, size=len(content))


__all__ = ["Foresight"]
