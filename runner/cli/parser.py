"""The ``remedy`` command line's grammar: every subcommand, its options, help and examples.

CLI stage. ``build_parser`` is the one definition of the command line; the
commands read the parsed ``argparse.Namespace``, and ``apply`` rebuilds a
saved run's arguments with it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from runner import __version__
from runner.plan.artifact import DEFAULT_TTL

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
  remedy run cache_flush -i hosts.yml --check --format json > check.json   # the prediction, as JSON
  remedy run permission_error -i hosts.yml --serial 1,100% --max-fail-percentage 0   # canary first
""",
    "plan": """examples:
  remedy plan port_conflict -i hosts.yml > plan.txt   # the table, the diffs, a summary line
  remedy plan restore_from_backup -i hosts.yml -o plan.json   # review, then: remedy apply plan.json
  remedy plan -i hosts.yml -o plan.json --plan-ttl 2h --detailed-exitcode --format markdown > plan.md
""",
    "apply": """examples:
  remedy apply plan.json
  remedy apply plan.json --serial 1,25% --max-fail-percentage 0   # canary, then quarters
  remedy apply plan.json --private-key ~/.ssh/ci --known-hosts ci_known_hosts \\
      --junit apply.xml -o result.json --format markdown > summary.md   # in CI
""",
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
    "collect": """examples:
  remedy collect -i hosts.ini                    # ./remedy-collect-<run id>.tar.gz: read summary.md first
  remedy collect -i hosts.ini -l 'web:!web03' -o /var/tmp/incident-42
  remedy collect -i hosts.ini -e coze_config=/srv/coze/config.yaml -e remedy_evidence_log_bytes=1048576
""",
    "merge": """examples:
  remedy run -i hosts.ini --slice 2/3 --format json > slice-2.json   # on each of 3 machines
  remedy merge slice-*.json --junit remedy.xml -o result.json        # one recap, one exit code
""",
    "demo": "examples:\n  remedy demo            # needs no SSH: uses the local connection\n",
    "playbooks": """examples:
  remedy playbooks                    # the bundled catalogue
  remedy playbooks port_conflict      # its documentation and variables
  remedy playbooks --modules          # every module and its arguments
""",
}


def _add_execution_args(parser: argparse.ArgumentParser, *, playbooks: bool = True,
                        changes: bool = True) -> None:
    """The options of the commands that run hosts; ``changes``: also those only a change needs."""
    if playbooks:
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
    _add_output_args(parser, changes=changes)
    _add_connection_args(parser)
    if changes:
        _add_lock_args(parser)


def _add_lock_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lock-timeout", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long for another run's host lock (default: don't wait)")


def _add_output_args(parser: argparse.ArgumentParser, *, changes: bool = True) -> None:
    if changes:
        parser.add_argument("--diff", action="store_true",
                            help="show file diffs in the progress of a run (a plan always shows them)")
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text",
                        help="json: one document on stdout; markdown: a summary for a CI job or a "
                             "merge request on stdout; with either, human output goes to stderr")
    parser.add_argument("--junit", metavar="FILE", help="write a JUnit XML report")
    parser.add_argument("--audit-log", metavar="FILE",
                        help="append-only JSONL audit log (default {})".format(
                            str(DEFAULT_AUDIT).replace("%", "%%")))
    parser.add_argument("-v", "--verbose", action="count", default=0, help="show commands and output")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress, only the results")
    _add_color_arg(parser)


def _add_connection_args(parser: argparse.ArgumentParser) -> None:
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


def _add_color_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-color", action="store_true",
                        help="no colour on a terminal (also: NO_COLOR=1); never any in a file or pipe")


def _add_evidence_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-evidence", action="store_true",
                        help="keep no evidence (by default the bundled playbooks capture the diagnosis "
                             "bundle before a host's first change and after the verification, in "
                             "evidence/<run id>/<host>/ beside the audit log)")


def _add_collect_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--inventory", action="append", required=True, metavar="INVENTORY",
                        help="inventory file, directory or 'host1,host2,' (repeatable)")
    parser.add_argument("-l", "--limit", metavar="PATTERN", help="restrict hosts (Ansible patterns)")
    parser.add_argument("-e", "--extra-vars", action="append", default=[], metavar="VARS",
                        help="k=v, @file.yml or JSON: the paths and names of the bundle (repeatable)")
    parser.add_argument("-o", "--output", metavar="DIR", default=".",
                        help="directory for remedy-collect-<run id>.tar.gz (default: the current one)")
    parser.add_argument("-f", "--forks", type=int, default=20, help="hosts in parallel (default 20)")
    _add_connection_args(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the archive's path")
    parser.set_defaults(tags="", skip_tags="", lock_timeout=0.0, verbose=0)


def _add_batch_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--serial", metavar="BATCHES",
                        help="run hosts in batches, as the play keyword serial: a count, a percentage or "
                             "a list such as 1,10%%,100%% (a canary host first); overrides the playbook")
    parser.add_argument("--max-fail-percentage", metavar="PERCENT",
                        help="stop the run when more than PERCENT%% of a batch's hosts fail (0 to 100; "
                             "0: any failure); overrides the playbook")
    parser.add_argument("--max-changed", metavar="N|P%",
                        help="blast-radius budget: change at most N hosts (or P%% of the run's hosts); the "
                             "rest are diagnosed, not changed, and the run exits 7; overrides the "
                             "playbook's max_hosts_changed")


def _add_slice_arg(parser: argparse.ArgumentParser, *, output: bool = True) -> None:
    if output:
        parser.add_argument("-o", "--output", metavar="FILE", help="write the run's JSON document to FILE")
    parser.add_argument("--slice", metavar="K/N",
                        help="only the hosts of slice K of N (1-based; by a hash of the host name: the "
                             "N slices never overlap and hold every host); 'remedy merge' joins the results")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="remedy",
        description="Diagnose, plan, fix, verify and roll back faults on hosts over SSH.",
        epilog="exit codes: 0 ok, 2 task/verification failed, 3 host unreachable, "
               "4 invalid input, 5 audit log not written (nothing further changed), "
               f"6 a rollback failed, 7 incomplete (blast-radius budget; slices missing), "
               f"{EXIT_PENDING} something to do (--detailed-exitcode), 99 interrupted",
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
    _add_evidence_args(run)
    _add_batch_args(run)
    _add_slice_arg(run)
    plan = command("plan", "Dry run: what would change on each host, with diffs "
                           "(no PLAYBOOK: every bundled playbook).")
    _add_execution_args_optional(plan)
    plan.add_argument("-o", "--output", metavar="FILE",
                      help="save the plan for 'remedy apply' (signed when REMEDY_PLAN_KEY is set)")
    plan.add_argument("--plan-ttl", metavar="DURATION", default=DEFAULT_TTL,
                      help=f"how long a saved plan stays valid: 30m, 1h, 2d ... (default {DEFAULT_TTL})")
    plan.add_argument("--detailed-exitcode", action="store_true",
                      help=f"exit {EXIT_PENDING} when the plan would change something, 0 when nothing")
    _add_slice_arg(plan, output=False)
    apply = command("apply", "Run exactly a saved plan; refuses a plan that is expired, changed, "
                             "wrongly signed, already applied, or whose inputs or facts drifted.")
    apply.add_argument("plan_file", metavar="PLAN", help="a plan saved by 'remedy plan -o PLAN'")
    apply.add_argument("-o", "--output", metavar="FILE", help="write the run's JSON document to FILE")
    apply.add_argument("-f", "--forks", type=int, default=20, help="hosts in parallel (default 20)")
    _add_output_args(apply)
    _add_connection_args(apply)
    _add_lock_args(apply)
    _add_evidence_args(apply)
    _add_batch_args(apply)
    diagnose = command("diagnose", "Which faults are present on which hosts, with the evidence.")
    _add_execution_args_optional(diagnose, changes=False)
    diagnose.add_argument("--detailed-exitcode", action="store_true",
                          help=f"exit {EXIT_PENDING} when a fault is found, 0 when every host is healthy")
    _add_slice_arg(diagnose)
    collect = command("collect", "Gather the guide's diagnosis bundle of every host into one "
                                 "archive, secrets masked: logs, service state, processes, ports, "
                                 "config, environment, disk, memory, load.")
    _add_collect_args(collect)
    _add_slice_arg(collect, output=False)
    graph = command("graph", "Show the task dependency graph.")
    graph.add_argument("playbooks", nargs="+", metavar="PLAYBOOK",
                       help="playbook files, or names of bundled playbooks")
    graph.add_argument("--format", choices=("text", "mermaid", "dot"), default="text",
                       help="text (default), mermaid (a ```mermaid block to paste into Markdown) or dot")
    validate = command("validate", "Check playbooks (and an inventory) without contacting hosts.")
    validate.add_argument("playbooks", nargs="+", metavar="PLAYBOOK",
                          help="playbook files, or names of bundled playbooks")
    validate.add_argument("-i", "--inventory", action="append", default=[], metavar="INVENTORY",
                          help="also check that every variable is defined for its hosts (repeatable)")
    validate.add_argument("-e", "--extra-vars", action="append", default=[], metavar="VARS",
                          help="k=v, @file.yml or JSON, as for run (repeatable)")
    inventory = command("inventory", "Show the resolved inventory.")
    inventory.add_argument("-i", "--inventory", action="append", required=True, metavar="INVENTORY",
                           help="inventory file, directory or 'host1,host2,' (repeatable)")
    mode = inventory.add_mutually_exclusive_group(required=True)
    mode.add_argument("--list", action="store_true", help="all hosts and groups as JSON")
    mode.add_argument("--host", metavar="HOST", help="one host's merged variables as JSON")
    mode.add_argument("--graph", action="store_true", help="the group tree")
    inventory.add_argument("-l", "--limit", metavar="PATTERN", help="only these hosts (Ansible patterns)")
    demo = command("demo", "Fix a throw-away sandbox on localhost: plan, run, recap.")
    demo.add_argument("--keep", action="store_true", help="keep the sandbox afterwards")
    demo.add_argument("--dir", metavar="DIR", help="build the sandbox here instead of a temp dir")
    playbooks = command("playbooks", "List the bundled playbooks, or document one.")
    playbooks.add_argument("name", nargs="?", help="a bundled playbook to document")
    playbooks.add_argument("--modules", action="store_true", help="document every module")
    playbooks.add_argument("--module", metavar="NAME", help="document one module")
    _add_alert_commands(command)
    merge = command("merge", "Join the JSON documents of sliced runs (--slice K/N) into one result, "
                             "recap and exit code; refuses documents that are not slices of one run.")
    merge.add_argument("results", nargs="+", metavar="RESULTS", help="JSON documents, one per slice")
    merge.add_argument("--format", choices=("text", "json", "markdown"), default="text",
                       help="json: the merged document on stdout; markdown: its summary for a CI job; "
                            "with either, the recap goes to stderr")
    merge.add_argument("-o", "--output", metavar="FILE", help="write the merged JSON document to FILE")
    merge.add_argument("--junit", metavar="FILE", help="write the merged JUnit XML report")
    return parser


ALERT_EPILOGS = {
    "trigger": """examples:
  remedy trigger alert.json -r examples/alerts/rules.yml -i hosts.ini
  remedy trigger - -r rules.yml -i hosts.ini -l 'web:!web01' < alert.json   # payload on stdin
""",
    "listen": """examples:
  export REMEDY_LISTEN_TOKEN=$(openssl rand -hex 32)
  remedy listen -r examples/alerts/rules.yml -i hosts.ini            # http://127.0.0.1:9095/alerts
  remedy listen -r rules.yml -i hosts.ini --port 9096 --workers 2 --results-dir /var/lib/remedy/runs
""",
}


def _add_alert_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """``trigger`` and ``listen``: the execution options of ``run`` (``-l`` restricts the hosts
    alerts may act on), the rules, the guards' state and the results."""
    trigger = command("trigger", "Run the playbooks an Alertmanager notification's rules name, guarded.")
    trigger.add_argument("alert", metavar="ALERT", help="a webhook payload (JSON file; - for stdin)")
    listen = command("listen", "Serve Alertmanager's webhook: each alert is decided and run, guarded.")
    for parser in (trigger, listen):
        parser.epilog = ALERT_EPILOGS[parser.prog.split()[-1]]
        parser.add_argument("-r", "--rules", required=True, metavar="RULES",
                            help="rules file: alert matchers -> playbooks, host, vars, mode; guards")
        parser.add_argument("--state", metavar="FILE",
                            help="the guards' state (default: beside the audit log, NAME.guards.json)")
        parser.add_argument("--results-dir", metavar="DIR",
                            help="each run's JSON document as DIR/RUN_ID.json (default: runs/ beside the "
                                 "audit log)")
        _add_execution_args(parser, playbooks=False)
    listen.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    listen.add_argument("--port", type=int, default=9095, help="port (default 9095; 0: any free port)")
    listen.add_argument("--token-env", default="REMEDY_LISTEN_TOKEN", metavar="VAR",
                        help="environment variable holding the bearer token (default REMEDY_LISTEN_TOKEN)")
    listen.add_argument("--no-auth", action="store_true",
                        help="accept requests without a token (loopback only)")
    listen.add_argument("--max-body", type=int, default=1024 * 1024, metavar="BYTES",
                        help="largest payload accepted (default 1 MiB)")
    listen.add_argument("--queue-size", type=int, default=64, metavar="N",
                        help="runs waiting at most (default 64; more: HTTP 503)")
    listen.add_argument("--workers", type=int, default=1, metavar="N", help="runs at once (default 1)")


def _add_execution_args_optional(parser: argparse.ArgumentParser, *, changes: bool = True) -> None:
    _add_execution_args(parser, changes=changes)
    for action in parser._actions:
        if action.dest == "playbooks":
            action.nargs = "*"
