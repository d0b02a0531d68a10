"""The summary a person reads first in a ``remedy collect`` archive: per host, what looks wrong.

Output stage. ``host_findings`` reads one host's captured files (the
service's status, the listening sockets, the config, the error log, disk,
memory and load: ``SUMMARY_FILES``) into ``Findings``; ``render_summary``
writes ``summary.md``: a table of every host, then per host its service's
state, who holds its port, disk, memory and load, what looks wrong, and the
last lines of its error log. Everything it reads is already masked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from runner.modules.portprobe import parse_probe, short_command
from runner.results import CommandResult, Status
from runner.run.collect import Collected
from runner.run.evidence import EvidenceSpec

#: The files the summary reads, besides the config (``EvidenceSpec.config_name``).
SUMMARY_FILES = ("service/status.txt", "service/environment.txt", "network/listening.txt",
                 "logs/error.log", "system/disk.txt", "system/memory.txt", "system/load.txt")
#: Above these, disk, inodes and load look wrong; below it, available memory does.
DISK_FULL, MEMORY_LOW = 90, 10
_PORT_LINE = re.compile(r"^service_port=(\d{1,5}) (config|coze_port)$", re.MULTILINE)
_ERROR_LINES = 5


@dataclass(frozen=True)
class Findings:
    """What one host's files say: the service, its port, the machine, what looks wrong."""

    service: str
    port: str
    system: str
    wrong: tuple[str, ...]
    errors: tuple[str, ...]  # the last lines of the error log
    missing: tuple[str, ...] = ()  # files that could not be captured


def host_findings(files: Mapping[str, str], spec: EvidenceSpec, problems: Sequence[str]) -> Findings:
    """Read ``files`` (bundle path -> text) of one host; ``problems``: what could not be captured."""
    wrong = [f"the config file {spec.config} cannot be read" for p in problems if p.startswith("config/")]
    status = _key_values(files.get("service/status.txt", ""))
    service, pid = _service(status, wrong)
    port = _port(files, spec, pid, wrong)
    system = _system(files, wrong)
    if "not readable" in files.get("service/environment.txt", ""):
        wrong.append("the service's environment is not readable (collect as root)")
    lines = [line for line in files.get("logs/error.log", "").splitlines() if line.strip()]
    if lines:
        wrong.append(f"error.log: {lines[-1].strip()[:200]}")
    return Findings(service, port, system, tuple(wrong), tuple(lines[-_ERROR_LINES:]), tuple(problems))


def _key_values(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.replace("_", "").isalnum():
            found.setdefault(key, value.strip())
    return found


def _service(status: Mapping[str, str], wrong: list[str]) -> tuple[str, int]:
    """The service's state in words, and its main pid (0: none)."""
    main = status.get("main_pid", "")
    pid = int(main.split()[0]) if main[:1].isdigit() else 0
    parts = []
    if status.get("systemd") == "yes" and status.get("LoadState") == "loaded":
        active = f"{status.get('ActiveState', '?')} ({status.get('SubState', '?')})"
        parts.append(f"systemd: {active}")
        if status.get("ActiveState") != "active":
            wrong.append(f"systemd reports the unit {status.get('service', '')} {active}")
    named = status.get("pid_file_pid", "")
    if named == "absent":
        parts.append(f"no pid file {status.get('pid_file', '')}")
    elif status.get("pid_file_alive") == "no":
        parts.append(f"the pid file names {named or 'nothing'}, not running")
        wrong.append(f"the pid file {status.get('pid_file', '')} names {named or 'no pid'}, "
                     "which is not running")
    if pid:
        how = main.split(" ", 1)[1].strip("()") if " " in main else ""
        command = short_command(status.get("main_cmdline", ""))
        return f"running as pid {pid} ({command}, found by its {how})" + "".join(f"; {p}" for p in parts), pid
    wrong.append("no process of the service is running")
    return "not running" + "".join(f"; {p}" for p in parts), 0


def _port(files: Mapping[str, str], spec: EvidenceSpec, pid: int, wrong: list[str]) -> str:
    """Who holds the service's port (the config's ``port``, else ``coze_port``)."""
    listening = files.get("network/listening.txt", "")
    match = _PORT_LINE.search(listening)
    port, source = (int(match[1]), match[2]) if match else (spec.port, "coze_port")
    facts = parse_probe(CommandResult("", 0, stdout=listening))
    if facts.error:
        return f"{port} ({source}): unknown, {facts.error}"
    holders = [h for h in facts.holders if h.address.rsplit(":", 1)[-1] == str(port)]
    if not holders:
        wrong.append(f"nothing listens on port {port} ({source})")
        return f"{port} ({source}): nothing listens"
    service = {pid, facts.pidfile_pid} - {0}
    others = [h for h in holders if h.pid not in service]
    if not others:
        return f"{port} ({source}): the service (pid {holders[0].pid})"
    described = "; ".join(h.describe() for h in others)
    wrong.append(f"port {port} is held by another process: {described}")
    return f"{port} ({source}): NOT the service: {described}"


def _system(files: Mapping[str, str], wrong: list[str]) -> str:
    """Disk, memory and load in one line; what exceeds the limits goes to ``wrong``."""
    parts = [_disk(files.get("system/disk.txt", ""), wrong)]
    memory = _key_values(files.get("system/memory.txt", "").replace(":", "="))
    total, available = (_kib(memory.get(key, "")) for key in ("MemTotal", "MemAvailable"))
    if total:
        parts.append(f"memory {available // 1024} MiB available of {total // 1024} MiB")
        if available * 100 < total * MEMORY_LOW:
            wrong.append(f"memory: only {available * 100 // total}% available")
    load = _key_values(files.get("system/load.txt", ""))
    averages, cpus = load.get("loadavg", "").split()[:3], load.get("cpus", "")
    if len(averages) == 3 and cpus.isdigit() and all(re.fullmatch(r"\d+(\.\d+)?", a) for a in averages):
        parts.append(f"load {' '.join(averages)} on {cpus} CPUs")
        if float(averages[0]) > int(cpus):
            wrong.append(f"load {averages[0]} is above the {cpus} CPUs")
    return ", ".join(p for p in parts if p) or "unknown"


def _kib(value: str) -> int:
    """``24000000 kB`` (a /proc/meminfo value) as a number; 0 when it is not one."""
    number = value.split()[0] if value.split() else ""
    return int(number) if number.isdigit() else 0


def _disk(text: str, wrong: list[str]) -> str:
    """The fullest filesystem, by blocks (``df -hP``) and by inodes (``df -iP``)."""
    kind, fullest, worst = "disk", "", -1
    for line in text.splitlines():
        fields = line.split()
        if fields[:1] == ["Filesystem"]:
            kind = "inodes" if "Inodes" in fields else "disk"
            continue
        if len(fields) < 6 or not re.fullmatch(r"\d{1,3}%", fields[4]):
            continue
        used = int(fields[4][:-1])
        what = f"{fields[5]} {kind} {used}% used"
        if used >= DISK_FULL:
            wrong.append(what)
        if used > worst:
            worst, fullest = used, f"fullest: {what}"
    return fullest


def render_summary(run_id: str, taken: str, hosts: Sequence[Collected],
                   findings: Mapping[str, Findings]) -> str:
    """``summary.md``: the table of hosts, then each host's findings."""
    lines = [f"# remedy collect {run_id}", "",
             f"Collected {taken} from {len(hosts)} host{'s' * (len(hosts) != 1)}. Each host's files are "
             "in its own directory (`capture.json` there says what each file holds, from where, and "
             "what could not be captured); `MANIFEST.sha256` lists every file's sha256. Secrets are "
             "masked as `********`.", "",
             "| host | collected | service | port | looks wrong |", "|---|---|---|---|---|"]
    for host in hosts:
        found = findings.get(host.host)
        if found is None:
            lines.append(f"| {host.host} | {host.status}: {_cell(host.message)} | | | |")
        else:
            lines.append(f"| {host.host} | {host.status} | {_cell(found.service)} | {_cell(found.port)} "
                         f"| {len(found.wrong)} |")
    for host in hosts:
        lines += ["", f"## {host.host}", ""]
        found = findings.get(host.host)
        if host.status is not Status.OK:
            lines.append(f"Not collected ({host.status}): {host.message}")
        if found is None:
            continue
        lines += [f"- service: {found.service}", f"- port: {found.port}", f"- system: {found.system}"]
        lines += [f"- not captured: {item}" for item in found.missing]
        lines += ["", "What looks wrong:" if found.wrong else "Nothing looks wrong."]
        lines += [f"- {item}" for item in found.wrong]
        if found.errors:
            lines += ["", f"Last lines of the error log ({host.spec.error_log}):", "", "```",
                      *found.errors, "```"]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
