"""The ``collect`` command: every host's diagnosis bundle in one ``.tar.gz``; ``summary.md`` first.

Command line, beside ``commands``. Selects the hosts (``bundled/collect.yml``:
every host, or ``-l``) with their inventory variables and ``-e``, checks each
host's bundle variables and the output directory before any host is
contacted (exit 4), gathers the hosts in parallel (``run.collect``), writes
``summary.md`` and ``MANIFEST.sha256`` beside the hosts' directories, and packs
them into ``<output>/remedy-collect-<run id>.tar.gz`` (a temp name, then
renamed). Exit 0; 2 when a host's capture failed; 3 when a host was
unreachable (the archive holds the others either way); 99 when interrupted
(no archive).
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
import tempfile
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

from runner.cli.commands import Signals, run_options, run_redactor
from runner.errors import InputError, Location
from runner.load.inputs import load_inputs
from runner.output.summary import SUMMARY_FILES, Findings, host_findings, render_summary
from runner.output.tables import table
from runner.plan.hosts import plan_hosts
from runner.results import Status
from runner.run.capture import write_manifest
from runner.run.collect import Collected, CollectOptions, collect
from runner.run.evidence import evidence_spec

COLLECT_PLAYBOOK = Path(__file__).resolve().parent / "bundled" / "collect.yml"
EXIT_INTERRUPTED = 99


def collect_command(args: argparse.Namespace) -> int:
    """``remedy collect``: returns the exit code."""
    inputs = load_inputs([str(COLLECT_PLAYBOOK)], args.inventory, args.extra_vars)
    options = run_options(args, check=True, diagnose_only=True)
    hosts = plan_hosts(inputs, options)
    specs = {host.name: evidence_spec(host.plays[0][2], host.name) for host in hosts}  # its one play
    output = _output_dir(args.output)
    redactor = run_redactor(options, hosts)
    name = f"remedy-collect-{uuid.uuid4().hex[:12]}"
    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=output) as staging:
        root = Path(staging, name)
        root.mkdir()
        with Signals(stop):
            collected = collect(hosts, specs, root, CollectOptions(options.forks, redactor),
                                report=None if args.quiet else _progress, stop=stop)
        if stop.is_set():
            print("remedy: interrupted; no archive was written", file=sys.stderr)
            return EXIT_INTERRUPTED
        taken = datetime.now(UTC).isoformat(timespec="seconds")
        findings = {c.host: host_findings(_read(c), c.spec, c.problems) for c in collected if c.directory}
        (root / "summary.md").write_text(redactor.text(render_summary(name, taken, collected, findings)),
                                         encoding="utf-8")
        write_manifest(root)
        archive = _pack(root, output / f"{name}.tar.gz")
    if not args.quiet:
        print(redactor.text(_overview(collected, findings)))
    print(archive)
    return _exit_code(collected)


def _output_dir(text: str) -> Path:
    """The ``-o`` directory, which must exist and be writable.

    Raises:
        InputError: it is not a writable directory.
    """
    path = Path(text).expanduser()
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        what = "does not exist" if not path.exists() else \
            "is not a directory" if not path.is_dir() else "is not writable"
        raise InputError.at(Location("<command line -o>"), f"-o {text!r} {what}",
                            "pass -o DIR with an existing writable directory")
    return path


def _progress(done: Collected) -> None:
    print(f"[{done.host}] {done.status}: {done.message}", file=sys.stderr, flush=True)


def _read(done: Collected) -> dict[str, str]:
    """The files of a host the summary reads, as text."""
    assert done.directory is not None
    texts = {}
    for name in SUMMARY_FILES:
        path = done.directory / name
        if path.is_file():
            texts[name] = path.read_bytes().decode("utf-8", "replace")
    return texts


def _pack(root: Path, archive: Path) -> Path:
    """``root`` as ``archive`` (tar.gz, members under ``root``'s name), written atomically."""
    handle, temp = tempfile.mkstemp(prefix=f".{archive.name}.", dir=archive.parent)
    try:
        with os.fdopen(handle, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            tar.add(root, arcname=root.name)
        os.chmod(temp, 0o600)
        os.replace(temp, archive)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return archive


def _overview(collected: list[Collected], findings: dict[str, Findings]) -> str:
    rows = []
    for done in collected:
        found = findings.get(done.host)
        wrong = "; ".join(found.wrong) if found else done.message
        rows.append([done.host, str(done.status), found.service if found else "", wrong[:120]])
    return table(rows, ["host", "collected", "service", "looks wrong"])


def _exit_code(collected: list[Collected]) -> int:
    statuses = {done.status for done in collected}
    if Status.UNREACHABLE in statuses:
        return 3
    return 2 if statuses - {Status.OK} else 0
