"""The ``merge`` command: the JSON documents of sliced runs as one result, recap, JUnit and exit code.

Command line, beside ``commands``. Reads the documents that ``run``,
``plan``, ``diagnose`` or ``apply`` wrote with ``--slice K/N``, refuses (exit
4, naming the files) documents that are not of one sliced run: not sliced,
of other inputs or another count of slices, a check run beside a real one, a
slice or a host twice. The merged run is rendered by the functions that
render one run; its exit code is the worst of the slices' by the documented
precedence, and 7 (incomplete) when slices are missing and nothing is worse.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from runner.cli.commands import write_atomic
from runner.errors import InputError, Location, Problem
from runner.output.markdown import render_markdown
from runner.output.merging import merged_run, run_from_document
from runner.output.runs import junit_document, render_recap, run_document
from runner.results import Run

_FIX = "pass the --format json (or -o FILE) documents of one command run with --slice 1/N ... N/N"


def merge_command(args: argparse.Namespace) -> int:
    """``remedy merge RESULTS...``."""
    documents = [(path, _read(path)) for path in args.results]
    count = _check(documents)
    documents.sort(key=lambda item: int(item[1]["slice"]["index"]))
    runs = [_run(path, document) for path, document in documents]
    present = {int(document["slice"]["index"]) for _, document in documents}
    missing = [f"{k}/{count}" for k in range(1, count + 1) if k not in present]
    run_id = hashlib.sha256(" ".join(sorted(r.run_id for r in runs)).encode()).hexdigest()[:12]
    run = merged_run(run_id, runs, f"slices not merged: {', '.join(missing)}" if missing else "")
    _write(args, run, documents)
    if args.format == "markdown":
        print(render_markdown(run), end="")
    out = sys.stderr if args.format != "text" else sys.stdout
    print(render_recap(run), file=out)
    print(f"merged {len(runs)} of {count} slices ({len(run.hosts)} hosts)"
          + (f"; missing: {', '.join(missing)}" if missing else ""), file=out)
    return run.exit_code


def _read(path: str) -> dict[str, Any]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError.at(Location(path), f"cannot read a JSON document: {error}", _FIX) from None
    if not isinstance(document, dict) or not isinstance(document.get("hosts"), list):
        raise InputError.at(Location(path), "not a remedy run's JSON document (no 'hosts' list)", _FIX)
    chosen = document.get("slice")
    if not isinstance(chosen, dict) or not all(isinstance(chosen.get(k), int) for k in ("index", "count")):
        raise InputError.at(Location(path), "not the document of a sliced run (no 'slice')", _FIX)
    return document


def _check(documents: list[tuple[str, dict[str, Any]]]) -> int:
    """The count of slices, once the documents are known to be slices of one run.

    Raises:
        InputError: every problem, naming the files.
    """
    problems: list[Problem] = []
    first_path, first = documents[0]
    slices: dict[int, str] = {}
    hosts: dict[str, str] = {}
    for path, document in documents:
        where = Location(path)
        problems += [Problem(where, f"{what} than {first_path}", _FIX)
                     for what in _differences(document, first)]
        index = int(document["slice"]["index"])
        if index in slices:
            problems.append(Problem(where, f"slice {index}/{document['slice']['count']} is also "
                                    f"{slices[index]}", "give each slice once"))
        slices.setdefault(index, path)
        for host in document["hosts"]:
            name = str(host.get("host")) if isinstance(host, dict) else "?"
            if name in hosts:
                problems.append(Problem(where, f"host {name} is also in {hosts[name]}",
                                        "merge the slices of one run: each host is in exactly one slice"))
            hosts.setdefault(name, path)
    if problems:
        raise InputError(problems)
    return int(first["slice"]["count"])


def _differences(document: dict[str, Any], first: dict[str, Any]) -> list[str]:
    """How ``document`` is not a slice of the run ``first`` is a slice of."""
    found = []
    if document["slice"]["count"] != first["slice"]["count"]:
        found.append(f"made as one of {document['slice']['count']} slices, not {first['slice']['count']},")
    if document["slice"].get("inputs") != first["slice"].get("inputs"):
        found.append("made from other inputs (playbook files, inventory files, -l, -t, --skip-tags, -e) "
                     "or by another command")
    if bool(document.get("check")) != bool(first.get("check")):
        found.append(f"a {'check' if document.get('check') else 'real'} run, unlike the one")
    return found


def _run(path: str, document: dict[str, Any]) -> Run:
    try:
        return run_from_document(document)
    except (KeyError, TypeError, ValueError) as error:
        raise InputError.at(Location(path), f"not a remedy run's JSON document: bad or missing {error}",
                            _FIX) from None


def _write(args: argparse.Namespace, run: Run, documents: list[tuple[str, dict[str, Any]]]) -> None:
    """The merged JSON document (stdout with ``--format json``, ``-o``), and ``--junit``."""
    def same(value: Any) -> Any:
        return value

    document = run_document(run, same)
    first = documents[0][1]["slice"]
    document["slice"] = {"count": first["count"], "inputs": first.get("inputs"),
                         "merged": [{"index": d["slice"]["index"], "run_id": d.get("run_id"),
                                     "exit_code": d.get("exit_code"), "file": path} for path, d in documents]}
    if all("diagnosis" in d for _, d in documents):
        document["diagnosis"] = [row for _, d in documents for row in d["diagnosis"]]
    text = json.dumps(document, indent=2, sort_keys=True, default=str)
    if args.format == "json":
        print(text)
    if args.output:
        write_atomic(Path(args.output), text + "\n")
    if args.junit:
        write_atomic(Path(args.junit), junit_document(run, same))
