"""The service probe, shared by the ``service`` module's two managers.

Services layer. One read-only sh command says whether systemd is PID 1 and
what it knows of the unit (LoadState, ActiveState, UnitFileState) and, when a
pidfile is given, whether it names a live process and that process's command
line. ``ServiceFacts`` holds the answer; unreadable output sets ``error``.
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


@dataclass(frozen=True)
class ServiceFacts:
    """What the service probe saw; ``pidfile`` is "present", "absent" or "" (not asked)."""

    systemd: bool = False
    unit: Mapping[str, str] = field(default_factory=dict)
    pidfile: str = ""
    pid: str = ""
    alive: bool = False
    cmdline: str | None = None
    error: str = ""


def service_fact(name: str, pidfile: str | None) -> Fact:
    """One probe of systemd and of the pidfile."""
    lines = [
        "if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then "
        "echo systemd=yes; systemctl show --property=LoadState --property=ActiveState "
        f"--property=SubState --property=UnitFileState -- {quote(name)} 2>/dev/null "
        "| sed 's/^/unit./'; else echo systemd=no; fi",
    ]
    if pidfile:
        lines += [
            ALIVE,
            f"f={quote(pidfile)}",
            'if [ -e "$f" ]; then echo pidfile=present; pid=; read -r pid <"$f"; '
            'echo "pid=$pid"; if alive "$pid"; then echo alive=yes; '
            'if [ -r "/proc/$pid/cmdline" ]; then '
            "echo \"cmdline=$(tr '\\000' ' ' <\"/proc/$pid/cmdline\")\"; fi; "
            "else echo alive=no; fi; else echo pidfile=absent; fi",
        ]
    lines.append(":")
    return Fact("\n".join(lines), _parse)


def _parse(result: CommandResult) -> ServiceFacts:
    found: dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
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
    )


def service_diff(name: str, before: list[str], after: list[str]) -> Diff:
    return Diff(f"service {name}", "".join(f"{x}\n" for x in before), "".join(f"{x}\n" for x in after))
