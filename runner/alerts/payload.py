"""Alertmanager webhook payloads (version 4): bytes -> a checked ``Notification``.

Alerts stage, first step: ``read_notification`` parses one webhook body as
Alertmanager sends it (``version``, ``groupKey``, ``status``, ``receiver``,
``groupLabels``, ``commonLabels``, ``alerts``: each with ``status``,
``labels``, ``annotations``, ``startsAt``, ``endsAt``, ``fingerprint``,
``generatorURL``). Anything else is a ``PayloadError`` whose message is the
reason (the listener answers it with HTTP 400, ``trigger`` with exit 4):
invalid JSON, duplicate keys, a version other than "4", an alert without
labels or without ``alertname``, a label that is not a string. An alert
without a fingerprint gets one made from its labels, as Alertmanager's own.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.errors import InputError, Location

#: The webhook format remedy reads.
VERSION = "4"
#: The largest payload read (``listen --max-body`` sets its own).
MAX_PAYLOAD_BYTES = 1024 * 1024
STATUSES = ("firing", "resolved")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class PayloadError(InputError):
    """A webhook payload remedy cannot accept; the message says why."""

    @property
    def reason(self) -> str:
        """The problems in one line, for an HTTP 400 body."""
        return "; ".join(p.message for p in self.problems)


@dataclass(frozen=True)
class Alert:
    """One alert of a notification."""

    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    fingerprint: str
    starts_at: str = ""
    ends_at: str = ""
    generator_url: str = ""

    @property
    def name(self) -> str:
        return self.labels["alertname"]

    @property
    def firing(self) -> bool:
        return self.status == "firing"


@dataclass(frozen=True)
class Notification:
    """One webhook payload: its group and its alerts."""

    group_key: str
    status: str
    receiver: str
    alerts: tuple[Alert, ...]


def read_notification(data: bytes, source: str, *, limit: int = MAX_PAYLOAD_BYTES) -> Notification:
    """Parse and check one webhook payload; ``source`` names it in errors.

    Raises:
        PayloadError: the payload is too large, not JSON, or not a version 4 notification.
    """
    where = Location(source)
    if len(data) > limit:
        raise PayloadError.at(where, f"the payload has {len(data)} bytes, more than the limit of {limit}",
                              "send fewer alerts per notification (Alertmanager: max_alerts)")
    body = _parse_json(data, source)
    if not isinstance(body, dict):
        raise PayloadError.at(where, f"the payload is a JSON {_kind(body)}, not an object",
                              "send an Alertmanager webhook notification")
    version = body.get("version")
    if version != VERSION:
        raise PayloadError.at(where, f"version is {version!r}, and remedy reads Alertmanager webhook "
                              f"version {VERSION!r}", "point an Alertmanager webhook_config at remedy")
    status = body.get("status")
    if status not in STATUSES:
        raise PayloadError.at(where, f"status is {status!r}, not 'firing' or 'resolved'")
    items = body.get("alerts")
    if not isinstance(items, list) or not items:
        raise PayloadError.at(where, "'alerts' must be a non-empty list of alerts")
    alerts = tuple(_alert(item, f"alerts[{index}]", where) for index, item in enumerate(items))
    return Notification(group_key=_text(body, "groupKey", "", where), status=status,
                        receiver=_text(body, "receiver", "", where), alerts=alerts)


def _parse_json(data: bytes, source: str) -> Any:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise PayloadError.at(Location(source), f"duplicate key {key!r} in a JSON object",
                                      "send each key once")
            result[key] = value
        return result

    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=unique)
    except json.JSONDecodeError as error:
        raise PayloadError.at(Location(source, error.lineno, error.colno),
                              f"invalid JSON: {error.msg} (line {error.lineno} column {error.colno})",
                              "send the notification as Alertmanager's JSON") from None
    except UnicodeDecodeError as error:
        raise PayloadError.at(Location(source), f"the payload is not UTF-8 (byte {error.start})") from None
    except (ValueError, RecursionError) as error:  # a number too long, nesting too deep
        raise PayloadError.at(Location(source), f"invalid JSON: {error}") from None


def _alert(item: Any, path: str, where: Location) -> Alert:
    if not isinstance(item, dict):
        raise PayloadError.at(where, f"{path} is a JSON {_kind(item)}, not an alert object")
    status = item.get("status")
    if status not in STATUSES:
        raise PayloadError.at(where, f"{path}.status is {status!r}, not 'firing' or 'resolved'")
    if "labels" not in item:
        raise PayloadError.at(where, f"{path} has no labels", "every Alertmanager alert has labels")
    labels = _strings(item["labels"], f"{path}.labels", where)
    bad = [name for name in labels if not _LABEL_NAME.match(name)]
    if bad:
        raise PayloadError.at(where, f"{path}.labels: {bad[0]!r} is not a label name")
    if not labels.get("alertname"):
        raise PayloadError.at(where, f"{path}.labels has no alertname", "every alert names itself")
    annotations = _strings(item.get("annotations", {}), f"{path}.annotations", where)
    fingerprint = _text(item, "fingerprint", "", where) or _fingerprint(labels)
    return Alert(status=status, labels=labels, annotations=annotations, fingerprint=fingerprint,
                 starts_at=_text(item, "startsAt", "", where), ends_at=_text(item, "endsAt", "", where),
                 generator_url=_text(item, "generatorURL", "", where))


def _strings(value: Any, path: str, where: Location) -> dict[str, str]:
    if not isinstance(value, dict):
        raise PayloadError.at(where, f"{path} is a JSON {_kind(value)}, not an object of strings")
    for key, item in value.items():
        if not isinstance(item, str):
            raise PayloadError.at(where, f"{path}.{key} is a JSON {_kind(item)}, not a string")
    return dict(value)


def _text(body: Mapping[str, Any], key: str, default: str, where: Location) -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise PayloadError.at(where, f"{key} is a JSON {_kind(value)}, not a string")
    return value


def _fingerprint(labels: Mapping[str, str]) -> str:
    """A stable id from the sorted labels (Alertmanager sends its own; this stands in when it is absent)."""
    text = "\xff".join(f"{k}\xff{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _kind(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")
