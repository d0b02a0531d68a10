"""The per-host lock: two remedy runs never change one host at the same time.

Run stage. The lock is held by a long-lived command on its own channel
(``flock`` on the lock file, then a ``read`` loop until stdin ends); closing the
channel, or losing the SSH session, releases it on the host, so a crashed
run leaves no stale lock. Without ``flock`` the host falls back to an atomic
``mkdir`` lock removed when the holding command ends. The owner (run id) is
written into the lock file so a blocked run can say who holds it. A symlink
at the lock path is refused. The path is the host variable
``remedy_lock_path`` (default ``/tmp/remedy-<inventory_hostname>.lock``, so
that several inventory hosts on one machine, as in a lab, lock separately).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from runner.modules.base import quote

_HOLD = """lock={path}
umask 077
if [ -L "$lock" ] || [ -L "$lock.d" ]; then echo "ERROR refusing the symlink $lock"; exit 1; fi
if command -v flock >/dev/null 2>&1; then
  if ! (: >>"$lock") 2>/dev/null; then echo "ERROR cannot open $lock for writing"; exit 1; fi
  exec 9>>"$lock"
  if flock -n 9; then
    printf '%s\\n' {owner} > "$lock"; echo LOCKED; while read -r _; do :; done; : > "$lock"
  else
    echo "BUSY $(cat "$lock" 2>/dev/null)"
  fi
else
  if mkdir "$lock.d" 2>/dev/null; then
    printf '%s\\n' {owner} > "$lock.d/owner"; echo LOCKED; while read -r _; do :; done; rm -rf "$lock.d"
  else
    echo "BUSY $(cat "$lock.d/owner" 2>/dev/null)"
  fi
fi
"""


def default_lock_path(host: str) -> str:
    """The lock file of an inventory host when ``remedy_lock_path`` is not set."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in host)
    return f"/tmp/remedy-{safe}.lock"


class LockBusy(Exception):  # noqa: N818 - reads as a state
    """Another run holds the host lock; the message names its owner."""


class HostLock:
    """A held lock on one host; ``release`` is idempotent."""

    def __init__(self, conn: Any, path: str, owner: str) -> None:
        self.conn = conn
        self.path = path
        self.owner = owner
        self._held: Any = None

    def acquire(self, *, timeout: float, stop: threading.Event) -> None:
        """Take the lock, retrying until ``timeout`` seconds passed.

        Raises:
            LockBusy: still held by another run after ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            held = self.conn.hold(_HOLD.format(path=quote(self.path), owner=quote(self.owner)))
            line = held.readline(timeout=30.0) or ""
            if line.startswith("LOCKED"):
                self._held = held
                return
            held.close()
            if not line.startswith("BUSY"):
                raise LockBusy(f"could not take the lock {self.path}: {line.strip() or 'no answer'}")
            owner = line[4:].strip() or "unknown owner"
            if time.monotonic() >= deadline or stop.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
                raise LockBusy(f"held by run {owner} ({self.path})")

    def release(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            held.close()
