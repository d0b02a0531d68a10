"""The ``remedy`` command line: parse, call one library stage, render, exit.

Command line. ``main(argv) -> int`` is the whole interface (``entry`` is the
program: ``main`` with the garbage collector off during start-up); exit codes:

    0   success (a plan that changes nothing also exits 0)
    2   a task or a verification failed on some host (or the run was stopped by a threshold)
    3   some host was unreachable (connect, auth or host key)
    4   invalid input, detected before any host was contacted
    5   the audit log could not be written: nothing further was changed
    6   a rollback failed on some host (neither its old nor its fixed state)
    7   incomplete: the blast-radius budget held hosts back (or a merge lacks slices)
    99  interrupted (SIGINT / SIGTERM)
    1   internal error (a bug: the traceback is written to a file and named)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence
from typing import Any

from runner.cli.parser import build_parser
from runner.errors import InputError, RemedyError
from runner.output.docs import render_catalogue, render_modules, render_playbook_doc

EXIT_OK, EXIT_INTERNAL, EXIT_FAILED, EXIT_UNREACHABLE, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 99


def entry() -> None:
    """The ``remedy`` program (console script and ``python -m runner``).

    The cyclic garbage collector starts off: imports and input parsing allocate
    only objects that live until exit, and full collections over them cost
    ~15 ms in the middle of a run and again at exit. ``commands`` freezes them and
    turns the collector back on before any host is contacted.
    """
    gc.disable()
    sys.exit(main())


def main(argv: Sequence[str] | None = None) -> int:
    """Run one remedy command; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else EXIT_INPUT
        return EXIT_INPUT if code == 2 else code
    try:
        return _dispatch(args)
    except InputError as error:
        _print_input_error(error)
        return EXIT_INPUT
    except RemedyError as error:
        print(f"remedy: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("remedy: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception:  # noqa: BLE001 - the one place a bug becomes a message
        return _internal_error()


def _print_input_error(error: InputError) -> None:
    count = len(error.problems)
    print(error.render(), file=sys.stderr)
    noun = "problem" if count == 1 else "problems"
    print(f"remedy: {count} input {noun}; nothing was run (exit 4)", file=sys.stderr)


def _internal_error() -> int:
    handle, path = tempfile.mkstemp(prefix="remedy-crash-", suffix=".txt")
    with os.fdopen(handle, "w") as out:
        out.write(traceback.format_exc())
    kind = sys.exc_info()[0]
    print(f"remedy: internal error ({kind.__name__ if kind else 'unknown'}); "
          f"this is a bug. Details: {path}", file=sys.stderr)
    return EXIT_INTERNAL


def _dispatch(args: argparse.Namespace) -> int:
    handlers = {
        "validate": _cmd_validate, "graph": _cmd_graph, "inventory": _cmd_inventory,
        "playbooks": _cmd_playbooks, "run": _cmd_run, "plan": _cmd_run,
        "diagnose": _cmd_run, "apply": _cmd_apply, "demo": _cmd_demo, "collect": _cmd_collect,
        "trigger": _cmd_alerts, "listen": _cmd_alerts, "merge": _cmd_merge,
    }
    return handlers[args.command](args)


def _cmd_validate(args: argparse.Namespace) -> int:
    from runner.cli.commands import warn_inputs
    from runner.load.inputs import load_inputs, unchecked_variables

    inputs = load_inputs(args.playbooks, args.inventory, args.extra_vars)
    warn_inputs(inputs)
    tasks = len(inputs.graph.nodes)
    warnings = [] if args.inventory else unchecked_variables(inputs.playbooks, inputs.extra_vars)
    for warning in sorted(warnings, key=lambda w: w.location):
        print(warning.render(), file=sys.stderr)
    counted = f", {len(warnings)} warning(s)" if warnings else ""
    extra = "" if args.inventory else " (pass -i INVENTORY to also check variables)"
    print(f"ok: {len(inputs.playbooks)} playbook(s), {tasks} task(s){counted}{extra}")
    return EXIT_OK


def _cmd_graph(args: argparse.Namespace) -> int:
    from runner.load.inputs import load_inputs
    from runner.output.docs import render_graph

    inputs = load_inputs(args.playbooks)
    print(render_graph(inputs.graph, args.format))
    return EXIT_OK


def _cmd_inventory(args: argparse.Namespace) -> int:
    from runner.load.inventory import load_inventory
    from runner.load.inventory.patterns import select_hosts

    inventory = load_inventory(args.inventory)
    if args.host:
        if inventory.get_host(args.host) is None:
            raise InputError.at(_cli_location("--host"), f"no host named '{args.host}'")
        redactor = _inventory_redactor(inventory, [args.host])
        print(json.dumps(redactor.value(inventory.host_json(args.host)), indent=4, sort_keys=True))
        return EXIT_OK
    redactor = _inventory_redactor(inventory, list(inventory.hosts))
    data: dict[str, Any] = inventory.to_ansible_json()
    if args.limit:
        keep = set(select_hosts(inventory, args.limit))
        data = inventory.restricted(keep).to_ansible_json()
    if args.graph:
        from runner.output.docs import render_inventory_graph

        print(render_inventory_graph(data))
    else:
        print(json.dumps(redactor.value(data), indent=4, sort_keys=True))
    return EXIT_OK


def _inventory_redactor(inventory: Any, hosts: list[str]) -> Any:
    """A redactor for the secret variables of ``hosts`` of ``inventory``."""
    from runner.errors import Location
    from runner.plan.secrets import host_secrets
    from runner.redaction import Redactor

    redactor = Redactor()
    for name in hosts:
        variables = {**inventory.host_vars(name), **inventory.magic_vars(name)}
        for secret in host_secrets(variables, Location(f"<variables of host {name}>")):
            redactor.add(secret)
    return redactor


def _cli_location(what: str) -> Any:
    from runner.errors import Location

    return Location(f"<command line {what}>")


def _cmd_playbooks(args: argparse.Namespace) -> int:
    from runner.load.inputs import bundled_playbooks
    from runner.load.playbook import load_playbook

    if args.modules or args.module:
        print(render_modules(args.module))
        return EXIT_OK
    books = bundled_playbooks()
    if args.name:
        path = books.get(args.name)
        if path is None:
            from runner.errors import suggest

            raise InputError.at(_cli_location("playbooks NAME"),
                                f"no bundled playbook named '{args.name}'" + suggest(args.name, books),
                                "run 'remedy playbooks' for the list")
        print(render_playbook_doc(load_playbook(path)))
        return EXIT_OK
    print(render_catalogue([load_playbook(p) for p in books.values()]))
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from runner.cli.commands import run_command

    return run_command(args)


def _cmd_merge(args: argparse.Namespace) -> int:
    from runner.cli.merge import merge_command

    return merge_command(args)


def _cmd_collect(args: argparse.Namespace) -> int:
    from runner.cli.collect import collect_command

    return collect_command(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from runner.cli.demo import run_demo

    return run_demo(main, keep=args.keep, root=args.dir)


def _cmd_alerts(args: argparse.Namespace) -> int:
    from runner.cli.alerting import listen_command, trigger_command

    return trigger_command(args) if args.command == "trigger" else listen_command(args)


def _cmd_apply(args: argparse.Namespace) -> int:
    from runner.cli.apply import apply_command

    return apply_command(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
