"""The service probe, shared by the ``service`` module's two managers.

Services layer. One read-only sh command says whether systemd is PID 1 and
what it knows of the unit (LoadState, ActiveState, SubState, UnitFileState,
MainPID, NRestarts) and, when a pidfile is given, whether it names a live
process and that process's command line. Asked for, it also counts the
starts of the service's start record that did not end in a clean stop
(crashes) and reads the last lines of its log files. ``ServiceFacts`` holds
the answer; unreadable output sets ``error``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from runner.modules.base import Fact, quote
from runner.results import CommandResult, Diff

#: A sh function: whether $1 is the pid of a live (not zombie) process.
ALIVE = (
    'alive() { case $1 in ""|*[!0-9]*) return 1;; esac; '
    'if [ -d /proc/self ]; then [ -d "/proc/$1" ] || return 1; '
    'case "$(cat "/proc/$1/stat" 2>/dev/null)" in *") Z "*) return 1;; esac; '
    'else kill -0 "$1" 2>/dev/null; fi; }'
)


def wait_gone(timeout: int) -> list[str]:
    """sh lines after signalling ``$pid``: wait up to ``timeout`` seconds for it to exit (in 0.1 s
    steps where ``sleep`` takes fractions, else 1 s), then SIGKILL; exit 1 if it still lives.

    Needs ``ALIVE`` defined before them.
    """
    return [
        f"if sleep 0.1 2>/dev/null; then d=0.1 n={max(timeout, 0) * 10}; else d=1 n={max(timeout, 0)}; fi",
        "i=0",
        'while alive "$pid" && [ $i -lt $n ]; do sleep $d; i=$((i+1)); done',
        'if alive "$pid"; then kill -s KILL "$pid"; sleep 1; fi',
        'if alive "$pid"; then echo "process $pid did not exit, even after SIGKILL" >&2; exit 1; fi',
    ]


#: A sh function: how many starts of the start record $1 in the last $2 seconds did not end
#: in a clean stop, not counting pid $3 (the live instance). Record lines:
#: ``<epoch seconds> start <pid>`` and ``<epoch seconds> stop <pid>``.
CRASHES = (
    'crashes() { if [ ! -r "$1" ]; then echo 0; return 0; fi; '
    'awk -v since="$(($(date +%s) - $2))" -v live="$3" '
    "'$2 == \"start\" && $1 >= since { s[$3] = 1 } $2 == \"stop\" { delete s[$3] } "
    "END { n = 0; for (p in s) if (p != live) n++; print n }' \"$1\"; }"
)


#: sh listing, when the pidfile names no live process, each process's command line (400
#: characters at most), then each process (pid, parent, session), for the instances the pidfile
#: does not name. The table comes second: a process of the probe's own pipeline whose command
#: line was read before it ran its program is then in the table with the probe's session, or gone.
_PROCESSES = (
    'if [ -z "$live" ] && [ -d /proc/self ]; then echo "self=$$"; '
    "LC_ALL=C grep -s -a -H '' /proc/[0-9]*/cmdline | tr '\\000' ' ' | LC_ALL=C sed -n "
    "'s|^/proc/\\([0-9]*\\)/cmdline:\\(.\\{0,400\\}\\).*|proc=\\1 \\2|p'; "
    "LC_ALL=C grep -s -a -H '' /proc/[0-9]*/stat | LC_ALL=C sed -n "
    "'s|^/proc/\\([0-9]*\\)/stat:.*) [^ ]* \\([0-9]*\\) [0-9]* \\([0-9]*\\) .*|ps=\\1 \\2 \\3|p'; fi"
)


@dataclass(frozen=True)
class ServiceFacts:
    """What the service probe saw; ``pidfile`` is "present", "absent" or "" (not asked)."""

    systemd: bool = False
    unit: Mapping[str, str] = field(default_factory=dict)
    pidfile: str = ""
    pid: str = ""
    alive: bool = False
    cmdline: str | None = None
    crashes: int = 0  # starts of the start record within the window that did not end in a clean stop
    log_tail: tuple[str, ...] = ()  # the last lines of the log files asked for
    #: When the pidfile names no live process: every other process and its command line
    #: (the probe itself, its session and its ancestors left out).
    processes: tuple[tuple[int, str], ...] = ()
    error: str = ""


@dataclass(frozen=True)
class Extras:
    """What the probe reads besides systemd and the pidfile: the start record and log tails."""

    start_record: str | None = None
    crash_window: int = 300
    logs: tuple[str, ...] = ()
    log_lines: int = 10


def service_fact(name: str, pidfile: str | None, extras: Extras | None = None) -> Fact:
    """One probe of systemd, of the pidfile and of the ``extras``."""
    extras = extras or Extras()
    lines = [
        "if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then "
        "echo systemd=yes; systemctl show --property=LoadState --property=ActiveState "
        "--property=SubState --property=UnitFileState --property=MainPID --property=NRestarts "
        f"-- {quote(name)} 2>/dev/null | sed 's/^/unit./'; else echo systemd=no; fi",
    ]
    if pidfile:
        lines += [
            ALIVE,
            f"f={quote(pidfile)}",
            "live=",
            'if [ -e "$f" ]; then echo pidfile=present; pid=; read -r pid <"$f"; '
            'echo "pid=$pid"; if alive "$pid"; then echo alive=yes; live=$pid; '
            'if [ -r "/proc/$pid/cmdline" ]; then '
            "echo \"cmdline=$(tr '\\000' ' ' <\"/proc/$pid/cmdline\")\"; fi; "
            "else echo alive=no; fi; else echo pidfile=absent; fi",
            _PROCESSES,
        ]
    if extras.start_record:
        live = '"$live"' if pidfile else '""'
        lines += [CRASHES, f'echo "crashes=$(crashes {quote(extras.start_record)} '
                           f'{int(extras.crash_window)} {live})"']
    lines += [log_tail_command(extras, "sed 's/^/log=/'"), ":"]
    return Fact("\n".join(line for line in lines if line), _parse)


def log_tail_command(extras: Extras, prefix: str) -> str:
    """sh that prints the last ``log_lines`` lines of each readable log, each through ``prefix``."""
    if not extras.logs:
        return ""
    several = len(extras.logs) > 1
    lines = []
    for path in extras.logs:
        title = f"printf '%s:\\n' {quote(path)}; " if several else ""
        lines.append(f"if [ -r {quote(path)} ]; then {{ {title}tail -n {max(int(extras.log_lines), 1)} "
                     f"-- {quote(path)}; }} | {prefix}; fi")
    return "\n".join(lines)


def _parse(result: CommandResult) -> ServiceFacts:
    found: dict[str, str] = {}
    listed: dict[str, list[str]] = {"log": [], "ps": [], "proc": []}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if key in listed and sep:
            listed[key].append(value)
        elif sep:
            found.setdefault(key, value)
    if result.rc != 0 or found.get("systemd") not in ("yes", "no"):
        detail = result.tail("stderr", 3) or f"exit code {result.rc}"
        return ServiceFacts(error=f"the service probe failed: {detail}")
    unit = {k[len("unit.") :]: v for k, v in found.items() if k.startswith("unit.")}
    return ServiceFacts(
        systemd=found["systemd"] == "yes",
        unit=unit,
        pidfile=found.get("pidfile", ""),
        pid=found.get("pid", "").strip(),
        alive=found.get("alive") == "yes",
        cmdline=found.get("cmdline"),
        crashes=int(found["crashes"]) if found.get("crashes", "").isdigit() else 0,
        log_tail=tuple(listed["log"]),
        processes=_others(found.get("self", ""), listed["ps"], listed["proc"]),
    )


def _others(me: str, table: list[str], cmdlines: list[str]) -> tuple[tuple[int, str], ...]:
    """The listed processes but the probe's own (its session and its ancestors) and those gone since.

    A command line with newlines is listed as several lines: its first one stands for it.
    """
    parents: dict[str, tuple[str, str]] = {}
    for row in table:
        pid, _, rest = row.partition(" ")
        ppid, _, sid = rest.partition(" ")
        parents[pid] = (ppid, sid)
    own, pid = set(), me
    while pid in parents and pid not in own:
        own.add(pid)
        pid = parents[pid][0]
    session = parents.get(me, ("", ""))[1]
    others: dict[str, str] = {}
    for row in cmdlines:
        pid, _, cmdline = row.partition(" ")
        if pid in parents and pid not in own and parents[pid][1] != session:
            others.setdefault(pid, cmdline)
    return tuple((int(pid), cmdline) for pid, cmdline in others.items())


def service_diff(name: str, before: list[str], after: list[str]) -> Diff:
    return Diff(f"service {name}", "".join(f"{x}\n" for x in before), "".join(f"{x}\n" for x in after))
