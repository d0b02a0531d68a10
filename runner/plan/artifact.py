"""Saved plans as artifacts: the file ``remedy plan -o`` writes, and the checks ``apply`` makes first.

Plan stage. A saved plan is the check run's JSON document plus ``inputs``
(the command line to replay, and ``files``: the sha256 of every file the
plan read, by absolute path: the playbooks, the inventory sources with the
``group_vars/`` and ``host_vars/`` files read, each ``-e @file``),
``plan_id``, ``created``, ``expires`` (``--plan-ttl``) and a ``seal``: the
sha256 of the canonical text of all the rest and, with ``REMEDY_PLAN_KEY``
set, its HMAC-SHA256 under that key. The file is written in that canonical
form, so a change of any byte leaves invalid JSON, a text that is not
canonical, or a content that fails its seal.

``open_plan`` checks the file (``damaged``, ``tampered``, ``signature``,
``unsigned``, ``expired``) and ``check_inputs`` the files it read (``input
changed``); each failure is one ``PlanRefusedError``. ``relocate`` reads the
inputs of a plan made in another checkout (a CI job's) from this one.
Nothing here contacts a host.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from runner.errors import InputError, Location, PlanRefusedError

KEY_VARIABLE = "REMEDY_PLAN_KEY"
MIN_KEY_BYTES = 16
DEFAULT_TTL = "4h"
_MAX_TTL = timedelta(days=30)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_STAMP = "%Y-%m-%dT%H:%M:%SZ"
NEW_PLAN = "make and review a new plan with 'remedy plan ... -o PLAN'"


def parse_ttl(text: str) -> timedelta:
    """``--plan-ttl``: ``90s``, ``30m``, ``1h`` or ``2d``, from 1 second to 30 days.

    Raises:
        InputError: anything else (before any host is contacted).
    """
    match = re.fullmatch(r"\s*(\d{1,9})\s*([smhd])\s*", text)
    ttl = timedelta(seconds=int(match[1]) * _UNITS[match[2]]) if match else timedelta(0)
    if not timedelta(0) < ttl <= _MAX_TTL:
        raise InputError.at(Location("<command line --plan-ttl>"),
                            f"--plan-ttl {text!r} is not a duration from 1s to 30d",
                            "e.g. --plan-ttl 30m, 1h or 2d (a number and one of s, m, h, d)")
    return ttl


def plan_key(environ: Mapping[str, str]) -> bytes | None:
    """The signing key: ``REMEDY_PLAN_KEY`` without surrounding whitespace (None when unset or empty).

    Raises:
        InputError: a key shorter than 16 bytes.
    """
    key = environ.get(KEY_VARIABLE, "").strip().encode()
    if not key:
        return None
    if len(key) < MIN_KEY_BYTES:
        raise InputError.at(Location(f"<environment {KEY_VARIABLE}>"),
                            f"{KEY_VARIABLE} is too short ({len(key)} bytes, at least {MIN_KEY_BYTES})",
                            "use a random key, e.g. the output of 'openssl rand -hex 32'")
    return key


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes ('' when it cannot be read)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def input_files(playbooks: Sequence[str], inventory_files: Mapping[str, str],
                extra_vars: Sequence[str]) -> dict[str, str]:
    """The sha256 of every file a plan reads, by absolute path (inventory files as they were read)."""
    files = {os.path.abspath(p): file_sha256(p)
             for p in [*playbooks, *(item[1:] for item in extra_vars if item.startswith("@"))]}
    files.update(inventory_files)
    return files


def absolute_sources(inventory: Sequence[str], extra_vars: Sequence[str]) -> tuple[list[str], list[str]]:
    """``-i`` sources and ``-e`` items with absolute paths (host lists and ``k=v`` stay as given)."""
    sources = [s if "," in s and not os.path.exists(s) else os.path.abspath(s) for s in inventory]
    extra = [f"@{os.path.abspath(e[1:])}" if e.startswith("@") else e for e in extra_vars]
    return sources, extra


def _canonical(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def _signature(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_STAMP)


def seal_plan(document: Mapping[str, Any], *, now: datetime, ttl: timedelta, key: bytes | None) -> str:
    """The text of a saved plan: ``document`` with a new id, its creation and expiry, and its seal."""
    body = json.loads(json.dumps(document, default=str))  # plain JSON values, as they will read back
    body.pop("seal", None)
    body.update(plan_id=os.urandom(16).hex(), created=_stamp(now), expires=_stamp(now + ttl))
    text = _canonical(body)
    body["seal"] = {"sha256": hashlib.sha256(text.encode()).hexdigest(),
                    "hmac_sha256": _signature(key, text) if key else None}
    return _canonical(body)


def plan_digest(saved: Mapping[str, Any]) -> str:
    """The sha256 seal of an opened plan: with ``plan_id``, what the audit log records."""
    return str(saved["seal"]["sha256"])


def open_plan(path: str, *, key: bytes | None, now: datetime) -> dict[str, Any]:
    """Read a saved plan and check its bytes, its signature and its expiry.

    Raises:
        PlanRefusedError: the first check that fails.
    """
    text = _read_plan(path)
    try:
        saved = json.loads(text)
    except ValueError:
        saved = None
    if not isinstance(saved, dict) or not {"hosts", "inputs", "seal"} <= set(saved) \
            or not isinstance(saved["seal"], dict):
        if '"seal"' in text:
            raise PlanRefusedError(path, "tampered", "the file is no longer the JSON document remedy "
                                   "wrote", NEW_PLAN)
        what = "the JSON output of a run (--format json), not a plan saved by 'remedy plan -o'" \
            if isinstance(saved, dict) and "hosts" in saved and "inputs" not in saved \
            else "not a sealed plan saved by 'remedy plan -o' (an older remedy's plan has no seal)"
        raise PlanRefusedError(path, "damaged", what, NEW_PLAN)
    _check_seal(path, text, saved, key)
    _check_expiry(path, saved, now)
    return saved


def _read_plan(path: str) -> str:
    try:
        return Path(path).read_bytes().decode("utf-8")
    except OSError as error:
        raise PlanRefusedError(path, "unreadable", str(error.strerror or error),
                               "give the path of the plan file") from None
    except UnicodeDecodeError:
        raise PlanRefusedError(path, "tampered", "the file is not UTF-8 text as remedy wrote it",
                               NEW_PLAN) from None


def _check_seal(path: str, text: str, saved: dict[str, Any], key: bytes | None) -> None:
    if _canonical(saved) != text:
        raise PlanRefusedError(path, "tampered", "the file is not byte for byte as remedy wrote it",
                               NEW_PLAN)
    body = {k: v for k, v in saved.items() if k != "seal"}
    seal = saved["seal"]
    digest = hashlib.sha256(_canonical(body).encode()).hexdigest()
    if set(seal) != {"sha256", "hmac_sha256"} or not all(
            value is None or re.fullmatch(r"[0-9a-f]{64}", str(value)) for value in seal.values()):
        raise PlanRefusedError(path, "tampered", "its seal is not the one remedy writes", NEW_PLAN)
    if not hmac.compare_digest(str(seal["sha256"]), digest):
        raise PlanRefusedError(path, "tampered", "its content does not match its sha256 seal", NEW_PLAN)
    signature = seal["hmac_sha256"]
    if key is None and signature:
        raise PlanRefusedError(path, "signature", f"the plan is signed but {KEY_VARIABLE} is not set",
                               f"set {KEY_VARIABLE} to the key it was signed with")
    if key is not None and not signature:
        raise PlanRefusedError(path, "unsigned", f"{KEY_VARIABLE} is set but the plan is not signed",
                               f"make the plan with {KEY_VARIABLE} set, so that it is signed")
    if key is not None and not hmac.compare_digest(str(signature), _signature(key, _canonical(body))):
        raise PlanRefusedError(path, "signature", f"the plan was signed with another key than "
                               f"{KEY_VARIABLE} (or changed and sealed again without the key)",
                               f"check {KEY_VARIABLE}, or {NEW_PLAN}")


def _check_expiry(path: str, saved: Mapping[str, Any], now: datetime) -> None:
    try:
        expires = datetime.strptime(str(saved["expires"]), _STAMP).replace(tzinfo=UTC)
    except (KeyError, ValueError):
        raise PlanRefusedError(path, "damaged", "the plan has no valid expiry time", NEW_PLAN) from None
    if now >= expires:
        raise PlanRefusedError(path, "expired", f"the plan expired at {saved['expires']} (made at "
                               f"{saved.get('created')}, now {_stamp(now)})",
                               f"{NEW_PLAN} (--plan-ttl sets how long it stays valid)")


def check_inputs(path: str, planned: Mapping[str, str], now: Mapping[str, str]) -> None:
    """The files the plan read are the files read now, with the same sha256.

    Raises:
        PlanRefusedError: naming the first file that changed, went or came, and how many others did.
    """
    differences = [f"{name} changed since the plan was made" for name in planned
                   if name in now and now[name] != planned[name]]
    differences += [f"{name} is gone or no longer read" for name in planned if name not in now]
    differences += [f"{name} is read now but was not when the plan was made" for name in now
                    if name not in planned]
    if differences:
        more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
        raise PlanRefusedError(path, "input changed", differences[0] + more, NEW_PLAN)


def relocate(inputs: Mapping[str, Any], here: Mapping[str, str]) -> dict[str, Any]:
    """``inputs`` of a plan made under other roots (a CI job's checkout), read under ``here``'s.

    ``here`` names the current roots (``workdir``, ``bundled``); a recorded
    path under the plan's root of the same name is read from the same place
    under the current root when that exists. The sha256 checks still apply.
    """
    moves = [(old.rstrip("/") + "/", here[name].rstrip("/") + "/")
             for name, old in dict(inputs.get("roots") or {}).items()
             if name in here and old != here[name]]

    def move(name: str) -> str:
        for old, new in moves:
            if name.startswith(old) and os.path.exists(new + name[len(old):]):
                return new + name[len(old):]
        return name

    moved = dict(inputs)
    moved["playbooks"] = [move(p) for p in inputs["playbooks"]]
    moved["inventory"] = [move(s) for s in inputs["inventory"]]
    moved["extra_vars"] = [f"@{move(e[1:])}" if e.startswith("@") else e for e in inputs["extra_vars"]]
    moved["files"] = {move(name): sha for name, sha in dict(inputs["files"]).items()}
    return moved
