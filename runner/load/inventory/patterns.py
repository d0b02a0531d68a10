"""Host patterns: the grammar of inventory host entries and of ``--limit``.

Load stage, in the ``inventory`` package. Three jobs, each with Ansible's rules:

- ``split_port`` and ``expand_ranges`` turn an inventory host entry
  (``web[01:10]:2222``, ``[::1]:22``, ``db-[a:c]``) into names and a port;
- ``check_host_name`` and ``check_user`` decide which names may reach ssh:
  letters, digits, ``._-`` (users also ``@``), no leading ``-``, or an IP
  address (reliability catalogue item 22, CVE-2023-51385);
- ``select_hosts`` evaluates ``a:b``, ``a,b``, ``web:&prod``, ``!db``,
  ``web*``, ``~regex``, ``@file``, ``web[0:2]``, ``all`` in inventory order.

Unlike Ansible, a pattern part that matches nothing, or a selection that ends
up empty, is an ``InventoryError`` with a did-you-mean, not a warning: a typo
in ``all:!prodction`` must not run a playbook on production.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import string
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import InventoryError, Location, ProblemCollector, suggest
from runner.load.inventory.model import LOCALHOST_NAMES

if TYPE_CHECKING:
    from runner.load.inventory.model import Inventory

#: The most hosts one inventory entry (``web[1:100]``) may expand to.
MAX_RANGE_HOSTS = 100_000


class HostPatternError(ValueError):
    """An inventory host entry cannot be expanded; ``hint`` says how to fix it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


# --- inventory host entries -------------------------------------------------

_NUM_RANGE = r"\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_HEX_RANGE = r"\[(?:[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\]"
_ALNUM_RANGE = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_I6 = rf"(?:[0-9a-f]{{1,4}}|{_HEX_RANGE})"
_I4 = rf"(?:[01]?[0-9]{{1,2}}|2[0-4][0-9]|25[0-5]|{_NUM_RANGE})"
_LABEL = rf"(?:[\w]|{_ALNUM_RANGE})(?:[\w_-]|{_ALNUM_RANGE})*(?<![_-])"
_BRACKETED_PORT = re.compile(r"^\[(.+)\]:([0-9]+)$")
_HOST_PORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$")
_IPV4 = re.compile(rf"^(?:{_I4}\.){{3}}{_I4}$", re.I)
_IPV6 = re.compile(
    rf"^((?:{_I6}:){{7}}{_I6}|(?:{_I6}:){{1,6}}:|(?:{_I6}:)(?::{_I6}){{1,6}}|"
    rf"(?:{_I6}:){{2}}(?::{_I6}){{1,5}}|(?:{_I6}:){{3}}(?::{_I6}){{1,4}}|"
    rf"(?:{_I6}:){{4}}(?::{_I6}){{1,3}}|(?:{_I6}:){{5}}(?::{_I6}){{1,2}}|"
    rf"(?:{_I6}:){{6}}(?::{_I6})|:(?::{_I6}){{1,6}}|{_I6}?::|"
    rf"(?:0:){{6}}(?:{_I6}\.){{3}}{_I6}|::(?:ffff:)?(?:{_I6}\.){{3}}{_I6}|"
    rf"(?:0:){{5}}ffff:(?:{_I6}\.){{3}}{_I6})$",
    re.I,
)
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$", re.I)


def split_port(entry: str) -> tuple[str, int | None]:
    """Split ``host:port`` / ``[v6]:port`` as Ansible's ``parse_address`` does.

    An entry that is not a recognisable address is returned whole, port None.
    """
    address, port = entry, None
    for pattern in (_BRACKETED_PORT, _HOST_PORT):
        match = pattern.match(address)
        if match:
            address, port = match.group(1), int(match.group(2))
    if any(p.match(address) for p in (_IPV4, _IPV6, _HOSTNAME)):
        return address, port
    return entry, None


def expand_ranges(name: str) -> list[str]:
    """Expand ``[01:10]``, ``[1:10:2]``, ``[a:f]`` ranges (several allowed) in a host name.

    Raises:
        HostPatternError: unclosed, empty, reversed or mixed ranges, a zero step, or
            more than ``MAX_RANGE_HOSTS`` names.
    """
    names = [name]
    while "[" in names[0]:  # every name has the same brackets left
        body, closed, _ = names[0].partition("[")[2].partition("]")
        if not closed:
            raise HostPatternError(f"unclosed range in host name {name!r}", "write it as web[01:10]")
        items = _range_items(body, name)
        if len(names) * len(items) > MAX_RANGE_HOSTS:
            raise HostPatternError(
                f"{name!r} expands to more than {MAX_RANGE_HOSTS} hosts", "split it into smaller ranges"
            )
        names = [n[: n.index("[")] + item + n[n.index("]") + 1 :] for n in names for item in items]
    return names


def _range_items(body: str, name: str) -> list[str]:
    bounds = body.split(":")
    if len(bounds) not in (2, 3) or not bounds[1]:
        raise HostPatternError(
            f"invalid range [{body}] in {name!r}",
            "a range is [begin:end] or [begin:end:step], e.g. [01:10] or [a:f]",
        )
    begin, end = bounds[0] or "0", bounds[1]
    step = bounds[2] if len(bounds) == 3 else "1"
    if not step.isdigit() or int(step) == 0:
        raise HostPatternError(
            f"invalid step {step!r} in range [{body}] of {name!r}", "the step must be a positive integer"
        )
    letters = string.ascii_letters
    if len(begin) == 1 and len(end) == 1 and begin in letters and end in letters:
        if letters.index(begin) > letters.index(end):
            raise HostPatternError(f"range [{body}] in {name!r} runs backwards", f"write [{end}:{begin}]")
        return list(letters[letters.index(begin) : letters.index(end) + 1 : int(step)])
    if not (begin.isdigit() and end.isdigit()):
        raise HostPatternError(
            f"invalid range [{body}] in {name!r}: both ends must be numbers or single letters",
            "write [1:9] or [a:f]",
        )
    if int(begin) > int(end):
        raise HostPatternError(
            f"range [{body}] in {name!r} is empty: {begin} > {end}", f"write [{end}:{begin}]"
        )
    if len(range(int(begin), int(end) + 1, int(step))) > MAX_RANGE_HOSTS:
        raise HostPatternError(
            f"range [{body}] in {name!r} has more than {MAX_RANGE_HOSTS} hosts",
            "split it into smaller ranges",
        )
    width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0
    if width and width != len(end):
        raise HostPatternError(
            f"range [{body}] in {name!r} mixes widths",
            f"pad both ends to {width} digits, e.g. [{begin}:{end.zfill(width)}]",
        )
    return [str(n).zfill(width) for n in range(int(begin), int(end) + 1, int(step))]


# --- names that reach ssh -------------------------------------------------------

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,252}$")
_SAFE_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._@-]{0,63}$")


def check_host_name(name: str) -> str:
    """An error message if ``name`` must not be used as an ssh host, else ``''``."""
    if _SAFE_NAME.match(name):
        return ""
    if re.fullmatch(r"[0-9A-Fa-f:.]+", name):
        try:
            ipaddress.ip_address(name)
            return ""
        except ValueError:
            pass
    if name.startswith("-"):
        return f"host name {name!r} starts with '-' (it would be read as an ssh option)"
    return f"host name {name!r} contains characters other than letters, digits and '._-'"


def check_user(user: str) -> str:
    """An error message if ``user`` must not be used as a login user, else ``''``."""
    if _SAFE_USER.match(user):
        return ""
    if user.startswith("-"):
        return f"user {user!r} starts with '-' (it would be read as an ssh option)"
    return f"user {user!r} contains characters other than letters, digits and '._@-'"


# --- --limit and play patterns ---------------------------------------------------

_SUBSCRIPT = re.compile(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+):([0-9]*))\]$")
_COLON_PARTS = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
_PATTERN_SOURCE = Location("<host pattern>")


def split_pattern(pattern: str) -> list[str]:
    """Split ``a:b`` or ``a,b`` into parts; an address or range (``::1``, ``web[1:3]``) stays whole."""
    if "," in pattern:
        parts = pattern.split(",")
    elif split_port(pattern)[0] != pattern or _is_address(pattern):
        parts = [pattern]
    else:
        parts = _COLON_PARTS.findall(pattern)
    return [p.strip() for p in parts if p.strip()]


def _is_address(text: str) -> bool:
    return any(p.match(text) for p in (_IPV4, _IPV6, _HOSTNAME))


def select_hosts(
    inventory: Inventory, pattern: str | Sequence[str] = "all", *, limit: str | Sequence[str] | None = None
) -> list[str]:
    """The hosts ``pattern`` selects (restricted to ``limit``), in inventory order.

    Raises:
        InventoryError: a part matches no host or group, a regex or subscript is
            invalid, an ``@file`` cannot be read, or nothing is left selected.
    """
    problems = ProblemCollector()
    selected = _evaluate(inventory, _parts(pattern, problems), problems)
    if limit is not None:
        allowed = set(_evaluate(inventory, _parts(limit, problems), problems))
        selected = [name for name in selected if name in allowed]
    problems.raise_if_any(InventoryError)
    if not selected:
        shown = pattern if isinstance(pattern, str) else ",".join(pattern)
        within = limit if isinstance(limit, str) else ",".join(limit or ())
        extra = f" within --limit {within!r}" if limit else ""
        raise InventoryError.at(
            _PATTERN_SOURCE,
            f"host pattern {shown!r} selects no hosts{extra}",
            "every part matches something, but '&' and '!' leave nothing; "
            "check with 'remedy inventory --graph'",
        )
    return selected


def _parts(pattern: str | Sequence[str], problems: ProblemCollector) -> list[tuple[str, Location]]:
    parts: list[tuple[str, Location]] = []
    for item in [pattern] if isinstance(pattern, str) else pattern:
        texts = split_pattern(item)
        if "," not in item and ":".join(texts) != re.sub(r"\s+", "", item):
            problems.add(
                _PATTERN_SOURCE,
                f"cannot split host pattern {item!r} into parts",
                "separate parts with ',' (or ':') and close every '['",
            )
            continue
        for text in texts:
            if text.startswith("@"):
                parts.extend(_read_pattern_file(text[1:], problems))
            else:
                parts.append((text, _PATTERN_SOURCE))
    return parts


def _read_pattern_file(path: str, problems: ProblemCollector) -> list[tuple[str, Location]]:
    try:
        lines = Path(path).read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as error:
        problems.add(
            Location(path),
            f"cannot read host pattern file: {error}",
            "@FILE names a file with one host pattern per line",
        )
        return []
    return [(line.strip(), Location(path, number)) for number, line in enumerate(lines, 1) if line.strip()]


def _evaluate(
    inventory: Inventory, parts: list[tuple[str, Location]], problems: ProblemCollector
) -> list[str]:
    """Ansible's order: plain parts (union), then ``&`` parts, then ``!`` parts."""
    plain = [p for p in parts if p[0][0] not in "&!"] or [("all", _PATTERN_SOURCE)]
    ordered = plain + [p for p in parts if p[0][0] == "&"] + [p for p in parts if p[0][0] == "!"]
    selected: list[str] = []
    for text, location in ordered:
        if text in inventory.hosts:
            matched = [text]
        else:
            matched = _match_one(inventory, text, location, problems)
        if text[0] == "!":
            drop = set(matched)
            selected = [name for name in selected if name not in drop]
        elif text[0] == "&":
            keep = set(matched)
            selected = [name for name in selected if name in keep]
        else:
            selected.extend(name for name in matched if name not in selected)
    return selected


def _match_one(inventory: Inventory, text: str, location: Location, problems: ProblemCollector) -> list[str]:
    """The hosts of one part (``&``/``!`` ignored): matching groups' hosts, then matching hosts."""
    expr, index, start, end = _split_subscript(text[1:] if text[0] in "&!" else text)
    try:
        matcher = re.compile(expr[1:] if expr.startswith("~") else fnmatch.translate(expr))
    except re.error as error:
        problems.add(location, f"invalid regular expression in host pattern {text!r}: {error}")
        return []
    groups = [name for name in inventory.groups if matcher.match(name)]
    hosts: list[str] = []
    for group in groups:
        hosts.extend(h for h in inventory.group_hosts(group) if h not in hosts)
    if not groups or expr.startswith("~") or any(c in expr for c in ".?*["):
        hosts.extend(h for h in inventory.hosts if matcher.match(h) and h not in hosts)
    if not hosts and expr in LOCALHOST_NAMES:
        hosts = [inventory.localhost or expr]
    if not hosts:
        candidates = [*inventory.groups, *inventory.hosts]
        problems.add(
            location,
            f"host pattern {text!r} matches no host or group" + suggest(expr.lstrip("~"), candidates),
            "groups: " + ", ".join(list(inventory.groups)[:12]),
        )
        return []
    selected = _apply_subscript(hosts, index, start, end)
    if not selected:
        problems.add(
            location,
            f"host pattern {text!r} is out of range",
            f"it subscripts {len(hosts)} hosts, numbered 0 to {len(hosts) - 1}",
        )
    return selected


def _split_subscript(text: str) -> tuple[str, int | None, int | None, int | None]:
    """``web[1]`` → (web, 1, None, None); ``web[0:2]`` → (web, None, 0, 2); ``web[2:]`` end -1."""
    match = _SUBSCRIPT.match(text) if not text.startswith("~") else None
    if not match:
        return text, None, None, None
    expr, index, start, end = match.groups()
    if index is not None:
        return expr, int(index), None, None
    return expr, None, int(start), int(end) if end else -1


def _apply_subscript(hosts: list[str], index: int | None, start: int | None, end: int | None) -> list[str]:
    if index is not None:
        return [hosts[index]] if -len(hosts) <= index < len(hosts) else []
    if start is None or end is None:
        return hosts
    return hosts[start:] if end == -1 else hosts[start : end + 1]
