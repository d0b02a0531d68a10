"""The per-host lock: two remedy runs never change one host at the same time.

Run stage. The lock is held by a long-lived command on its own channel
(``flock`` on the lock file, then a ``read`` loop until stdin ends); closing the
channel, or losing the SSH session, releases it on the host, so a crashed
run leaves no stale lock. Without ``flock`` the host falls back to an atomic
``mkdir`` lock removed when the holding command ends. The owner (run id) is
written into the lock file so a blocked run can say who holds it. A symlink
at the lock path is refused. The path is the host variable
``remedy_lock_path``; by default the lock is ``<inventory_hostname>.lock`` (so
that several inventory hosts on one machine, as in a lab, lock separately) in
a directory of the connecting user's own, created 0700 and refused when it is
a symlink or owned by someone else: ``/run/remedy`` for root (``/var/lock/remedy``
without ``/run``), ``/tmp/remedy-<uid>`` for other users, or
``~/.cache/remedy`` when that name is taken. One user's runs exclude each
other; another user's lock, or a file planted under a guessable name, neither
blocks a run nor is followed. A lock file that cannot be opened for writing is
opened read-only (``flock`` needs no more); one that cannot be opened at all is
a permission error, never "locked".
"""

from __future__ import annotations

import threading
import time
from typing import Any

from runner.connection import HeldCommand
from runner.errors import CommandError, ConnectionLost, RemedyError, UnreachableError
from runner.modules.base import quote
from runner.results import Status

#: Picks the default lock directory (see the module docstring) and sets ``lock``.
_PLACE = """umask 077
uid=$(id -u)
if [ "$uid" = 0 ]; then set -- /run/remedy /var/lock/remedy
else set -- "/tmp/remedy-$uid"; fi
set -- "$@" "${{HOME:-/nonexistent}}/.cache/remedy"
for dir in "$@"; do
  case $dir in /run/*|/var/lock/*) [ -d "${{dir%/*}}" ] || continue;; esac
  mkdir -p "$dir" 2>/dev/null
  if [ -d "$dir" ] && [ ! -L "$dir" ] && [ -O "$dir" ] && chmod 700 "$dir" 2>/dev/null; then
    lock="$dir"/{name}; break
  fi
done
if [ -z "${{lock:-}}" ]; then
  echo "ERROR no lock directory of this user's own among: $* (set remedy_lock_path)"; exit 1
fi
"""

_HOLD = """{place}if [ -L "$lock" ] || [ -L "$lock.d" ]; then
  echo "ERROR refusing the symlink $lock"; exit 1
fi
if command -v flock >/dev/null 2>&1; then
  if [ -d "$lock" ]; then echo "ERROR cannot open $lock: it is a directory"; exit 1
  elif (: >>"$lock") 2>/dev/null; then exec 9>>"$lock"; mine=1
  elif [ -f "$lock" ] && [ -r "$lock" ]; then exec 9<"$lock"; mine=
  else echo "ERROR permission denied: cannot open $lock as $(id -un)"; exit 1; fi
  if flock -n 9; then
    [ -z "$mine" ] || printf '%s\\n' {owner} > "$lock"; printf 'LOCKED %s\\n' "$lock"
    while read -r _; do :; done; [ -z "$mine" ] || : > "$lock"
  else
    printf 'BUSY %s\\t%s\\n' "$lock" "$(cat "$lock" 2>/dev/null)"
  fi
else
  if mkdir "$lock.d" 2>/dev/null; then
    printf '%s\\n' {owner} > "$lock.d/owner"; printf 'LOCKED %s\\n' "$lock"
    while read -r _; do :; done; rm -rf "$lock.d"
  else
    printf 'BUSY %s\\t%s\\n' "$lock" "$(cat "$lock.d/owner" 2>/dev/null)"
  fi
fi
"""


def default_lock_name(host: str) -> str:
    """The lock file's name, in the user's lock directory, when ``remedy_lock_path`` is not set."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in host)
    return f"{safe.lstrip('.') or '_'}.lock"


#: Seconds to wait for the lock command's first line. It comes within a round trip
#: and a process start on a sound host; a loaded host may take much longer, and
#: giving up early would fail a host that is merely slow.
ANSWER_TIMEOUT = 120.0
#: Longest single wait for that line, so that a stop is seen soon.
_SLICE = 1.0
#: Seconds for the command that tells a lost session from a lock command that just ended.
_PROBE_TIMEOUT = 10.0


class LockBusy(Exception):  # noqa: N818 - reads as a state
    """Another run holds the host lock; the message names its owner."""


class LockError(Exception):
    """The lock could not be taken for a reason other than another run holding it.

    ``status`` is the verdict for the host's tasks: ``failed`` (no answer in
    time, the command ended without one, or reported an error), ``unreachable``
    (the session is gone) or ``not_run`` (the run was stopped meanwhile).
    """

    def __init__(self, message: str, status: Status) -> None:
        super().__init__(message)
        self.status = status


class HostLock:
    """A held lock on one host; ``release`` is idempotent.

    ``path`` is the lock file, or a bare file name for one in the user's own lock
    directory (``default_lock_name``); once held, ``path`` is where it was taken.
    """

    def __init__(self, conn: Any, path: str, owner: str, *, answer_timeout: float = ANSWER_TIMEOUT) -> None:
        self.conn = conn
        self.path = path
        self.owner = owner
        self.answer_timeout = answer_timeout
        self._held: Any = None

    def acquire(self, *, timeout: float, stop: threading.Event) -> None:
        """Take the lock, retrying until ``timeout`` seconds passed.

        Raises:
            LockBusy: still held by another run after ``timeout``.
            LockError: no answer, an error, a lost session or a stop.
        """
        deadline = time.monotonic() + timeout
        while True:
            held = self._start()
            line = self._answer(held, stop)
            if line.startswith("LOCKED"):
                self.path = line[6:].strip() or self.path
                self._held = held
                return
            running = held.running
            held.close()
            if not line.startswith("BUSY"):
                raise self._failure(line, running=running, stop=stop)
            path, _, owner = line[4:].strip().partition("\t")
            if time.monotonic() >= deadline or stop.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
                raise LockBusy(f"held by run {owner.strip() or 'unknown owner'} ({path or self.path})")

    def _start(self) -> HeldCommand:
        place = f"lock={quote(self.path)}\n" if "/" in self.path else _PLACE.format(name=quote(self.path))
        script = _HOLD.format(place=place, owner=quote(self.owner))
        try:
            held: HeldCommand = self.conn.hold(script)
        except (UnreachableError, ConnectionLost) as error:
            raise LockError(f"the connection was lost before taking the lock {self.path}: {error}",
                            Status.UNREACHABLE) from None
        except CommandError as error:
            raise LockError(f"cannot start the lock command for {self.path}: {error}",
                            Status.FAILED) from None
        return held

    def _answer(self, held: HeldCommand, stop: threading.Event) -> str:
        """The lock command's first line; "" if none came within ``answer_timeout``, it ended or ``stop``."""
        deadline = time.monotonic() + self.answer_timeout
        while not stop.is_set():
            line = held.readline(timeout=max(0.0, min(_SLICE, deadline - time.monotonic())))
            if line is not None:
                return line
            if not held.running or time.monotonic() >= deadline:
                break
        return ""

    def _failure(self, line: str, *, running: bool, stop: threading.Event) -> LockError:
        """Why ``line`` (not LOCKED, not BUSY) means the lock was not taken."""
        if line.startswith("ERROR"):
            return LockError(f"could not take the lock {self.path}: {line[5:].strip()}", Status.FAILED)
        if line:
            return LockError(f"could not take the lock {self.path}: unexpected answer {line.strip()!r}",
                             Status.FAILED)
        if stop.is_set():
            return LockError(f"stopped while taking the lock {self.path}", Status.NOT_RUN)
        if running:
            return LockError(f"the lock command for {self.path} gave no answer in {self.answer_timeout:g} s",
                             Status.FAILED)
        try:  # it ended without a word: was it the session that ended?
            self.conn.run(":", timeout=_PROBE_TIMEOUT)
        except RemedyError as error:
            return LockError(f"the connection was lost while taking the lock {self.path}: {error}",
                             Status.UNREACHABLE)
        return LockError(f"the lock command for {self.path} ended without an answer", Status.FAILED)

    def release(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            held.close()
