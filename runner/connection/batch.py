"""Several read-only commands in one round trip, each with its own exit code, stdout and stderr.

Services layer, used by ``probing`` to batch fact probes. ``run_batch`` sends
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

import secrets
from collections.abc import Mapping, Sequence

from runner.connection.interface import Become, Connection
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
    # Split with str.split on the random nonce: a regex per batch would be compiled anew
    # each time (the nonce makes every pattern unique), which costs more than the split.
    out = _sections(result.stdout, nonce, 2)
    err = _sections(result.stderr, nonce, 1)
    count = len(commands)
    if out is None or err is None or len(out) != count or len(err) != count:
        return None
    share = result.duration / count if count else 0.0
    results = []
    for index, command in enumerate(commands):
        (text, (number, rc)), (stderr, (err_number,)) = out[index], err[index]
        if number != str(index) or err_number != str(index) or not rc.isdigit():
            return None
        results.append(CommandResult(command=command, rc=int(rc), stdout=text, stderr=stderr,
                                     duration=share))
    return results


def _sections(text: str, nonce: str, fields: int) -> list[tuple[str, list[str]]] | None:
    """``text`` cut at each ``\\n<nonce> f1 .. fn\\n`` line: (text before it, its fields).

    None when the text does not end with such a line or a line is malformed.
    """
    parts = text.split(f"\n{nonce} ")
    sections = []
    body = parts[0]
    for part in parts[1:]:
        head, newline, rest = part.partition("\n")
        values = head.split(" ")
        if not newline or len(values) != fields:
            return None
        sections.append((body, values))
        body = rest
    return sections if body == "" else None


def run_batch(conn: Connection, commands: Sequence[str], *, become: Become | None,
              env: Mapping[str, str] | None, timeout: float | None) -> list[CommandResult] | None:
    """Run read-only ``commands`` in one round trip; None when the caller must run them singly.

    Raises what ``Connection.run`` raises (timeout, lost connection, interruption).
    """
    if not commands:
        return []
    nonce = f"REMEDY-BATCH-{secrets.token_hex(8)}"
    result = conn.run(batch_script(commands, nonce), timeout=timeout, become=become, env=env or None,
                      contained=True)
    return split_batch(commands, nonce, result)
