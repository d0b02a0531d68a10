"""What the guide's diagnosis bundle holds and the read-only commands that gather it on a host.

Run stage, used by ``capture``. The Coze troubleshooting guide diagnoses a
host from its logs (system, app, error), the service's state (systemd or its
pid file), its processes, the listening ports, the config file and the
service's ``COZE_*`` environment. ``evidence_spec`` reads where those are from
a host's variables (the bundled playbooks' variables, with their defaults:
``VARIABLES``); ``file_command`` and ``probe_commands`` are the read-only
commands that gather them. Every file of the bundle has a fixed path, so a person (and the summary)
always finds it in the same place:

    logs/system.log  logs/app.log  logs/error.log  config/<config file name>
    service/status.txt  service/processes.txt  service/environment.txt  service/files.txt
    network/listening.txt  system/disk.txt  system/memory.txt  system/load.txt
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from posixpath import basename
from typing import Any

from runner.errors import InputError, Location, TemplateError
from runner.load import templating
from runner.modules.base import parent_dir, quote
from runner.modules.portprobe import probe_command
from runner.modules.servicefacts import ALIVE

#: Every variable the bundle is gathered with: its default and what it is for. The
#: defaults are the bundled playbooks' (a test keeps them equal); the inventory and -e override.
VARIABLES: dict[str, tuple[Any, str]] = {
    "coze_service": ("coze", "the systemd unit: `systemctl status`, and the journal's system log"),
    "coze_pid_file": ("/run/coze/coze.pid", "the pid file: the service's state without systemd"),
    "coze_program": ("/opt/coze/cozeservice.py", "the service's program"),
    "coze_process_match": ("{{ coze_program }}", "extended regexp of the service's command lines"),
    "coze_config": ("/etc/coze/config.yaml", "the config file, copied with its secrets masked"),
    "coze_log_dir": ("/var/log/coze", "the service's log directory"),
    "coze_app_log": ("{{ coze_log_dir }}/app.log", "the app log: its tail"),
    "coze_error_log": ("{{ coze_log_dir }}/error.log", "the error log: its tail"),
    "coze_system_logs": (["/var/log/syslog", "/var/log/messages", "/var/log/system.log"],
                         "system logs: the tail of the first readable one (none: the journal)"),
    "coze_port": (8080, "the service's port when the config file names none"),
    "coze_env_prefix": ("COZE_", "which variables of the service's environment are kept"),
    "remedy_evidence_log_bytes": (262144, "cap of each log tail and of the config file, in bytes"),
}
#: Cap of every command's output (status, processes, ports, environment, disk, memory, load).
PROBE_BYTES = 65536
#: What each command's file holds, for ``capture.json``.
PROBE_FILES = {
    "service/status.txt": "the service's state: systemd's view of the unit (systemctl show, systemctl "
                          "status) and its pid file, and its main process",
    "service/processes.txt": "ps lines of the processes whose command line matches coze_process_match",
    "service/environment.txt": "the variables of the service's main process (/proc/PID/environ) that "
                               "start with coze_env_prefix",
    "network/listening.txt": "the service's port (the config's port line, else coze_port), every "
                             "listening TCP socket (ss -ltn, else /proc/net/tcp*), and that port's "
                             "listeners with their processes (ss -ltnp, else /proc/*/fd)",
    "service/files.txt": "ls -ld of the config file, the log directory, the logs and the pid file: "
                         "their owners and modes",
    "system/disk.txt": "df -hP and df -iP",
    "system/memory.txt": "free -m and /proc/meminfo",
    "system/load.txt": "/proc/loadavg, the number of CPUs and uptime",
}
#: Where each file of the host's temp dir goes in the bundle.
LOG_FILES = {"system.log": "logs/system.log", "app.log": "logs/app.log", "error.log": "logs/error.log"}
_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class EvidenceSpec:
    """Where the evidence of one host is: its service, paths, port and caps."""

    service: str
    pid_file: str
    process_match: str
    config: str
    app_log: str
    error_log: str
    system_logs: tuple[str, ...]
    port: int
    env_prefix: str
    log_bytes: int

    @property
    def config_name(self) -> str:
        """The bundle path of the config file: ``config/`` and the file's own name."""
        return "config/" + (basename(self.config) or "config")


def evidence_spec(variables: Mapping[str, Any], host: str) -> EvidenceSpec:
    """The evidence spec of ``host`` from its variables (``VARIABLES``' defaults beneath them).

    Raises:
        InputError: a variable that does not render or is not what it must be,
            naming the host and the variable.
    """
    defaults = {name: default for name, (default, _) in VARIABLES.items()}
    scope = templating.Scope([(defaults, True), (variables, True)])
    where = Location(f"<variables of host {host}>")

    def value(name: str, check: Callable[[Any], bool], expected: str) -> Any:
        try:
            found = scope[name]
        except TemplateError as error:
            raise InputError.at(where, f"{name}: {error.problems[0].message}",
                                f"fix {name} in the inventory or -e") from None
        if not check(found):
            raise InputError.at(where, f"{name} must be {expected}, not {found!r}"[:300],
                                f"set {name} in the inventory or with -e")
        return found

    def path(name: str) -> str:
        return str(value(name, _is_path, "an absolute path"))

    logs = value("coze_system_logs", lambda v: isinstance(v, list) and all(_is_path(p) for p in v),
                 "a list of absolute paths")
    return EvidenceSpec(
        service=str(value("coze_service", _is_word, "a service name")),
        pid_file=path("coze_pid_file"), process_match=str(value("coze_process_match", _is_word, "a regexp")),
        config=path("coze_config"), app_log=path("coze_app_log"), error_log=path("coze_error_log"),
        system_logs=tuple(logs), port=int(value("coze_port", _is_port, "a port number (1-65535)")),
        env_prefix=str(value("coze_env_prefix", lambda v: isinstance(v, str) and bool(_PREFIX.fullmatch(v)),
                             "the start of a variable name, such as COZE_")),
        log_bytes=int(value("remedy_evidence_log_bytes", _is_cap, "a byte count from 1024 to 16777216")))


def _is_path(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("/") and not any(c in value for c in "\n\0")


def _is_word(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and not any(c in value for c in "\n\0")


def _is_port(value: Any) -> bool:
    return str(value).isdigit() and 1 <= int(value) <= 65535


def _is_cap(value: Any) -> bool:
    return str(value).isdigit() and 1024 <= int(value) <= 16 * 1024 * 1024


# --- the commands ---------------------------------------------------------------------------

#: Sets ``procs`` to the ps lines of the processes whose command line matches ``$RE`` (outside
#: this command's session), and ``pid`` and ``how`` to the service's main process: systemd's
#: MainPID, the pid file's, or the first of ``procs``.
_SERVICE_PID = ALIVE + r"""
service_processes() {
  sid=$(ps -o sid= -p $$ 2>/dev/null | tr -d ' ')
  ps -eo pid,ppid,sid,user,etime,pcpu,pmem,rss,args 2>/dev/null | awk -v sid="$sid" '
    NR == 1 { print; next }
    { a = $0; for (i = 1; i <= 8; i++) sub(/^[ \t]*[^ \t]+/, "", a); sub(/^[ \t]+/, "", a) }
    $3 != sid && a ~ ENVIRON["RE"]'
}
procs=$(service_processes)
pid= how=
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  p=$(systemctl show --property=MainPID --value -- "$unit" 2>/dev/null)
  if [ "${p:-0}" != 0 ] && alive "$p"; then pid=$p how=systemd; fi
fi
if [ -z "$pid" ] && [ -r "$f" ]; then
  p=; read -r p <"$f"; if alive "$p"; then pid=$p how="pid file"; fi
fi
if [ -z "$pid" ]; then
  pid=$(printf '%s\n' "$procs" | awk 'NR > 1 { print $1; exit }'); how="command line"
fi
"""

_STATUS = r"""
echo "service=$unit"
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  echo systemd=yes
  systemctl show --property=LoadState --property=ActiveState --property=SubState -- "$unit" 2>&1
else echo systemd=no; fi
echo "pid_file=$f"
if [ -e "$f" ]; then
  p=; if [ -r "$f" ]; then read -r p <"$f" || true; else echo pid_file_error=unreadable; fi
  echo "pid_file_pid=$p"
  if alive "$p"; then echo pid_file_alive=yes; else echo pid_file_alive=no; fi
else echo pid_file_pid=absent; fi
echo "main_pid=$pid ($how)"
[ -n "$pid" ] && echo "main_cmdline=$(tr '\000' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  echo; systemctl status --no-pager --full --lines=20 -- "$unit" 2>&1
fi
"""

_ENVIRONMENT = r"""
if [ -z "$pid" ]; then echo "# no process of the service is running"; exit 0; fi
echo "# the environment of pid $pid (found by its $how), variables starting with $PREFIX"
if ! tr '\000' '\n' <"/proc/$pid/environ" >/dev/null 2>&1; then
  echo "# /proc/$pid/environ is not readable by $(id -un) (run as root)"; exit 0; fi
tr '\000' '\n' <"/proc/$pid/environ" | grep "^$PREFIX" || echo "# (none)"
"""

_LISTENING = r"""
port=$(sed -n 's/^[[:space:]]*port[[:space:]]*[:=][[:space:]]*\([0-9][0-9]*\).*/\1/p' -- "$config" \
  2>/dev/null | head -n 1)
if [ -n "$port" ]; then echo "service_port=$port config"
else port=$default_port; echo "service_port=$port coze_port"; fi
echo "## every listening TCP socket (ss -ltn; /proc/net/tcp and tcp6 without ss)"
if command -v ss >/dev/null 2>&1; then ss -ltn 2>&1; else cat /proc/net/tcp /proc/net/tcp6 2>&1; fi
echo "## the listeners of port $port and their processes"
"""

_DISK = "df -hP 2>&1; echo; df -iP 2>&1"
_MEMORY = "free -m 2>&1; echo; cat /proc/meminfo 2>&1"
_LOAD = ('echo "loadavg=$(cat /proc/loadavg)"; echo "cpus=$(nproc 2>/dev/null || '
         'grep -c ^processor /proc/cpuinfo)"; uptime 2>&1')


def _service_vars(spec: EvidenceSpec) -> str:
    return (f"unit={quote(spec.service)}; f={quote(spec.pid_file)}; RE={quote(spec.process_match)}; "
            f"PREFIX={quote(spec.env_prefix)}; export RE\n")


def probe_commands(spec: EvidenceSpec, marker: str) -> list[str]:
    """The read-only commands that print the files of the bundle but the logs and the config.

    Each file's content (capped at ``PROBE_BYTES``) follows a line ``<marker> <bundle path>``;
    ``sections`` splits a command's output into them.
    """
    def section(name: str, script: str) -> str:
        return f"printf '\\n%s\\n' {quote(f'{marker} {name}')}\n( {script}\n) 2>&1 | head -c {PROBE_BYTES}\n"

    service = _service_vars(spec) + _SERVICE_PID + "".join((
        section("service/status.txt", _STATUS),
        section("service/processes.txt", "printf '%s\\n' \"$procs\""),
        section("service/environment.txt", _ENVIRONMENT)))
    files = "ls -ld -- " + " ".join(quote(p) for p in (
        spec.config, parent_dir(spec.app_log), spec.app_log, spec.error_log, spec.pid_file))
    listening = (f"config={quote(spec.config)}; default_port={spec.port}\n" + _LISTENING
                 + probe_command(None, spec.pid_file, "auto"))
    return [service, section("service/files.txt", files), section("network/listening.txt", listening),
            section("system/disk.txt", _DISK) + section("system/memory.txt", _MEMORY)
            + section("system/load.txt", _LOAD)]


def sections(output: str, marker: str) -> dict[str, str]:
    """The files a probe command printed (see ``probe_commands``), by bundle path."""
    found = {}
    for part in output.split(f"\n{marker} ")[1:]:
        name, _, content = part.partition("\n")
        if name in PROBE_FILES:
            found[name] = content
    return found


_FILES = r"""
umask 077
D=%(dir)s
mkdir -- "$D" || exit 70
grab() {  # NAME tail|head CAP PATH: the file's tail or head into $D/NAME
  if [ ! -e "$4" ]; then printf 'missing %%s %%s\n' "$1" "$4"; return 0; fi
  if [ ! -f "$4" ] || [ ! -r "$4" ]; then printf 'unreadable %%s %%s\n' "$1" "$4"; return 0; fi
  size=$(wc -c <"$4" 2>/dev/null) || size=0
  if ! "$2" -c "$3" -- "$4" >"$D/$1" 2>/dev/null; then
    rm -f -- "$D/$1"; printf 'unreadable %%s %%s\n' "$1" "$4"; return 0; fi
  printf 'file %%s %%s %%s\n' "$1" "$size" "$4"
}
grab app.log tail %(cap)d %(app)s
grab error.log tail %(cap)d %(error)s
grab config head %(cap)d %(config)s
found=
for log in %(system)s; do
  if [ -f "$log" ] && [ -r "$log" ]; then grab system.log tail %(cap)d "$log"; found=1; break; fi
done
if [ -z "$found" ]; then
  if [ -d /run/systemd/system ] && command -v journalctl >/dev/null 2>&1; then
    journalctl -q --no-pager -n 5000 2>/dev/null | tail -c %(cap)d >"$D/system.log"
    printf 'file system.log %%s journalctl\n' "$(wc -c <"$D/system.log")"
  else printf 'missing system.log %%s\n' %(system_words)s; fi
fi
for n in app.log error.log config system.log; do
  if [ -f "$D/$n" ]; then printf '%%s %%s\n' "$(wc -c <"$D/$n")" "$n"; cat -- "$D/$n"; fi
done >"$D/bundle"
printf 'bundle %%s\n' "$D/bundle"
"""


def file_command(spec: EvidenceSpec, directory: str) -> str:
    """The command that copies the logs' tails and the config into ``directory`` (a new dir it
    creates, private) and frames them into ``directory/bundle``: ``<size> <name>\\n<bytes>`` each.

    Its stdout says, one line each: ``file NAME SIZE PATH``, ``missing NAME PATH``,
    ``unreadable NAME PATH``, and ``bundle PATH``.
    """
    return _FILES % {
        "dir": directory, "cap": spec.log_bytes, "app": quote(spec.app_log),
        "error": quote(spec.error_log), "config": quote(spec.config),
        "system": " ".join(quote(p) for p in spec.system_logs) or '""',
        "system_words": quote(", ".join(spec.system_logs) or "(none given)"),
    }
