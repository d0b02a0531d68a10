"""The ``memcached`` module: count a memcached server's items, or flush them all.

Services layer. memcached speaks a line protocol; the host talks to it with
bash's ``/dev/tcp`` or, without bash, with ``nc``. The probe sends
``stats`` (read-only); a flush sends ``flush_all``. memcached cannot list its
keys portably, so a flush cannot be undone and keeps no snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.modules.base import Arg, Change, Command, Fact, Module, quote
from runner.results import CommandResult, Diff

_HOST = re.compile(r"^[A-Za-z0-9._:-]+$")


@dataclass(frozen=True)
class MemcachedFacts:
    items: int = 0
    error: str = ""


class MemcachedModule(Module):
    """Flush every item of a memcached server (``flush_all``), or only count them.

    ``state: checked`` only reads (``stats``: ``curr_items``). ``state:
    flushed`` sends ``flush_all`` when the server holds items. The host needs
    bash (``/dev/tcp``) or ``nc``. A flush cannot be undone.
    """

    name = "memcached"
    summary = "Count a memcached server's items, or flush them all (flush_all)"
    args = {
        "host": Arg("str", default="127.0.0.1", doc="The memcached server, as seen from the host."),
        "port": Arg("int", default=11211, doc="Its port."),
        "state": Arg("str", default="checked", choices=("checked", "flushed"),
                     doc="checked: only count the items; flushed: flush_all."),
        "timeout": Arg("int", default=5, doc="Seconds a request may take."),
    }

    def reads_only(self, args: Mapping[str, Any]) -> bool:
        return args.get("state") in (None, "checked")

    def facts(self, args: Mapping[str, Any]) -> Mapping[str, Fact]:
        a = self.resolved(args)
        if not _HOST.match(str(a["host"])):
            return {"memcached": Fact(":", lambda r: MemcachedFacts(error="bad host"))}
        probe = [*_client(a), "out=$(mc stats) || exit 1", 'printf "%s\\n" "$out"', "echo end=1"]
        return {"memcached": Fact("\n".join(probe), _parse)}

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        a = self.resolved(args)
        f: MemcachedFacts = facts["memcached"]
        where = f"memcached {a['host']}:{a['port']}"
        if not _HOST.match(str(a["host"])):
            return Change(changed=False, failed=f"host {a['host']!r} is not a host name or address")
        if f.error:
            return Change(changed=False, failed=f"{where}: {f.error}")
        data = {"items": f.items}
        if a["state"] == "checked" or not f.items:
            return Change(changed=False, data=data, summary=f"{where} holds {f.items} items")
        script = "\n".join([
            *_client(a),
            "out=$(mc flush_all) || exit 1",
            'case $out in *OK*) echo "flushed";; *) echo "flush_all answered: $out" >&2; exit 1;; esac',
        ])
        return Change(
            changed=True,
            steps=(Command(script),),
            diffs=(Diff(where, f"{f.items} items\n", "0 items (flush_all)\n"),),
            summary=f"flush_all {where} ({f.items} items; cannot be undone)",
            data=data,
        )


def _client(a: Mapping[str, Any]) -> list[str]:
    """``mc LINE``: send one command line (then quit) and print the answer."""
    timeout = max(int(a["timeout"]), 1)
    return [
        f"h={quote(a['host'])}", f"p={int(a['port'])}",
        "mc() {",
        "  if command -v bash >/dev/null 2>&1; then",
        f"    timeout {timeout} bash -c 'exec 3<>\"/dev/tcp/$0/$1\" || exit 1; "
        "printf \"%s\\r\\nquit\\r\\n\" \"$2\" >&3; cat <&3' \"$h\" \"$p\" \"$1\"",
        "  elif command -v nc >/dev/null 2>&1; then",
        f"    printf '%s\\r\\nquit\\r\\n' \"$1\" | nc -w {timeout} \"$h\" \"$p\"",
        "  else echo 'neither bash nor nc is installed on the host' >&2; return 127; fi",
        "}",
    ]


def _parse(result: CommandResult) -> MemcachedFacts:
    if result.rc != 0 or "end=1" not in result.stdout:
        detail = result.tail("stderr", 3) or f"exit code {result.rc}"
        return MemcachedFacts(error=f"cannot reach it: {detail}")
    match = re.search(r"^STAT curr_items (\d+)", result.stdout.replace("\r", ""), re.M)
    if not match:
        return MemcachedFacts(error="its stats have no curr_items (is it memcached?)")
    return MemcachedFacts(items=int(match.group(1)))
