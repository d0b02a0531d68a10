"""What to do about hosts whose keys are unknown: one paragraph per run, not one per host.

Output stage. A host whose key is not in known_hosts is refused before
authentication (``connection.hostkeys``: "unknown host key for NAME: expected
none (not in PATH), actual TYPE FINGERPRINT") and reported ``unreachable``
with that fingerprint. On first contact with a fleet that is every host;
``render_first_contact`` groups them and says, once, how to check and record
their keys: ``ssh-keyscan`` into the known_hosts file, or a run with
``--accept-new-host-keys``.
"""

from __future__ import annotations

import re

from runner.output.tables import wrap
from runner.results import Run, Status

_UNKNOWN = re.compile(r"unknown host key for (?P<name>\S+): expected none \(not in (?P<path>.+?)\), actual ")
_BRACKETED = re.compile(r"\[(?P<address>[^\]]+)\]:(?P<port>\d+)")
#: Hosts named in the paragraph, and ssh-keyscan commands shown; the rest are counted.
_SHOWN_HOSTS = 8
_SHOWN_COMMANDS = 3


def render_first_contact(run: Run, width: int | None = None) -> str:
    """The paragraph for the hosts refused for an unknown key, or "" when there are none.

    With ``width``, its prose is wrapped to it; the commands stay whole, one per line.
    """
    unknown: dict[str, dict[str, list[str]]] = {}  # known_hosts path -> port -> addresses
    hosts: list[str] = []
    for host in run.hosts:
        found = next((m for r in host.results if r.status is Status.UNREACHABLE
                      for m in [_UNKNOWN.search(r.message)] if m), None)
        if found is None:
            continue
        hosts.append(host.host)
        bracketed = _BRACKETED.fullmatch(found["name"])
        address, port = (bracketed["address"], bracketed["port"]) if bracketed else (found["name"], "22")
        addresses = unknown.setdefault(found["path"], {}).setdefault(port, [])
        if address not in addresses:
            addresses.append(address)
    if not hosts:
        return ""
    named = ", ".join(hosts[:_SHOWN_HOSTS]) + (f" and {len(hosts) - _SHOWN_HOSTS} more"
                                               if len(hosts) > _SHOWN_HOSTS else "")
    commands = [f"  ssh-keyscan{'' if port == '22' else f' -p {port}'} {' '.join(addresses)} >> {path}"
                for path, ports in unknown.items() for port, addresses in ports.items()]
    more = len(commands) - _SHOWN_COMMANDS
    def prose(text: str) -> list[str]:
        return wrap(text, width, hang="") if width else [text]

    return "\n".join([
        *prose(f"First contact: {len(hosts)} host{'s' if len(hosts) > 1 else ''} ({named}) "
               f"offered a host key that known_hosts does not hold, so remedy did not log in. Compare each "
               f"host's reported fingerprint with its own (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub "
               f"on the host), then record the keys and run again:"),
        *commands[:_SHOWN_COMMANDS],
        *([f"  ... and {more} more such command{'s' if more > 1 else ''}"] if more > 0 else []),
        *prose("or run again with --accept-new-host-keys (records unknown keys; a changed key is still "
               "refused)."),
    ])
