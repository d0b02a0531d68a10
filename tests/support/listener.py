"""``remedy listen`` as a child process: its served port, its stderr lines, HTTP requests to it."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
TOKEN = "a-listen-token-for-the-tests-0123456789"
_SERVING = re.compile(r"serving http://127\.0\.0\.1:(\d+)/alerts")


class Listener:
    """A ``remedy listen --port 0`` child; stderr is read as it comes (the child never blocks on it)."""

    def __init__(self, args: Sequence[str], *, token: str = TOKEN) -> None:
        env = {**os.environ, "REMEDY_LISTEN_TOKEN": token}
        self.process = subprocess.Popen([sys.executable, "-m", "runner", "listen", "--port", "0", *args],
                                        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        self.token = token
        self.lines: list[str] = []
        self.stdout = ""
        self._readers = [threading.Thread(target=self._read_stderr, daemon=True),
                         threading.Thread(target=self._read_stdout, daemon=True)]
        for reader in self._readers:
            reader.start()
        self.port = int(wait_until(self._port, timeout=60, what="remedy listen serving"))

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        with self.process.stderr:
            for line in self.process.stderr:
                self.lines.append(line.rstrip("\n"))

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            self.stdout = self.process.stdout.read()

    def _port(self) -> str | None:
        if self.process.poll() is not None:
            raise AssertionError(f"remedy listen exited {self.process.returncode}:\n" + "\n".join(self.lines))
        return next((m.group(1) for line in self.lines if (m := _SERVING.search(line))), None)

    def post(self, body: bytes | dict[str, Any], *, token: str | None = "") -> tuple[int, dict[str, Any]]:
        """POST to /alerts with this listener's token ('' ), another one, or none (None)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token or self.token}"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request("POST", "/alerts", body=data, headers=headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def healthy(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request("GET", "/healthz")
            return connection.getresponse().status == 200
        finally:
            connection.close()

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def stop(self, timeout: float = 300) -> int:
        """SIGTERM, then wait for the drain; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(10)
        return code

    def kill(self) -> None:
        """Make sure the child is gone (after a failed test)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        for reader in self._readers:
            reader.join(10)
