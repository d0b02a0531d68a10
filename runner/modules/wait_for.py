"""The ``wait_for`` module: wait until a port or a file reaches a state.

Services layer. The plan is one read-only sh script that polls with its own
deadline (``date +%s``). A port on this host is checked in
``/proc/net/tcp{,6}`` (a LISTEN socket), without ss, netstat or nc; a port of
another host with bash's ``/dev/tcp`` or, failing that, ``nc -z``. A file is
checked with ``test -e`` and ``grep -E``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from runner.modules.base import (
    Arg,
    Change,
    Command,
    Module,
    Outcome,
    command_data,
    failure_message,
    quote,
)
from runner.results import CommandResult

#: Hosts whose ports are this host's own: checked in /proc/net/tcp (names, not binds).
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", "::", ""})  # noqa: S104
_HOST = re.compile(r"^[A-Za-z0-9._:%-]+$")
_TIMED_OUT = 1
_CANNOT_CHECK = 3


class WaitForModule(Module):
    """Wait for a TCP port to open or close, or a file (or a string in it) to appear or go.

    ``started``/``present`` wait until the port accepts connections or the file
    exists (and ``search_regex``, a POSIX extended regular expression, matches a
    line of it); ``stopped``/``absent`` wait for the opposite. With neither
    ``port`` nor ``path`` it just waits ``timeout`` seconds.
    """

    name = "wait_for"
    summary = "Wait until a TCP port or a file (or a string in it) reaches a state"
    read_only = True
    args = {
        "host": Arg(
            "str", default="127.0.0.1", doc="The host whose port to check, as seen from the managed host."
        ),
        "port": Arg("int", doc="The TCP port to wait for."),
        "path": Arg("path", doc="The file to wait for."),
        "search_regex": Arg("str", doc="A POSIX extended regular expression (grep -E) to wait for in path."),
        "state": Arg(
            "str",
            default="started",
            choices=("started", "stopped", "present", "absent"),
            doc="started/present: wait until open or there; stopped/absent: until closed or gone.",
        ),
        "timeout": Arg("int", default=300, doc="Seconds to wait at most."),
        "delay": Arg("int", default=0, doc="Seconds to wait before the first check."),
        "sleep": Arg("int", default=1, doc="Seconds between checks."),
        "msg": Arg("str", doc="The failure message on timeout."),
    }
    mutually_exclusive = (("port", "path"),)

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        a = self.resolved(args)
        try:
            problem = _problem(a)
        except (TypeError, ValueError):
            problem = "port, timeout, delay and sleep must be whole numbers"
        if problem:
            return Change(changed=False, failed=problem)
        check = _check(a)
        timeout, delay, pause = int(a["timeout"]), int(a["delay"]), max(int(a["sleep"]), 1)
        lines = [f"sleep {delay}"] if delay else []
        if check is None:
            lines.append(f"sleep {timeout}")
            script = "\n".join([*lines, f"echo elapsed={timeout}"])
        else:
            script = "\n".join([*lines, *check, *_loop(timeout, pause)])
        data = {"state": a["state"], "port": a["port"], "path": a["path"]}
        return Change(changed=False, steps=(Command(script),), data=data, summary=_what(a, waiting=True))

    def outcome(
        self,
        args: Mapping[str, Any],
        facts: Mapping[str, Any],
        change: Change,
        results: Sequence[CommandResult],
    ) -> Outcome:
        data: dict[str, Any] = dict(change.data)
        if not results:
            return Outcome(changed=False, data=data)
        result = results[-1]
        match = re.search(r"^elapsed=(\d+)$", result.stdout, re.MULTILINE)
        data["elapsed"] = int(match.group(1)) if match else int(result.duration)
        if result.rc == 0:
            return Outcome(changed=False, data=data)
        if result.rc == _TIMED_OUT:
            a = self.resolved(args)
            message = str(a["msg"]) if a["msg"] else f"Timeout when {_what(a, waiting=True)}"
            return Outcome(changed=False, failed=message, data={**data, "msg": message})
        return Outcome(changed=False, failed=failure_message(result), data={**data, **command_data(result)})


def _problem(a: Mapping[str, Any]) -> str:
    if a["port"] is not None and not 1 <= int(a["port"]) <= 65535:
        return f"port must be between 1 and 65535, not {a['port']}"
    if a["search_regex"] is not None and a["path"] is None:
        return "search_regex needs path (waiting for a string on a port is not supported)"
    if a["port"] is not None and not _HOST.match(str(a["host"])):
        return f"invalid host {a['host']!r}"
    if min(int(a["timeout"]), int(a["delay"]), int(a["sleep"])) < 0:
        return "timeout, delay and sleep must not be negative"
    return ""


def _what(a: Mapping[str, Any], *, waiting: bool) -> str:
    going = a["state"] in ("stopped", "absent")
    if a["port"] is not None:
        return f"waiting for {a['host']}:{a['port']}" + (" to stop" if going else "")
    if a["path"] is not None:
        if a["search_regex"] is not None:
            gone = " to disappear" if going else ""
            return f"waiting for search string {a['search_regex']} in {a['path']}{gone}"
        return f"waiting for {a['path']}" + (" to be absent" if going else "")
    return f"waiting {a['timeout']} seconds"


def _check(a: Mapping[str, Any]) -> list[str] | None:
    """The sh definition of ``check``: 0 reached, 1 not yet, 3 cannot check."""
    going = a["state"] in ("stopped", "absent")
    if a["port"] is not None:
        invert = "port_open; case $? in 0) return 1;; 1) return 0;; *) return 3;; esac"
        return [
            *_port_open(str(a["host"]), int(a["port"])),
            f"check() {{ {invert if going else 'port_open'}; }}",
        ]
    if a["path"] is not None:
        path = quote(a["path"])
        if a["search_regex"] is not None:
            found = f"grep -E -q -e {quote(a['search_regex'])} -- {path} 2>/dev/null"
            test = f"! {found}" if going else f"[ -e {path} ] && {found}"
        else:
            test = f"[ ! -e {path} ]" if going else f"[ -e {path} ]"
        return [f"check() {{ {test}; }}"]
    return None


def _port_open(host: str, port: int) -> list[str]:
    """The sh function ``port_open``: 0 open, 1 closed, 3 cannot check."""
    connect = [
        "  if command -v bash >/dev/null 2>&1; then",
        "    t=; if command -v timeout >/dev/null 2>&1; then t='timeout 5'; fi",
        f"    if $t bash -c 'exec 3<>\"/dev/tcp/$0/$1\"' {quote(host)} {port} 2>/dev/null; "
        "then return 0; fi; return 1",
        "  fi",
        "  if command -v nc >/dev/null 2>&1; then",
        f"    if nc -z -w 5 {quote(host)} {port} >/dev/null 2>&1; then return 0; fi; return 1",
        "  fi",
        f"  echo {quote(f'cannot test a TCP connection to {host}: the host has neither bash nor nc')}"
        " >&2; return 3",
    ]
    if host not in LOCAL_HOSTS:
        return ["port_open() {", *connect, "}"]
    listening = (
        f'awk -v port={port:04X} \'FNR > 1 {{ n = split($2, a, ":"); '
        'if (toupper(a[n]) == port && $4 == "0A") found = 1 } END { exit found ? 0 : 1 }\' $files'
    )
    return [
        "port_open() {",
        "  files=",
        '  for t in /proc/net/tcp /proc/net/tcp6; do if [ -r "$t" ]; then files="$files $t"; fi; done',
        f'  if [ -n "$files" ]; then {listening}; return; fi',
        *connect,
        "}",
    ]


def _loop(timeout: int, pause: int) -> list[str]:
    return [
        "start=$(date +%s)",
        f"deadline=$((start + {timeout}))",
        "while :; do",
        "  check; r=$?",
        '  if [ $r -eq 0 ]; then echo "elapsed=$(($(date +%s) - start))"; exit 0; fi',
        f"  if [ $r -eq {_CANNOT_CHECK} ]; then exit {_CANNOT_CHECK}; fi",
        '  if [ "$(date +%s)" -ge "$deadline" ]; then break; fi',
        f"  sleep {pause}",
        "done",
        'echo "elapsed=$(($(date +%s) - start))"',
        f"exit {_TIMED_OUT}",
    ]
