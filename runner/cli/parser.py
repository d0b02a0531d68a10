"""The ``remedy`` command line's grammar: every subcommand, its options, help and examples.

CLI stage. ``build_parser`` is the one definition of the command line; the
commands read the parsed ``argparse.Namespace``, and ``apply`` rebuilds a
saved run's arguments with it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from runner import __version__

#: The audit log without --audit-log: under $XDG_STATE_HOME, else ~/.local/state.
DEFAULT_AUDIT = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / \
    "remedy" / "audit.jsonl"


#: ``--detailed-exitcode``: the plan would change something, or a fault was found.
EXIT_PENDING = 10

EPILOGS = {
    "run": """examples:
  remedy run -i inventory/hosts.ini                 # every bundled playbook: all faults, in order
  remedy run playbooks/port_conflict.yml -i inventory/hosts.ini
  remedy run port_conflict -i hosts.yml -l 'web:!web03' -e fallback_port=8081 --diff
  remedy run cache_flush -i hosts.yml --check --format json > plan.json
  remedy run permission_error -i hosts.yml --serial 1,100% --max-fail-percentage 0   # canary first
""",
    "plan": """examples:
  remedy plan port_conflict -i hosts.yml --diff
  remedy plan restore_from_backup -i hosts.yml -o plan.json   # review, then: remedy apply plan.json
""",
    "apply": "examples:\n  remedy apply plan.json\n"
             "  remedy apply plan.json --serial 1,25% --max-fail-percentage 0   # canary, then quarters\n",
    "diagnose": """examples:
  remedy diagnose -i hosts.yml                   # every bundled playbook's diagnosis
  remedy diagnose port_conflict cache_flush -i hosts.yml --format json
""",
    "graph": """examples:
  remedy graph playbooks/port_conflict.yml
  remedy graph a.yml b.yml --format mermaid > graph.md
  remedy graph site.yml --format dot | dot -Tsvg > graph.svg
""",
    "validate": """examples:
  remedy validate playbooks/*.yml
  remedy validate site.yml -i inventory/hosts.ini    # also checks every variable is defined
""",
    "inventory": """examples:
  remedy inventory -i hosts.ini --list          # same JSON shape as ansible-inventory --list
  remedy inventory -i hosts.ini --host web01
  remedy inventory -i hosts.ini --graph -l 'web:&prod'
""",
    "demo": "examples:\n  remedy demo            # needs no SSH: uses the local connection\n",
    "playbooks": """examples:
  remedy playbooks                    # the bundled catalogue
  remedy playbooks port_conflict      # its documentation and variables
  remedy playbooks --modules          # every module and its arguments
""",
}


def _add_execution_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("playbooks", nargs="+", metavar="PLAYBOOK",
                        help="playbook files, or names of bundled playbooks")
    parser.add_argument("-i", "--inventory", action="append", required=True, metavar="INVENTORY",
                        help="inventory file, directory or 'host1,host2,' (repeatable)")
    parser.add_argument("-l", "--limit", metavar="PATTERN", help="restrict hosts (Ansible patterns)")
    parser.add_argument("-e", "--extra-vars", action="append", default=[], metavar="VARS",
                        help="k=v, @file.yml or JSON; highest precedence (repeatable)")
    parser.add_argument("-t", "--tags", default="", help="run only tasks with these tags (comma list)")
    parser.add_argument("--skip-tags", default="", help="skip tasks with these tags (comma list)")
    parser.add_argument("-f", "--forks", type=int, default=20, help="hosts in parallel (default 20)")
    parser.add_argument("--diff", action="store_true", help="show file diffs")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="json: one document on stdout, human output on stderr")
    parser.add_argument("--junit", metavar="FILE", help="write a JUnit XML report")
    parser.add_argument("--audit-log", metavar="FILE",
                        help="append-only JSONL audit log (default {})".format(
                            str(DEFAULT_AUDIT).replace("%", "%%")))
    parser.add_argument("--known-hosts", metavar="FILE", help="known_hosts file (default ~/.ssh/known_hosts)")
    parser.add_argument("--accept-new-host-keys", action="store_true",
                        help="trust and record unknown host keys (never changed ones)")
    parser.add_argument("-F", "--ssh-config", metavar="FILE", help="ssh_config file")
    parser.add_argument("-u", "--user", help="remote user (overrides ansible_user)")
    parser.add_argument("--private-key", metavar="FILE", help="SSH private key file")
    parser.add_argument("-k", "--ask-pass", action="store_true",
                        help="prompt for the SSH password (or set REMEDY_SSH_PASSWORD)")
    parser.add_argument("-K", "--ask-become-pass", action="store_true",
                        help="prompt for the sudo password (or set REMEDY_BECOME_PASSWORD)")
    parser.add_argument("--connect-timeout", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument("--lock-timeout", type=float, default=0.0,
                        help="wait this long for another run's host lock (default: don't wait)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="show commands and output")
    parser.add_argument("-q", "--quiet", action="store_true", help="print the recap only")


def _add_batch_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--serial", metavar="BATCHES",
                        help="run hosts in batches, as the play keyword serial: a count, a percentage or "
                             "a list such as 1,10%%,100%% (a canary host first); overrides the playbook")
    parser.add_argument("--max-fail-percentage", metavar="PERCENT",
                        help="stop the run when more than PERCENT%% of a batch's hosts fail (0 to 100; "
                             "0: any failure); overrides the playbook")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="remedy",
        description="Diagnose, plan, fix, verify and roll back faults on hosts over SSH.",
        epilog="exit codes: 0 ok, 2 task/verification failed, 3 host unreachable, "
               "4 invalid input, 5 audit log not written (nothing further changed), "
               "6 a rollback failed, 99 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"remedy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOGS.get(name),
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    run = command("run", "Diagnose, fix, verify (and roll back) on every host; "
                         "no PLAYBOOK: every bundled playbook, faults fixed in their order.")
    _add_execution_args_optional(run)
    run.add_argument("-C", "--check", action="store_true", help="predict only; change nothing")
    run.add_argument("--compare-plan", metavar="PLAN",
                     help="after the run, check it changed exactly what this saved plan predicted")
    _add_batch_args(run)
    plan = command("plan", "Dry run: what would change on each host, with diffs "
                           "(no PLAYBOOK: every bundled playbook).")
    _add_execution_args_optional(plan)
    plan.add_argument("-o", "--output", metavar="FILE", help="save the plan for 'remedy apply'")
    plan.add_argument("--detailed-exitcode", action="store_true",
                      help=f"exit {EXIT_PENDING} when the plan would change something, 0 when nothing")
    apply = command("apply", "Run exactly a saved plan; refuses a plan whose facts drifted.")
    apply.add_argument("plan_file", metavar="PLAN")
    apply.add_argument("--format", choices=("text", "json"), default="text")
    apply.add_argument("-v", "--verbose", action="count", default=0)
    apply.add_argument("-q", "--quiet", action="store_true")
    _add_batch_args(apply)
    diagnose = command("diagnose", "Which faults are present on which hosts, with the evidence.")
    _add_execution_args_optional(diagnose)
    diagnose.add_argument("--detailed-exitcode", action="store_true",
                          help=f"exit {EXIT_PENDING} when a fault is found, 0 when every host is healthy")
    graph = command("graph", "Show the task dependency graph.")
    graph.add_argument("playbooks", nargs="+", metavar="PLAYBOOK")
    graph.add_argument("--format", choices=("text", "mermaid", "dot"), default="text")
    validate = command("validate", "Check playbooks (and an inventory) without contacting hosts.")
    validate.add_argument("playbooks", nargs="+", metavar="PLAYBOOK")
    validate.add_argument("-i", "--inventory", action="append", default=[])
    validate.add_argument("-e", "--extra-vars", action="append", default=[])
    inventory = command("inventory", "Show the resolved inventory.")
    inventory.add_argument("-i", "--inventory", action="append", required=True)
    mode = inventory.add_mutually_exclusive_group(required=True)
    mode.add_argument("--list", action="store_true", help="all hosts and groups as JSON")
    mode.add_argument("--host", metavar="HOST", help="one host's merged variables as JSON")
    mode.add_argument("--graph", action="store_true", help="the group tree")
    inventory.add_argument("-l", "--limit", metavar="PATTERN")
    demo = command("demo", "Fix a throw-away sandbox on localhost: plan, run, recap.")
    demo.add_argument("--keep", action="store_true", help="keep the sandbox afterwards")
    demo.add_argument("--dir", metavar="DIR", help="build the sandbox here instead of a temp dir")
    playbooks = command("playbooks", "List the bundled playbooks, or document one.")
    playbooks.add_argument("name", nargs="?")
    playbooks.add_argument("--modules", action="store_true", help="document every module")
    playbooks.add_argument("--module", metavar="NAME", help="document one module")
    return parser


def _add_execution_args_optional(parser: argparse.ArgumentParser) -> None:
    _add_execution_args(parser)
    for action in parser._actions:
        if action.dest == "playbooks":
            action.nargs = "*"
