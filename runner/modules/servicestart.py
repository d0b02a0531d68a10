"""Starting a service that must stay up: attempts, backoff, settle time, crash loops.

Services layer, used by the ``service`` module's two managers. A start step
is one sh script that tries up to ``attempts`` times, ``backoff`` seconds
apart (doubled each time). An attempt counts only if the service still runs
``settle`` seconds after it started. After a failed attempt, ``crash_limit``
crashes (systemd's NRestarts, or the starts of the service's start record
that did not end in a clean stop) stop the attempts: a crash loop is not
cured by restarting. A failed start script leaves nothing of the service
running and prints, on stderr, one line per attempt, its verdict, and the
last lines of the service's logs (``log=`` lines), which
``start_failure`` turns into the task's message and data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from runner.modules.base import Change, Command, quote
from runner.modules.servicefacts import ALIVE, CRASHES, Extras, ServiceFacts, log_tail_command
from runner.results import CommandResult

#: Exit codes of a start script that gave up: a crash loop, or every attempt failed.
CRASH_LOOP, GAVE_UP = 3, 4
START_FAILED = (CRASH_LOOP, GAVE_UP)
_LOG = "log="


def extras_of(a: Mapping[str, Any]) -> Extras:
    """The start record and logs the probe reads, from the resolved arguments."""
    return Extras(a["start_record"], int(a["crash_window"]), tuple(str(p) for p in a["logs"] or ()),
                  int(a["log_lines"]))


def crash_count(f: ServiceFacts, manager: str) -> int:
    """Crashes the probe saw: systemd's NRestarts, or the start record's unclean starts."""
    if manager != "systemd":
        return f.crashes
    restarts = f.unit.get("NRestarts", "")
    return int(restarts) if restarts.isdigit() else 0


def _is_plain(a: Mapping[str, Any]) -> bool:
    return int(a["attempts"]) <= 1 and int(a["settle"]) <= 0 and int(a["crash_limit"] or 0) <= 0


def systemd_start(a: Mapping[str, Any], verb: str) -> Command:
    """``systemctl start|restart``; with attempts, settle or crash_limit, the attempts script."""
    unit = quote(a["name"])
    if _is_plain(a) and not a["logs"]:
        return Command(f"systemctl {verb} -- {unit}")
    settle = max(int(a["settle"]), 0)
    attempt = [
        "try() {",
        f'  if ! systemctl {verb} -- "$u"; then why="systemctl {verb} failed"; return 1; fi',
        "  j=0",
        f"  while [ $j -lt {settle} ]; do sleep 1; j=$((j+1)); "
        'if ! systemctl is-active --quiet -- "$u"; then why="it stopped ${j}s after it started"; '
        "return 1; fi; done",
        "}",
    ]
    crashes = 'c=$(systemctl show --property=NRestarts --value -- "$u" 2>/dev/null)'
    return Command("\n".join([f"u={unit}", *attempt, *_attempts(a, crashes, "NRestarts=$c")]))


def pidfile_start(a: Mapping[str, Any], *, remove_stale: bool) -> str:
    """The pidfile manager's start script: run ``start`` detached, wait for a live pidfile, settle.

    A start command still running without a pidfile is taken for the service itself (a
    program that stays in the foreground) only once ``start_timeout`` has passed: before
    that it may be a starter waiting for its daemon, which writes the pidfile when ready.
    """
    timeout = max(int(a["start_timeout"]), 1)
    settle = max(int(a["settle"]), 0)
    record = a["start_record"] if int(a["crash_limit"] or 0) > 0 else None
    crashes = (f'c=$(crashes {quote(record)} {int(a["crash_window"])} "")' if record else "")
    return "\n".join([
        ALIVE,
        *([CRASHES] if record else []),
        f"f={quote(a['pidfile'])}",
        *(['rm -f -- "$f"'] if remove_stale else []),
        "cd / || exit 1",
        f"s={quote(a['start'])}",
        f"log={quote(a['log'])}",
        "settled() {",
        f'  j=0; while [ $j -lt {settle} ]; do sleep 1; j=$((j+1)); if ! alive "$1"; then '
        'why="it exited ${j}s after it started (pid $1)"; return 1; fi; done',
        "}",
        "try() {",
        '  old=; if [ -s "$f" ]; then read -r old <"$f"; fi',
        '  if command -v setsid >/dev/null 2>&1; then setsid sh -c "$s" </dev/null >>"$log" 2>&1 &',
        '  else nohup sh -c "$s" </dev/null >>"$log" 2>&1 & fi',
        "  bg=$! ended= i=0",
        f"  while [ $i -lt {timeout} ]; do",
        "    sleep 1; i=$((i+1)); pid=",
        '    if [ -s "$f" ]; then read -r pid <"$f"; fi',
        '    if alive "$pid"; then settled "$pid"; return; fi',
        '    if [ -z "$ended" ] && ! alive "$bg"; then ended=1; wait "$bg"; rc=$?',
        '      if [ $rc -ne 0 ]; then why="the start command exited $rc"; return 1; fi; fi',
        '    if [ -n "$ended" ] && [ -n "$pid" ] && [ "$pid" != "$old" ]; then',
        '      why="it exited right after it started (pid $pid)"; return 1; fi',
        "  done",
        "  # still running in the foreground without a pidfile after all that time: it is the service",
        '  if alive "$bg" && [ ! -s "$f" ]; then echo "$bg" >"$f" && { settled "$bg"; return; }; fi',
        f'  why="{timeout}s after the start $f names no live process"',
        '  if alive "$bg"; then kill -s KILL -- "-$bg" 2>/dev/null || kill -s KILL "$bg"; fi',
        "  return 1",
        "}",
        "clean() {",
        '  p=; if [ -s "$f" ]; then read -r p <"$f"; fi',
        '  if [ -e "$f" ] && ! alive "$p"; then rm -f -- "$f"; fi',
        "}",
        *_attempts(a, crashes, f"$c starts in the last {int(a['crash_window'])}s without a clean stop",
                   clean=True),
    ])


def _attempts(a: Mapping[str, Any], crashes: str, counted: str, *, clean: bool = False) -> list[str]:
    """The loop around ``try``: backoff, the crash-loop check, the verdict and the log tail."""
    attempts, limit = max(int(a["attempts"]), 1), int(a["crash_limit"] or 0)
    name = quote(a["name"])
    tail = log_tail_command(extras_of(a), f"sed 's/^/{_LOG}/' >&2")
    check = []
    if crashes and limit > 0:
        check = [
            f"  {crashes}",
            "  case $c in ''|*[!0-9]*) c=0;; esac",
            f"  if [ $c -ge {limit} ]; then echo {name}\": crash loop: {counted}; no further attempt\" >&2",
            *(f"    {line}" for line in tail.splitlines()),
            f"    exit {CRASH_LOOP}; fi",
        ]
    return [
        f"n=0 pause={max(int(a['backoff']), 0)}",
        "while :; do",
        "  n=$((n+1))",
        '  if try; then if [ $n -gt 1 ]; then echo "started at attempt $n"; fi; exit 0; fi',
        *(["  clean"] if clean else []),
        f'  echo "attempt $n of {attempts}: $why" >&2',
        *check,
        f"  if [ $n -ge {attempts} ]; then break; fi",
        '  sleep $pause; pause=$((pause * 2))',
        "done",
        f'echo {name}" did not stay up after $n attempt(s)" >&2',
        *tail.splitlines(),
        f"exit {GAVE_UP}",
    ]


def start_failure(change: Change, results: Sequence[CommandResult]) -> tuple[str, dict[str, Any]] | None:
    """The message and data of a start script that gave up, or None for any other result."""
    if not results or results[-1].rc not in START_FAILED:
        return None
    lines = results[-1].stderr.splitlines()
    tail = [line[len(_LOG):] for line in lines if line.startswith(_LOG)]
    said = [line for line in lines if not line.startswith(_LOG) and line.strip()]
    verdict = said[-1] if said else "the start failed"
    message = verdict + (f" ({'; '.join(said[:-1])})" if len(said) > 1 else "")
    return message, {"log_tail": tail, "crash_loop": results[-1].rc == CRASH_LOOP,
                     "attempts": sum(line.startswith("attempt ") for line in said)}
