"""How many SSH handshakes go to one server at once, and which failed ones to try again.

Services layer, used by ``ssh``. sshd drops connections that have not yet
authenticated beyond ``MaxStartups`` (OpenSSH's default ``10:30:100``: from
10 such connections on it closes 30 % of new ones before its banner, rising
to all of them at 100). Hosts reached through one server (a jump host, or
many inventory names for one address) would then be lost at random as soon
as ``--forks`` passes 10. So at most ``HANDSHAKES`` connections to one server
(address and port, as dialled) are between the dial and authentication at a
time, and a connection the server closed before its banner is dialled again,
up to ``ATTEMPTS`` times, after a short random pause. A connection is closed
at once (``hang_up``), so that it leaves the server's count as soon as it
leaves ours.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import paramiko

from runner.connection.channels import SWALLOWED

T = TypeVar("T")

#: Handshakes in flight to one server; below OpenSSH's MaxStartups start (10).
HANDSHAKES = 8
#: Dials of one host when its server closes the connection before its banner.
ATTEMPTS = 4

_lock = threading.Lock()
_slots: dict[tuple[str, int], threading.BoundedSemaphore] = {}


class DroppedError(Exception):
    """The server closed the connection before its banner (in the last attempt)."""


def attempts(hostname: str, port: int, attempt: Callable[[], T], *, redial: bool) -> T:
    """``attempt()`` in a handshake slot of ``hostname:port``, again while it raises ``DroppedError``.

    ``redial`` False (a hop through a tunnel that cannot be opened again here): once only.

    Raises:
        DroppedError: the last attempt was dropped too; it says how many there were.
    """
    tries = ATTEMPTS if redial else 1
    for number in range(1, tries + 1):
        with handshake_slot(hostname, port):
            try:
                return attempt()
            except DroppedError as dropped:
                if number == tries:
                    raise DroppedError(f"{dropped} (closed before the banner, {number} attempts)") from None
        time.sleep(pause(number))
    raise AssertionError("the last attempt returns or raises")


@contextmanager
def handshake_slot(hostname: str, port: int) -> Iterator[None]:
    """Hold one of the ``HANDSHAKES`` places of server ``hostname:port`` (this process's share)."""
    with _lock:
        slot = _slots.setdefault((hostname, port), threading.BoundedSemaphore(HANDSHAKES))
    with slot:
        yield


def dropped_before_banner(error: BaseException) -> bool:
    """Whether ``error`` is the server closing or resetting the connection before its banner.

    paramiko reports it as "Error reading SSH protocol banner" with the socket's
    error as the context; a banner that did not come in time is not this.
    """
    context = error.__context__
    return "protocol banner" in str(error) and isinstance(context, (EOFError, ConnectionError))


def pause(attempt: int) -> float:
    """Seconds to wait before dial ``attempt`` + 1: random, longer each time, so retries spread."""
    return attempt * (0.1 + secrets.randbelow(400) / 1000)


def hang_up(transport: paramiko.Transport) -> None:
    """Close a transport and its connection at once.

    A plain close leaves the connection open until the transport's thread
    returns from the read it is blocked in (up to ``ssh.IDLE_CHECK``), and the
    server goes on counting a connection that failed to open among its
    unauthenticated ones meanwhile.
    """
    with contextlib.suppress(*SWALLOWED):
        transport.sock.shutdown(socket.SHUT_RDWR)
    transport.close()
