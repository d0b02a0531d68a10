"""``remedy listen``'s HTTP receiver: Alertmanager's webhook in, runs on a bounded worker queue.

Alerts stage, on top of ``dispatch``. A threaded ``http.server`` (one thread
per request) answers:

- ``POST /alerts`` (or ``/``): 401 without the bearer token or with a wrong
  one (checked first, in constant time); 400 with the reason for a body
  without ``Content-Length``, larger than ``max_body`` (not read), not
  arriving within ``READ_TIMEOUT``, or not a version 4 notification; 503 when
  the queue is full or the receiver is draining (Alertmanager retries);
  else 202 with every alert's decision. A bad request never stops the server.
- ``GET /healthz``: 200 with the queue's length (no token needed).

Decisions are made as the request arrives; the runs go on a queue of at
most ``queue_size`` runs that ``workers`` threads take in order. ``drain``
stops accepting, lets the workers finish every queued run and returns;
``abort`` (a second signal) stops the running runs and releases the queued
ones unrun.
"""

from __future__ import annotations

import hmac
import json
import queue
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from runner.alerts.dispatch import Dispatcher
from runner.alerts.payload import MAX_PAYLOAD_BYTES, PayloadError, read_notification
from runner.alerts.targets import TriggeredRun
from runner.errors import InputError

#: Seconds a client may take to send its request.
READ_TIMEOUT = 10.0
#: Seconds a refused request's unread body is read (and dropped) after the answer.
LINGER = 2.0
PATHS = ("/alerts", "/")


@dataclass(frozen=True)
class ServerOptions:
    """Where to listen and what to accept; ``token`` None accepts requests without one."""

    bind: str = "127.0.0.1"
    port: int = 9095
    token: str | None = None
    max_body: int = MAX_PAYLOAD_BYTES
    queue_size: int = 64
    workers: int = 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver


class _Server6(_Server):
    address_family = socket.AF_INET6


class Receiver:
    """The HTTP server, the run queue and its workers."""

    def __init__(self, dispatcher: Dispatcher, options: ServerOptions, stop: threading.Event) -> None:
        self.dispatcher = dispatcher
        self.options = options
        self.stop = stop  # set: the running runs stop, queued runs are released unrun
        self.queue: queue.Queue[TriggeredRun | None] = queue.Queue(options.queue_size)
        self.draining = threading.Event()
        self._accepting = threading.Lock()  # no run is queued behind the workers' stop marks
        self._threads: list[threading.Thread] = []
        self._server: _Server | None = None

    def start(self) -> tuple[str, int]:
        """Bind, serve and start the workers; returns the address served.

        Raises:
            OSError: the address cannot be bound.
        """
        kind = _Server6 if ":" in self.options.bind else _Server
        server = kind((self.options.bind, self.options.port), _Handler)
        server.receiver = self
        self._server = server
        serving = threading.Thread(target=server.serve_forever, name="remedy-listen", daemon=True)
        self._threads = [threading.Thread(target=self._work, name=f"remedy-worker-{i + 1}", daemon=True)
                         for i in range(self.options.workers)]
        for thread in (serving, *self._threads):
            thread.start()
        host, port = server.server_address[:2]
        return str(host), int(port)

    def submit(self, runs: tuple[TriggeredRun, ...]) -> list[TriggeredRun]:
        """Queue ``runs``; returns those that did not fit (released: not in flight any more)."""
        refused = []
        with self._accepting:
            for run in runs:
                try:
                    if self.draining.is_set():
                        raise queue.Full
                    self.queue.put_nowait(run)
                except queue.Full:
                    refused.append(run)
        for run in refused:
            self.dispatcher.release(run, "remedy listen is stopping" if self.draining.is_set()
                                    else "the queue is full")
        return refused

    def _work(self) -> None:
        while True:
            run = self.queue.get()
            if run is None:
                return
            if self.stop.is_set():
                self.dispatcher.release(run, "interrupted")
            else:
                self.dispatcher.execute(run)

    def drain(self) -> None:
        """Stop accepting, finish every queued run, then return."""
        with self._accepting:
            self.draining.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for _ in self._threads:
            self.queue.put(None)
        for thread in self._threads:
            thread.join()

    def abort(self) -> None:
        """Stop the running runs (as SIGINT stops a run) and release the queued ones unrun."""
        self.stop.set()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = READ_TIMEOUT
    _body_read = True
    server_version = "remedy-listen"
    sys_version = ""
    default_request_version = "HTTP/1.0"  # a request line that is not HTTP still gets a status line

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (a request that is not HTTP, an unknown method) as JSON too."""
        self._answer(code, {"error": message or self.responses.get(code, ("error",))[0]})

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.split("?")[0] != "/healthz":
            self._answer(404, {"error": "not found: POST alerts to /alerts, GET /healthz"})
            return
        receiver = self.server.receiver
        self._answer(200, {"status": "draining" if receiver.draining.is_set() else "ok",
                           "queued": receiver.queue.qsize()})

    def do_POST(self) -> None:  # noqa: N802
        self._body_read = False
        receiver = self.server.receiver
        if self.path.split("?")[0] not in PATHS:
            self._answer(404, {"error": "not found: POST alerts to /alerts"})
            return
        if not self._authorized(receiver.options.token):
            self._answer(401, {"error": "missing or wrong bearer token"},
                         {"WWW-Authenticate": 'Bearer realm="remedy"'})
            return
        body = self._body(receiver.options.max_body)
        if body is None:
            return
        try:
            notification = read_notification(body, "<request body>", limit=receiver.options.max_body)
            decisions, runs = receiver.dispatcher.receive(notification)
        except PayloadError as error:
            self._answer(400, {"error": error.reason})
            return
        except InputError as error:  # the guard state: the server's problem, not the client's
            self._answer(500, {"error": error.problems[0].message})
            return
        refused = receiver.submit(runs)
        answer = {"alerts": [d.fields() for d in decisions], "runs": len(runs) - len(refused)}
        if refused:
            self._answer(503, {**answer, "error": f"{len(refused)} run(s) not queued: the queue is full "
                               "or remedy listen is stopping; retry later"})
        else:
            self._answer(202, {**answer, "status": "accepted"})

    def _authorized(self, token: str | None) -> bool:
        if token is None:
            return True
        given = self.headers.get("Authorization", "")
        scheme, _, credentials = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(),
                                                                  token.encode())

    def _body(self, limit: int) -> bytes | None:
        """The request body, or None after answering 400."""
        text = self.headers.get("Content-Length")
        if text is None or not text.strip().isdigit():
            self._answer(400, {"error": "a Content-Length header with the body's size is required"})
            return None
        length = int(text)
        if length > limit:
            self._answer(400, {"error": f"the payload has {length} bytes, more than the limit of {limit}"})
            return None
        try:
            body = self.rfile.read(length)
        except OSError:  # the read timed out, or the client went away
            body = b""
        self._body_read = True
        if len(body) < length:
            self._answer(400, {"error": f"the body ended after {len(body)} of {length} bytes"})
            return None
        return body

    def _answer(self, code: int, document: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = (json.dumps(document, sort_keys=True) + "\n").encode()
        try:
            self.send_response(code)
            for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
            if self.command == "POST" and not self._body_read:
                self._linger()
        except OSError:  # the client went away; nothing to tell it
            pass
        self.close_connection = True

    def _linger(self) -> None:
        """Read and drop what the client still sends, so that closing does not reset the
        connection before it has read the answer (a body refused unread)."""
        self.connection.shutdown(socket.SHUT_WR)
        self.connection.settimeout(LINGER)
        deadline = time.monotonic() + LINGER
        while time.monotonic() < deadline and self.connection.recv(65536):
            pass

    def log_message(self, fmt: str, *args: Any) -> None:
        self.server.receiver.dispatcher.log(f"{self.client_address[0]} {fmt % args}")
