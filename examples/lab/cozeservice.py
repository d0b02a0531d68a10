#!/usr/bin/env python3
"""cozeservice: a small HTTP service standing in for the Coze service in the remedy lab.

Standard library only, plus PyYAML for its config. Laid out like the Coze
troubleshooting guide: a YAML config, ``app.log`` and ``error.log`` in a log
dir, a data dir guarded by a checksum manifest, a file cache, an optional
Redis cache, and a pid file. Every path comes from the config::

    cozeservice.py --config ROOT/etc/coze/config.yaml [--log-dir DIR] [--daemon]
    cozeservice.py --check-config FILE   # validate FILE as startup would; exit 0, or 2 with the reason

``--config`` defaults to ``$COZE_CONFIG``, then ``/etc/coze/config.yaml``.
``--log-dir`` names where to put ``error.log`` when the config itself cannot
be read (the config's ``log_dir`` wins if it can be read, even from an
otherwise invalid config). ``--daemon``
detaches (fork + setsid) and returns only when the service listens or has
failed, with the service's exit status; its stdio then goes to /dev/null.

``--check-config FILE`` reads and validates FILE exactly as startup does and
starts nothing: it prints ``config FILE: OK`` and exits 0, or prints the
reason (``config FILE line 7, column 11: invalid YAML: ...``, ``config FILE:
port: expected ...``) on stderr and exits 2. It writes no file.

Config keys (all required except ``redis_url``, ``postgres_*``, ``plugins`` and ``admin_token``;
unknown keys are errors)::

    instance: host01                 # a name, reported by /health
    host: 127.0.0.1                  # an IP address to bind
    port: 18080
    data_dir: /abs/path              # data files + MANIFEST.sha256 (sha256sum -c format)
    log_dir: /abs/path               # app.log, error.log
    pid_file: /abs/path/coze.pid
    cache_dir: /abs/path             # file cache: one entry per data file, same relative path
    redis_url: redis://127.0.0.1:6379/1   # optional Redis cache: keys coze:cache:<relative path>
    postgres_url: postgresql://coze@127.0.0.1:5432/coze   # optional, with postgres_table
    postgres_table: host01.conversations  # must hold every id listed in data_dir/conversations.idx
    plugins: [coze_lab_plugin]       # optional: Python modules imported at startup
    admin_token: s3cr3t              # optional, a secret: never logged nor shown by /health

Startup, in order: read and validate the config, open the logs, write the pid
file, bind the port. Exit statuses: 0 stopped by SIGTERM/SIGINT (pid file
removed); 1 already running (the pid file names a live instance); 2 config
missing, unreadable or invalid; 3 port in use ("address already in use: port
N" in error.log); 4 another startup failure (log dir, pid file); 5 a plugin
cannot be imported ("cannot load plugin P: ModuleNotFoundError: No module
named 'P'" in error.log; the plugins load after the logs open); 70 crashed
right after it started (the crash switch, below).

Start record: once listening, the service appends ``<epoch seconds> start
<pid>`` to ``<pid file dir>/<pid file stem>.starts`` (``coze.starts``), and
``<epoch seconds> stop <pid>`` when it stops cleanly; a start without a stop
is a crash. The record keeps its last 100 lines.

Crash switch (the lab's ``crash_loop`` fault): a file ``crash-after-start``
beside the config makes the service, right after it listens (and after
``--daemon`` returned 0), log ``fatal: <the file's first line>`` and exit 70
without cleaning up: a crash that no restart cures.

HTTP: ``GET /health`` is 200 ``{"status": "ok", ...}`` only when every check
passes, else 503 with ``"status": "unhealthy"`` and ``"reasons"``, one string
per problem, each starting with the check's name: ``config`` (readable, valid,
unchanged since start), ``pid_file`` (names this process), ``log_dir``
(writable), ``plugins`` (every plugin still importable from the interpreter's
path), ``data`` (every manifest entry present and matching), ``cache_dir``
and ``redis`` (every cache entry equals the current data file, by sha256),
``postgres`` (every id in the data file ``conversations.idx`` is a row of the
table).
``GET /data/<path>`` serves a data file through the caches (read-through:
``X-Cache: file``, ``redis`` or ``miss``), so a stale cache is visible to
clients. Redis is spoken to with a tiny RESP client (PING, SELECT, SCAN, GET,
SET) and PostgreSQL with a tiny protocol-3 client (trust authentication, simple
queries), both over plain sockets: no client library needed.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import importlib
import importlib.machinery
import ipaddress
import json
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

MANIFEST = "MANIFEST.sha256"
INDEX = "conversations.idx"
REDIS_PREFIX = "coze:cache:"
MAX_REASONS = 40

EXIT_ALREADY_RUNNING = 1
EXIT_CONFIG = 2
EXIT_PORT_IN_USE = 3
EXIT_STARTUP = 4
EXIT_DEPENDENCY = 5
EXIT_CRASH = 70

CRASH_SWITCH = "crash-after-start"
RECORD_LINES = 100

_PATH_KEYS = ("data_dir", "log_dir", "pid_file", "cache_dir")
_REQUIRED = ("instance", "host", "port", *_PATH_KEYS)
_OPTIONAL = ("redis_url", "postgres_url", "postgres_table", "plugins", "admin_token")
_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_REDIS_URL = re.compile(r"redis://(?P<host>[0-9.]+):(?P<port>\d{1,5})(?:/(?P<db>\d{1,3}))?")
_POSTGRES_URL = re.compile(
    r"postgresql://(?P<user>\w+)@(?P<host>[0-9.]+):(?P<port>\d{1,5})/(?P<database>\w+)"
)
_TABLE = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?")


class StartupError(Exception):
    """The service cannot start; ``code`` is its exit status."""

    def __init__(self, code: int, message: str, *, log_dir: Path | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.log_dir = log_dir  # where error.log goes, if known


# --- config ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    instance: str
    host: str
    port: int
    data_dir: Path
    log_dir: Path
    pid_file: Path
    cache_dir: Path
    redis_url: str | None = None
    postgres_url: str | None = None
    postgres_table: str | None = None
    plugins: tuple[str, ...] = ()
    admin_token: str | None = field(default=None, repr=False)

    @property
    def postgres(self) -> tuple[str, int, str, str] | None:
        """``(host, port, user, database)`` of the PostgreSQL server, or None."""
        if self.postgres_url is None:
            return None
        match = _POSTGRES_URL.fullmatch(self.postgres_url)
        assert match is not None  # validated on load
        return match["host"], int(match["port"]), match["user"], match["database"]

    @property
    def redis(self) -> tuple[str, int, int] | None:
        """``(host, port, db)`` of the Redis cache, or None."""
        if self.redis_url is None:
            return None
        match = _REDIS_URL.fullmatch(self.redis_url)
        assert match is not None  # validated on load
        return match["host"], int(match["port"]), int(match["db"] or 0)


def load_config(path: Path) -> Config:
    """Read and validate a config file. Raises ``StartupError`` (exit 2) naming the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StartupError(EXIT_CONFIG, f"cannot read config {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise StartupError(EXIT_CONFIG, f"config {path} is not UTF-8 text") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None)
        raise StartupError(EXIT_CONFIG, f"config {path}{line}: invalid YAML"
                           + (f": {problem}" if problem else "")) from exc
    problems = _config_problems(data)
    if problems:
        log_dir = data.get("log_dir") if isinstance(data, dict) else None
        known = Path(log_dir) if isinstance(log_dir, str) and log_dir.startswith("/") else None
        raise StartupError(EXIT_CONFIG, f"config {path}: " + "; ".join(problems), log_dir=known)
    values = {key: data[key] for key in (*_REQUIRED, *_OPTIONAL) if key in data}
    for key in _PATH_KEYS:
        values[key] = Path(values[key])
    values["plugins"] = tuple(values.get("plugins") or ())
    return Config(**values)


def _config_problems(data: Any) -> list[str]:
    if not isinstance(data, dict):
        return ["expected a mapping of keys to values"]
    problems = [f"{key}: missing" for key in _REQUIRED if key not in data]
    problems += [f"{key}: unknown key" for key in data if key not in (*_REQUIRED, *_OPTIONAL)]
    if "instance" in data and not (isinstance(data["instance"], str) and data["instance"]):
        problems.append("instance: expected a non-empty string")
    if "host" in data:
        try:
            ipaddress.ip_address(str(data["host"]))
        except ValueError:
            problems.append(f"host: expected an IP address, got {data['host']!r}")
    port = data.get("port")
    if "port" in data and not (type(port) is int and 1 <= port <= 65535):
        problems.append(f"port: expected an integer 1-65535, got {port!r}")
    for key in _PATH_KEYS:
        value = data.get(key)
        if key in data and not (isinstance(value, str) and value.startswith("/")):
            problems.append(f"{key}: expected an absolute path, got {value!r}")
    url = data.get("redis_url")
    if url is not None and not (isinstance(url, str) and _REDIS_URL.fullmatch(url)):
        problems.append(f"redis_url: expected redis://HOST:PORT/DB, got {url!r}")
    url, table = data.get("postgres_url"), data.get("postgres_table")
    if url is not None and not (isinstance(url, str) and _POSTGRES_URL.fullmatch(url)):
        problems.append(f"postgres_url: expected postgresql://USER@HOST:PORT/DB, got {url!r}")
    token = data.get("admin_token")
    if token is not None and not (isinstance(token, str) and token):
        problems.append("admin_token: expected a non-empty string")
    if table is not None and not (isinstance(table, str) and _TABLE.fullmatch(table)):
        problems.append(f"postgres_table: expected [schema.]table, got {table!r}")
    if (url is None) != (table is None):
        problems.append("postgres_url and postgres_table go together")
    plugins = data.get("plugins", [])
    if not (isinstance(plugins, list) and all(isinstance(p, str) and _MODULE.fullmatch(p) for p in plugins)):
        problems.append(f"plugins: expected a list of Python module names, got {plugins!r}")
    return problems


# --- logs --------------------------------------------------------------------------------


class Logs:
    """``app.log`` and ``error.log``, appended line by line; errors also go to stderr."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._lock = threading.Lock()
        try:
            self._app = (log_dir / "app.log").open("a", encoding="utf-8", buffering=1)
            self._error = (log_dir / "error.log").open("a", encoding="utf-8", buffering=1)
        except OSError as exc:
            raise StartupError(EXIT_STARTUP, f"log dir {log_dir} not writable: {exc.strerror}") from exc

    def info(self, message: str) -> None:
        self._write(self._app, "INFO", message)

    def error(self, message: str) -> None:
        self._write(self._app, "ERROR", message)
        self._write(self._error, "ERROR", message)
        with contextlib.suppress(OSError, ValueError):
            print(f"cozeservice: {message}", file=sys.stderr, flush=True)

    def _write(self, handle: Any, level: str, message: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self._lock, contextlib.suppress(OSError, ValueError):
            handle.write(f"{stamp} {level} [{os.getpid()}] {message}\n")


def log_bootstrap_error(log_dir: Path | None, message: str) -> None:
    """An error before the config's log dir is known: ``log_dir/error.log`` if given, and stderr."""
    print(f"cozeservice: {message}", file=sys.stderr, flush=True)
    if log_dir is None:
        return
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with contextlib.suppress(OSError):
        with (log_dir / "error.log").open("a", encoding="utf-8") as handle:
            handle.write(f"{stamp} ERROR [{os.getpid()}] {message}\n")


# --- Redis -------------------------------------------------------------------------------


class RedisError(Exception):
    """Redis is unreachable or answered with an error."""


class Redis:
    """A minimal RESP2 client: one connection, one command at a time."""

    def __init__(self, host: str, port: int, db: int = 0, *, timeout: float = 3.0) -> None:
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise RedisError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc
        self._file = self._sock.makefile("rb")
        if db:
            self.command("SELECT", str(db))

    def __enter__(self) -> Redis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
            self._sock.close()

    def command(self, *args: str | bytes) -> Any:
        """Send one command and return its reply (bytes, int, str, list or None)."""
        parts = [arg.encode() if isinstance(arg, str) else arg for arg in args]
        payload = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts)
        try:
            self._sock.sendall(payload)
            return self._reply()
        except OSError as exc:
            raise RedisError(f"connection failed: {exc.strerror or exc}") from exc

    def _reply(self) -> Any:
        line = self._file.readline()
        if not line.endswith(b"\r\n"):
            raise RedisError("connection closed")
        kind, body = line[:1], line[1:-2]
        if kind == b"+":
            return body.decode()
        if kind == b"-":
            raise RedisError(body.decode(errors="replace"))
        if kind == b":":
            return int(body)
        if kind == b"$":
            size = int(body)
            if size < 0:
                return None
            data = self._file.read(size + 2)
            return data[:-2]
        if kind == b"*":
            count = int(body)
            return None if count < 0 else [self._reply() for _ in range(count)]
        raise RedisError(f"unexpected reply {line[:40]!r}")

    def scan(self, pattern: str) -> list[bytes]:
        """Every key matching ``pattern`` (SCAN, so the server never blocks)."""
        keys: list[bytes] = []
        cursor = b"0"
        while True:
            cursor, batch = self.command("SCAN", cursor, "MATCH", pattern, "COUNT", "200")
            keys.extend(batch)
            if cursor == b"0":
                return sorted(set(keys))

    def get(self, key: str | bytes) -> bytes | None:
        value: bytes | None = self.command("GET", key)
        return value

    def set(self, key: str | bytes, value: bytes) -> None:
        self.command("SET", key, value)


# --- PostgreSQL --------------------------------------------------------------------------


class PostgresError(Exception):
    """PostgreSQL is unreachable, wants a password, or answered with an error."""


class Postgres:
    """A minimal PostgreSQL protocol-3 client: trust authentication and simple queries."""

    def __init__(self, host: str, port: int, user: str, database: str, *, timeout: float = 3.0):
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise PostgresError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc
        params = b"".join(k + b"\0" + v.encode() + b"\0" for k, v in
                          ((b"user", user), (b"database", database))) + b"\0"  # fmt: skip
        self._send(struct.pack("!ii", 8 + len(params), 196608) + params)
        while True:
            kind, payload = self._message()
            if kind == b"R" and struct.unpack("!i", payload[:4])[0] != 0:
                raise PostgresError("server wants a password (the lab uses trust authentication)")
            if kind == b"E":
                raise PostgresError(_pg_error(payload))
            if kind == b"Z":
                return

    def __enter__(self) -> Postgres:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError, PostgresError):
            self._send(b"X" + struct.pack("!i", 4))
        self._sock.close()

    def query(self, sql: str) -> list[list[str | None]]:
        """Rows of a simple query, every value as text (None for NULL)."""
        data = sql.encode() + b"\0"
        self._send(b"Q" + struct.pack("!i", 4 + len(data)) + data)
        rows: list[list[str | None]] = []
        error = None
        while True:
            kind, payload = self._message()
            if kind == b"D":
                rows.append(_pg_row(payload))
            elif kind == b"E":
                error = _pg_error(payload)
            elif kind == b"Z":
                if error:
                    raise PostgresError(error)
                return rows

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise PostgresError(f"connection failed: {exc.strerror or exc}") from exc

    def _message(self) -> tuple[bytes, bytes]:
        header = self._read(5)
        return header[:1], self._read(struct.unpack("!i", header[1:])[0] - 4)

    def _read(self, size: int) -> bytes:
        chunks, left = [], size
        while left:
            try:
                chunk = self._sock.recv(left)
            except OSError as exc:
                raise PostgresError(f"connection failed: {exc.strerror or exc}") from exc
            if not chunk:
                raise PostgresError("connection closed")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)


def _pg_row(payload: bytes) -> list[str | None]:
    count, offset, row = struct.unpack("!h", payload[:2])[0], 2, []
    for _ in range(count):
        size = struct.unpack("!i", payload[offset : offset + 4])[0]
        offset += 4
        row.append(None if size < 0 else payload[offset : offset + size].decode())
        offset += max(size, 0)
    return row


def _pg_error(payload: bytes) -> str:
    fields = {item[:1]: item[1:].decode(errors="replace") for item in payload.split(b"\0") if item}
    return fields.get(b"M", "error")


# --- checks ------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def safe_relative(name: str) -> bool:
    """A relative path inside its directory: no absolute path, no ``..``, no NUL."""
    if not name or name.startswith("/") or "\0" in name or "\\" in name:
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def read_manifest(data_dir: Path) -> list[tuple[str, str]]:
    """``(sha256, relative path)`` pairs of ``MANIFEST.sha256``. Raises OSError, ValueError."""
    entries = []
    lines = (data_dir / MANIFEST).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        match = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line)
        if line.strip() and (match is None or not safe_relative(match[2])):
            raise ValueError(f"{MANIFEST} line {number} malformed")
        if match:
            entries.append((match[1], match[2]))
    return entries


class Checker:
    """The health checks of one running service; ``run()`` returns the reasons it is unhealthy."""

    def __init__(self, config: Config, config_path: Path) -> None:
        self.config = config
        self.config_path = config_path
        self._data_hashes: dict[str, str | OSError] = {}

    def run(self) -> dict[str, list[str]]:
        """Problems per check name; an empty list means the check passed."""
        self._data_hashes = {}
        checks = {
            "config": self._config,
            "pid_file": self._pid_file,
            "plugins": self._plugins,
            "log_dir": self._log_dir,
            "data": self._data,
            "cache_dir": self._cache_dir,
            "redis": self._redis,
            "postgres": self._postgres,
        }
        results = {}
        for name, check in checks.items():
            try:
                results[name] = check()
            except Exception as exc:  # noqa: BLE001 - a health check must answer, not crash
                results[name] = [f"check failed: {type(exc).__name__}: {exc}"]
        return results

    def _config(self) -> list[str]:
        try:
            current = load_config(self.config_path)
        except StartupError as exc:
            return [str(exc)]
        if current != self.config:
            return [f"config {self.config_path} changed on disk since start (restart to apply)"]
        return []

    def _pid_file(self) -> list[str]:
        path, me = self.config.pid_file, os.getpid()
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            return [f"{path} missing (this process is {me})"]
        except OSError as exc:
            return [f"cannot read {path}: {exc.strerror}"]
        if text != str(me):
            state = "running" if text.isdigit() and _running(int(text)) else "not running"
            return [f"{path} names pid {text or '(empty)'} ({state}), this process is {me}"]
        return []

    def _plugins(self) -> list[str]:
        importlib.invalidate_caches()  # a module removed (or installed) since start is seen
        top = [name.split(".")[0] for name in self.config.plugins]
        return [f"{name}: not importable any more (uninstalled?)" for name in top
                if importlib.machinery.PathFinder.find_spec(name) is None]

    def _log_dir(self) -> list[str]:
        log_dir = self.config.log_dir
        if not log_dir.is_dir():
            return [f"{log_dir} missing"]
        problems = [] if os.access(log_dir, os.W_OK | os.X_OK) else [f"{log_dir} not writable"]
        for name in ("app.log", "error.log"):
            path = log_dir / name
            if path.exists() and not os.access(path, os.W_OK):
                problems.append(f"{path} not writable")
        return problems

    def _data(self) -> list[str]:
        data_dir = self.config.data_dir
        try:
            entries = read_manifest(data_dir)
        except FileNotFoundError:
            return [f"{data_dir / MANIFEST} missing"]
        except OSError as exc:
            return [f"cannot read {data_dir / MANIFEST}: {exc.strerror}"]
        except (ValueError, UnicodeDecodeError) as exc:
            return [str(exc)]
        if not entries:
            return [f"{MANIFEST} lists no files"]
        problems = []
        for expected, name in entries:
            actual = self.data_hash(name)
            if isinstance(actual, FileNotFoundError):
                problems.append(f"{name}: missing")
            elif isinstance(actual, OSError):
                problems.append(f"{name}: cannot read: {actual.strerror}")
            elif actual != expected:
                problems.append(f"{name}: checksum mismatch")
        return problems

    def data_hash(self, name: str) -> str | OSError:
        """The sha256 of data file ``name``, or the error reading it (memoised per run)."""
        if name not in self._data_hashes:
            try:
                self._data_hashes[name] = sha256_file(self.config.data_dir / name)
            except OSError as exc:
                self._data_hashes[name] = exc
        return self._data_hashes[name]

    def _stale(self, name: str, content_hash: str) -> str | None:
        current = self.data_hash(name)
        if isinstance(current, FileNotFoundError):
            return f"{name}: stale (no such data file)"
        if isinstance(current, OSError):
            return f"{name}: cannot compare (data file unreadable: {current.strerror})"
        return f"{name}: stale (differs from the data file)" if current != content_hash else None

    def _cache_dir(self) -> list[str]:
        cache_dir = self.config.cache_dir
        if not cache_dir.is_dir():
            return [f"{cache_dir} missing"]
        problems = []
        for root, _dirs, files in os.walk(cache_dir, onerror=_raise):
            for file in sorted(files):
                if file.startswith("."):
                    continue  # an entry being written (temporary name)
                path = Path(root, file)
                name = path.relative_to(cache_dir).as_posix()
                problem = self._stale(name, sha256_file(path))
                if problem:
                    problems.append(problem)
        return problems

    def _redis(self) -> list[str]:
        target = self.config.redis
        if target is None:
            return []
        try:
            with Redis(*target) as redis:
                problems = []
                for key in redis.scan(REDIS_PREFIX + "*"):
                    value = redis.get(key)
                    if value is None:
                        continue  # expired between SCAN and GET
                    name = key.decode(errors="replace")[len(REDIS_PREFIX) :]
                    problem = self._stale(name, hashlib.sha256(value).hexdigest())
                    if problem:
                        problems.append(f"{REDIS_PREFIX}{problem}")
                return problems
        except RedisError as exc:
            return [f"{self.config.redis_url}: {exc}"]

    def _postgres(self) -> list[str]:
        target, table = self.config.postgres, self.config.postgres_table
        if target is None or table is None:
            return []
        try:
            text = (self.config.data_dir / INDEX).read_text()
        except OSError as exc:
            return [f"cannot compare: cannot read {INDEX}: {exc.strerror}"]
        wanted = [line.strip() for line in text.splitlines() if line.strip()]
        try:
            with Postgres(*target) as pg:
                # table is validated against _TABLE on load: a plain identifier
                present = {row[0] for row in pg.query(f"SELECT id FROM {table}")}  # noqa: S608
        except PostgresError as exc:
            return [f"{self.config.postgres_url}: {exc}"]
        missing = [key for key in wanted if key not in present]
        if missing:
            return [f"{len(missing)} of {len(wanted)} ids in {INDEX} missing from table {table} "
                    f"(first: {', '.join(missing[:5])})"]  # fmt: skip
        return []


def _raise(exc: OSError) -> None:
    raise exc


def start_record(pid_file: Path) -> Path:
    """Where the service records its starts and clean stops: ``coze.pid`` -> ``coze.starts``."""
    return pid_file.with_name(f"{pid_file.stem}.starts")


def _running(pid: int) -> bool:
    """True if ``pid`` is a live process (zombies count as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _is_coze(pid: int) -> bool:
    try:
        return b"cozeservice" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


# --- HTTP --------------------------------------------------------------------------------


class Server(ThreadingHTTPServer):
    """Never shares its port: SO_REUSEPORT would let a second instance bind beside the first."""

    allow_reuse_address = True
    allow_reuse_port = False
    daemon_threads = True

    service: Service


class Handler(BaseHTTPRequestHandler):
    server: Server
    server_version = "cozeservice/1.0"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = unquote(urlsplit(self.path).path)
        service = self.server.service
        if path == "/health":
            code, body = service.health()
            self._json(code, body)
        elif path == "/":
            self._json(200, {"service": "coze", "instance": service.config.instance})
        elif path.startswith("/data/"):
            self._data(path[len("/data/") :])
        else:
            self._json(404, {"error": f"no such endpoint: {path}"})

    def _data(self, name: str) -> None:
        if not safe_relative(name) or name == MANIFEST:
            self._json(400, {"error": f"bad data path {name!r}"})
            return
        try:
            content, source = self.server.service.read_data(name)
        except FileNotFoundError:
            self._json(404, {"error": f"no such data file: {name}"})
            return
        except OSError as exc:
            self.server.service.logs.error(f"cannot read data file {name}: {exc.strerror}")
            self._json(500, {"error": f"cannot read data file {name}: {exc.strerror}"})
            return
        self._send(200, content, "application/octet-stream", {"X-Cache": source})

    def _json(self, code: int, body: dict[str, Any]) -> None:
        data = (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()
        self._send(code, data, "application/json")

    def _send(self, code: int, data: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        self.server.service.logs.info(f"{self.address_string()} {format % args}")


# --- the service -------------------------------------------------------------------------


class Service:
    """A started service: config, logs, pid file and a bound (not yet serving) HTTP server."""

    def __init__(self, config_path: Path, bootstrap_log_dir: Path | None) -> None:
        try:
            self.config = load_config(config_path)
        except StartupError as exc:
            log_bootstrap_error(exc.log_dir or bootstrap_log_dir, str(exc))
            raise
        self.config_path = config_path
        try:
            self.logs = Logs(self.config.log_dir)
        except StartupError as exc:
            log_bootstrap_error(None, str(exc))  # stderr only: the log dir is the problem
            raise
        self.checker = Checker(self.config, config_path)
        try:
            self._load_plugins()
            self._write_pid_file()
            self.server = self._bind()
        except StartupError as exc:
            self.logs.error(str(exc))
            self.remove_pid_file()
            raise
        self.server.service = self
        self.logs.info(
            f"instance {self.config.instance} started, pid {os.getpid()}, "
            f"listening on {self.config.host}:{self.config.port}"
        )
        self.record("start")

    def record(self, event: str) -> None:
        """Append ``<epoch> <event> <pid>`` to the start record (kept to its last lines)."""
        path = start_record(self.config.pid_file)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        with contextlib.suppress(OSError):
            lines = path.read_text().splitlines()[-(RECORD_LINES - 1):] if path.exists() else []
            lines.append(f"{int(time.time())} {event} {os.getpid()}")
            temporary.write_text("".join(f"{line}\n" for line in lines))
            temporary.replace(path)

    def crash_if_switched(self) -> None:
        """The lab's crash switch: log its message as fatal and exit at once, as a crash would."""
        switch = self.config_path.parent / CRASH_SWITCH
        try:
            message = switch.read_text().strip().splitlines()[0]
        except (OSError, IndexError):
            return
        time.sleep(0.3)
        self.logs.error(f"fatal: {message}")
        os._exit(EXIT_CRASH)

    def _load_plugins(self) -> None:
        for name in self.config.plugins:
            try:
                importlib.import_module(name)
            except ImportError as exc:
                message = f"cannot load plugin {name}: {type(exc).__name__}: {exc}"
                raise StartupError(EXIT_DEPENDENCY, message) from exc

    def _write_pid_file(self) -> None:
        path = self.config.pid_file
        with contextlib.suppress(OSError, ValueError):
            other = int(path.read_text().strip())
            if other != os.getpid() and _running(other) and _is_coze(other):
                raise StartupError(EXIT_ALREADY_RUNNING, f"already running as pid {other} ({path})")
            self.logs.info(f"replacing stale pid file {path} (pid {other} not running)")
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            temporary.write_text(f"{os.getpid()}\n")
            temporary.replace(path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise StartupError(EXIT_STARTUP, f"cannot write pid file {path}: {exc.strerror}") from exc

    def _bind(self) -> Server:
        server = Server((self.config.host, self.config.port), Handler, bind_and_activate=False)
        try:
            server.server_bind()
            server.server_activate()
        except OSError as exc:
            server.server_close()
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(
                    EXIT_PORT_IN_USE, f"address already in use: port {self.config.port}"
                ) from exc
            raise StartupError(
                EXIT_STARTUP, f"cannot bind {self.config.host}:{self.config.port}: {exc.strerror}"
            ) from exc
        return server

    def remove_pid_file(self) -> None:
        """Remove the pid file if it names this process."""
        with contextlib.suppress(OSError):
            if self.config.pid_file.read_text().strip() == str(os.getpid()):
                self.config.pid_file.unlink()

    def health(self) -> tuple[int, dict[str, Any]]:
        results = self.checker.run()
        reasons = [f"{name}: {problem}" for name, problems in results.items() for problem in problems]
        body: dict[str, Any] = {
            "status": "unhealthy" if reasons else "ok",
            "instance": self.config.instance,
            "pid": os.getpid(),
            "checks": {name: "failed" if problems else "ok" for name, problems in results.items()},
        }
        if reasons:
            if len(reasons) > MAX_REASONS:
                reasons = reasons[:MAX_REASONS] + [f"... and {len(reasons) - MAX_REASONS} more"]
            body["reasons"] = reasons
        return (503 if reasons else 200), body

    def read_data(self, name: str) -> tuple[bytes, str]:
        """Data file ``name`` through the caches: ``(content, "file" | "redis" | "miss")``."""
        cached = self.config.cache_dir / name
        with contextlib.suppress(OSError):
            return cached.read_bytes(), "file"
        target = self.config.redis
        if target is not None:
            with contextlib.suppress(RedisError), Redis(*target) as redis:
                value = redis.get(REDIS_PREFIX + name)
                if value is not None:
                    return value, "redis"
        content = (self.config.data_dir / name).read_bytes()
        self._fill_caches(name, content)
        return content, "miss"

    def _fill_caches(self, name: str, content: bytes) -> None:
        cached = self.config.cache_dir / name
        temporary = cached.with_name(f".{cached.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(content)
            temporary.replace(cached)
        except OSError as exc:
            self.logs.error(f"cannot write cache entry {cached}: {exc.strerror}")
            with contextlib.suppress(OSError):
                temporary.unlink()
        target = self.config.redis
        if target is not None:
            try:
                with Redis(*target) as redis:
                    redis.set(REDIS_PREFIX + name, content)
            except RedisError as exc:
                self.logs.error(f"cannot write redis cache {REDIS_PREFIX}{name}: {exc}")

    def serve(self) -> int:
        """Serve until SIGTERM or SIGINT; then remove the pid file and return 0."""
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda _signum, _frame: stop.set())
        thread = threading.Thread(target=self.server.serve_forever, name="http", daemon=True)
        thread.start()
        while not stop.wait(1.0):
            if not thread.is_alive():
                self.logs.error("HTTP server thread died")
                break
        self.server.shutdown()
        self.server.server_close()
        self.remove_pid_file()
        self.logs.info(f"instance {self.config.instance} stopped")
        self.record("stop")
        return 0


# --- command line ------------------------------------------------------------------------


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cozeservice", description=__doc__.split("\n\n")[0])
    default = os.environ.get("COZE_CONFIG", "/etc/coze/config.yaml")
    parser.add_argument("--config", type=Path, default=Path(default), help="config YAML file")
    parser.add_argument("--log-dir", type=Path, help="where error.log goes if the config is unreadable")
    parser.add_argument("--daemon", action="store_true", help="detach once listening")
    parser.add_argument("--check-config", type=Path, metavar="FILE",
                        help="validate FILE as startup would, start nothing: exit 0, or 2 with the reason")
    return parser.parse_args(argv)


def _detach() -> int | None:
    """Fork; the parent waits for the child's word and returns its exit status, the child None."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            message = pipe.read()
        if message.startswith(b"ready"):
            return 0
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status) or EXIT_STARTUP
    os.close(read_end)
    os.setsid()
    os.environ["COZE_READY_FD"] = str(write_end)
    return None


def _announce_ready() -> None:
    """Tell the waiting parent (``--daemon``) that we listen, and drop stdio."""
    fd = os.environ.pop("COZE_READY_FD", None)
    if fd is None:
        return
    os.write(int(fd), b"ready\n")
    os.close(int(fd))
    null = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(null, target)
    os.close(null)


def check_config(path: Path) -> int:
    """``--check-config``: validate ``path`` as startup does; 0, or 2 with the reason on stderr."""
    try:
        load_config(path.absolute())
    except StartupError as exc:
        print(f"cozeservice: {exc}", file=sys.stderr)
        return exc.code
    print(f"config {path.absolute()}: OK")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if args.check_config is not None:
        return check_config(args.check_config)
    if args.daemon:
        status = _detach()
        if status is not None:
            return status
    os.umask(0o022)
    try:
        service = Service(args.config.absolute(), args.log_dir)
    except StartupError as exc:
        return exc.code
    _announce_ready()
    service.crash_if_switched()
    return service.serve()


if __name__ == "__main__":
    sys.exit(main())
