"""Several read-only commands in one round trip, each with its own exit code, stdout and stderr.

Services layer, used by ``taskrun`` to batch fact probes. ``run_batch`` sends
one script over ``Connection.run``: every command runs in a subshell of its own
(an ``exit`` in one ends only that one, its stdin is empty), and after each one
a delimiter line carrying a random nonce, its index and its exit code is
printed on stdout, and one with its index on stderr. Splitting both streams at
the delimiters gives back one ``CommandResult`` per command, as if each had run
alone. When the answer cannot be split exactly (output capped, a delimiter
missing, the script killed), ``run_batch`` returns None and the caller runs the
commands one by one.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence

from runner.connection import Become, Connection
from runner.results import CommandResult


def batch_script(commands: Sequence[str], nonce: str) -> str:
    """The script that runs ``commands`` in order, each followed by its delimiters."""
    parts = []
    for index, command in enumerate(commands):
        parts.append(
            f"( {command}\n) </dev/null\n"
            f"printf '\\n%s %d %s\\n' {nonce} {index} \"$?\"\n"
            f"printf '\\n%s %d\\n' {nonce} {index} >&2\n"
        )
    return "".join(parts)


def split_batch(commands: Sequence[str], nonce: str, result: CommandResult) -> list[CommandResult] | None:
    """One result per command from the batch's ``result``; None if it cannot be split exactly."""
    if result.rc != 0 or result.truncated or result.timed_out:
        return None
    out = re.split(rf"\n{nonce} (\d+) (\d+)\n", result.stdout)
    err = re.split(rf"\n{nonce} (\d+)\n", result.stderr)
    count = len(commands)
    if len(out) != 3 * count + 1 or len(err) != 2 * count + 1 or out[-1] or err[-1]:
        return None
    share = result.duration / count if count else 0.0
    results = []
    for index, command in enumerate(commands):
        text, number, rc = out[3 * index : 3 * index + 3]
        stderr, err_number = err[2 * index : 2 * index + 2]
        if int(number) != index or int(err_number) != index:
            return None
        results.append(CommandResult(command=command, rc=int(rc), stdout=text, stderr=stderr,
                                     duration=share))
    return results


def run_batch(conn: Connection, commands: Sequence[str], *, become: Become | None,
              env: Mapping[str, str] | None, timeout: float | None) -> list[CommandResult] | None:
    """Run read-only ``commands`` in one round trip; None when the caller must run them singly.

    Raises what ``Connection.run`` raises (timeout, lost connection, interruption).
    """
    if not commands:
        return []
    nonce = f"REMEDY-BATCH-{secrets.token_hex(8)}"
    result = conn.run(batch_script(commands, nonce), timeout=timeout, become=become, env=env or None)
    return split_batch(commands, nonce, result)
