"""Capture the guide's diagnosis bundle on one host, secrets masked, and store it.

Run stage, used by ``collect`` (``remedy collect``) and ``hostwalk`` (the
evidence before a run's first change on a host and after its verification).
``capture`` sends the read-only commands of ``evidence`` in one batch
(``connection.batch``); one of them copies the logs' tails and the config
into a private temp dir it creates, which comes back as one framed file over
the connection (SFTP) and is removed at once, whatever happened. Nothing else
is written on the host. Every file is then masked: the values of keys named
like secrets in the config, the environment and command lines
(``redaction.mask_secret_keys``), those values wherever else they appear,
passwords in URLs, and every secret the run's ``Redactor`` knows.
``write_evidence`` stores a capture (its files and ``capture.json``: what
each file holds and from where, and what could not be captured), and
``write_manifest`` the sha256 of every file below a directory.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from runner.connection import Connection
from runner.connection.batch import run_batch
from runner.errors import InputError, RemedyError
from runner.load import templating
from runner.load.inputs import bundled_playbooks
from runner.load.templating import to_bool
from runner.redaction import Redactor, mask_secret_keys, mask_url_passwords
from runner.results import CommandResult
from runner.run.evidence import (
    LOG_FILES,
    PROBE_BYTES,
    PROBE_FILES,
    EvidenceSpec,
    evidence_spec,
    file_command,
    probe_commands,
    sections,
)

#: The files whose keys are read for secrets (the config's name is the spec's).
KEYED = ("service/environment.txt", "service/status.txt", "service/processes.txt", "network/listening.txt")
#: The manifest of a directory of evidence: ``sha256sum -c MANIFEST.sha256`` checks it.
MANIFEST = "MANIFEST.sha256"
#: Seconds the whole batch of commands may take.
CAPTURE_TIMEOUT = 120.0


@dataclass(frozen=True)
class Evidence:
    """One capture on one host: its files (masked), where each came from, what is missing."""

    host: str
    spec: EvidenceSpec
    files: Mapping[str, bytes]  # bundle path -> content, secrets masked
    sources: Mapping[str, str]  # bundle path -> what it holds, from where
    problems: tuple[str, ...] = ()  # what could not be captured, and why
    error: str = ""  # why the capture stopped (the connection failed), or ""
    taken: str = ""  # UTC time, ISO 8601
    masked: int = 0  # secret values found by key name or in URLs


def capture(conn: Connection, host: str, spec: EvidenceSpec, redactor: Redactor, *,
            timeout: float = CAPTURE_TIMEOUT) -> Evidence:
    """Capture the bundle of ``spec`` on ``host``; never raises for what the host does.

    A command or transfer that fails ends the capture: ``error`` says why, and
    what came back before it is kept.
    """
    taken = datetime.now(UTC).isoformat(timespec="seconds")
    directory = f'"${{TMPDIR:-/tmp}}/remedy-evidence.{secrets.token_hex(8)}"'
    marker = f"REMEDY-EVIDENCE-{secrets.token_hex(8)}"
    probes = probe_commands(spec, marker)
    raw: dict[str, bytes] = {}
    sources: dict[str, str] = {}
    problems: list[str] = []
    error = ""
    try:
        results = _run_all(conn, [file_command(spec, directory), *probes], timeout)
        bundle = _file_lines(results[0], spec, sources, problems)
        for result in results[1:]:
            for name, text in sections(result.stdout, marker).items():
                raw[name] = text.encode("utf-8", "surrogateescape")
                sources[name] = f"{PROBE_FILES[name]} (the first {PROBE_BYTES} bytes)"
        if bundle:
            raw.update(_unframe(conn.get(bundle, limit=4 * spec.log_bytes + 4096), spec))
    except (RemedyError, OSError, EOFError, ValueError) as failure:
        error = redactor.text(f"the capture stopped: {failure}")
    finally:
        _remove(conn, directory)
    files, masked = mask_files(raw, spec, redactor)
    return Evidence(host, spec, files, {k: v for k, v in sources.items() if k in files},
                    tuple(problems), error, taken, masked)


def _run_all(conn: Connection, commands: list[str], timeout: float) -> list[CommandResult]:
    """Every command's result: in one round trip, or one by one when the batch cannot be split."""
    results = run_batch(conn, commands, become=None, env=None, timeout=timeout)
    if results is None:
        results = [conn.run(command, timeout=timeout, contained=True) for command in commands]
    return results


def _remove(conn: Connection, directory: str) -> None:
    """Remove the capture's temp dir on the host (best effort: a lost connection leaves it)."""
    try:
        conn.run(f"rm -rf -- {directory}", timeout=60, contained=True)
    except RemedyError:
        pass


def _file_lines(result: CommandResult, spec: EvidenceSpec, sources: dict[str, str],
                problems: list[str]) -> str:
    """Read the file command's report into ``sources`` and ``problems``; the bundle's path, or ''."""
    names = {**LOG_FILES, "config": spec.config_name}
    bundle = ""
    for line in result.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        name, _, detail = rest.partition(" ")
        if kind == "bundle" and rest.startswith("/") and "remedy-evidence." in rest:
            bundle = rest
        elif name not in names:
            continue
        elif kind == "file":
            size, _, path = detail.partition(" ")
            how = "the first" if name == "config" else "the last"
            sources[names[name]] = f"{how} {spec.log_bytes} bytes of {path} ({size} bytes)"
        elif name == "system.log":
            problems.append(f"logs/system.log: none of {detail} is a readable file, and there is no journal")
        elif kind in ("missing", "unreadable"):
            what = "does not exist" if kind == "missing" else "is not a readable regular file"
            problems.append(f"{names[name]}: {detail} {what}")
    if result.rc != 0:
        problems.append(f"the logs and the config: the command exited {result.rc}: "
                        f"{result.tail('stderr', 3) or result.tail('stdout', 3)}")
    return bundle


def _unframe(data: bytes, spec: EvidenceSpec) -> dict[str, bytes]:
    """The files of a framed bundle (``<size> <name>\\n<bytes>`` each), by bundle path.

    Raises:
        ValueError: a frame that is malformed or names an unknown file.
    """
    names = {**LOG_FILES, "config": spec.config_name}
    files: dict[str, bytes] = {}
    position = 0
    while position < len(data):
        end = data.index(b"\n", position)
        size, _, name = data[position:end].decode("ascii", "replace").partition(" ")
        if not size.isdigit() or name not in names or end + 1 + int(size) > len(data):
            raise ValueError(f"malformed bundle from the host at byte {position}")
        files[names[name]] = data[end + 1:end + 1 + int(size)]
        position = end + 1 + int(size)
    return files


def mask_files(raw: Mapping[str, bytes], spec: EvidenceSpec,
               redactor: Redactor) -> tuple[dict[str, bytes], int]:
    """``raw`` with every secret masked, and how many secret values were found in it.

    The config, the environment and the command lines are masked by key name;
    every file loses URL passwords; the values found so are masked in every
    file, and so is every secret of ``redactor``.
    """
    texts = {name: data.decode("utf-8", "surrogateescape") for name, data in raw.items()}
    found: list[str] = []
    for name, text in texts.items():
        if name in KEYED or name == spec.config_name:
            text, values = mask_secret_keys(text)
        else:
            text, values = mask_url_passwords(text)
        texts[name] = text
        found += values
    local = Redactor(found)
    files = {name: redactor.text(local.text(text)).encode("utf-8", "surrogateescape")
             for name, text in texts.items()}
    return files, len(set(found))


def write_evidence(evidence: Evidence, directory: Path) -> None:
    """Store ``evidence`` in ``directory`` (created, private): its files and ``capture.json``.

    Raises:
        OSError: the directory or a file cannot be written.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, data in evidence.files.items():
        path = directory / name
        path.parent.mkdir(mode=0o700, exist_ok=True)
        path.write_bytes(data)
    spec = evidence.spec
    document = {
        "host": evidence.host, "taken": evidence.taken, "error": evidence.error or None,
        "problems": list(evidence.problems), "secrets_masked": evidence.masked,
        "files": dict(sorted(evidence.sources.items())),
        "caps": {"log_bytes": spec.log_bytes, "command_bytes": PROBE_BYTES},
        "service": {"name": spec.service, "pid_file": spec.pid_file, "process_match": spec.process_match,
                    "config": spec.config, "port": spec.port, "env_prefix": spec.env_prefix},
    }
    (directory / "capture.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def write_manifest(root: Path) -> Path:
    """Write ``root/MANIFEST.sha256``: the sha256 of every other file below ``root``, sorted.

    Raises:
        OSError: a file cannot be read or the manifest written.
    """
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p != root / MANIFEST):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {path.relative_to(root).as_posix()}\n")
    manifest = root / MANIFEST
    manifest.write_text("".join(lines), encoding="utf-8")
    return manifest


class EvidenceRecorder:
    """The evidence of one host in a run: captured before its first change and at the end, once each.

    Each capture goes to ``directory/<phase>/`` with its manifest; ``paths``
    maps each phase to its directory, and ``error`` to why a capture could not
    be made or stored. Never raises: evidence never stops a remediation.
    """

    def __init__(self, conn: Connection, host: str, variables: Mapping[str, object], directory: Path,
                 redactor: Redactor) -> None:
        self.conn, self.host, self.directory, self.redactor = conn, host, directory, redactor
        self.paths: dict[str, str] = {}
        self.spec: EvidenceSpec | None = None
        try:
            self.spec = evidence_spec(variables, host)
        except InputError as error:
            self.paths["error"] = f"no evidence: {error.problems[0].message}"

    def capture(self, phase: str) -> None:
        """Capture and store the evidence of ``phase`` (``before``, ``after``) unless it has been."""
        if self.spec is None or phase in self.paths:
            return
        evidence = capture(self.conn, self.host, self.spec, self.redactor)
        target = self.directory / phase
        try:
            write_evidence(evidence, target)
            write_manifest(target)
        except OSError as error:
            self.paths["error"] = f"{phase}: cannot store the evidence in {target}: {error.strerror or error}"
            return
        self.paths[phase] = str(target)


def evidence_wanted(playbook_path: str, variables: Mapping[str, object]) -> bool:
    """Whether a play keeps evidence: ``remedy_evidence`` if set, else whether it is a bundled playbook."""
    if "remedy_evidence" in variables:
        try:
            return bool(to_bool(templating.Scope([(variables, True)])["remedy_evidence"]))
        except RemedyError:
            return False
    bundled = {path.resolve() for path in bundled_playbooks().values()}
    return Path(playbook_path).resolve() in bundled
