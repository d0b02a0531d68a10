"""Throwaway OpenSSH servers for tests: ``Sshd`` and ``SshdFleet``, with their keys.

Test support, for tests only (remedy's own and its users'), re-exported by
``runner.testing``. ``Sshd`` is a real OpenSSH server on 127.0.0.1 and a free
port, with a fresh ed25519 host key, a client key pair, ``authorized_keys`` and
a known_hosts file naming it ``[127.0.0.1]:PORT``; ``SshdFleet(n)`` starts n of
them in parallel, sharing one client key and one known_hosts.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from runner.connection import ConnectionParams

SSHD_PATH = "/usr/sbin/sshd"

__all__ = ["SSHD_PATH", "ClientKeys", "Sshd", "SshdFleet"]


@dataclass(frozen=True)
class ClientKeys:
    """A client key pair and a known_hosts file, shared by the servers of a fleet."""

    directory: Path
    key: Path  # private key; the public one is key + ".pub"
    known_hosts: Path
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def create(cls, directory: Path) -> ClientKeys:
        key = directory / "client_ed25519"
        _keygen(key)
        known_hosts = directory / "known_hosts"
        known_hosts.touch(mode=0o600)
        authorized = directory / "authorized_keys"
        authorized.write_text(Path(f"{key}.pub").read_text())
        # sshd reads authorized_keys as the user logging in, who may not be us
        authorized.chmod(0o644)
        directory.chmod(0o711)
        return cls(directory, key, known_hosts)

    @property
    def authorized_keys(self) -> Path:
        return self.directory / "authorized_keys"


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "remedy-test", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def _public_key(path: Path) -> tuple[str, str]:
    kind, blob = Path(f"{path}.pub").read_text().split()[:2]
    return kind, blob


def _fingerprint(blob: str) -> str:
    digest = hashlib.sha256(base64.b64decode(blob)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_SSHD_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile none
AuthorizedKeysFile {authorized_keys}
StrictModes no
PermitRootLogin yes
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AllowTcpForwarding yes
MaxStartups 200
MaxSessions 50
UseDNS no
PrintMotd no
LogLevel DEBUG1
Subsystem sftp internal-sftp
{extra}
"""


class Sshd:
    """A throwaway OpenSSH ``sshd`` on 127.0.0.1 for tests; a context manager.

    Runs as the current user (root can log in as any user with the client
    key or a password). Raises ``FileNotFoundError`` if ``sshd_path`` is
    missing and ``RuntimeError`` if the server does not come up.
    """

    def __init__(
        self, *, keys: ClientKeys | None = None, config: str = "", sshd_path: str = SSHD_PATH
    ) -> None:
        if not os.access(sshd_path, os.X_OK):
            raise FileNotFoundError(f"sshd not found at {sshd_path} (install openssh-server)")
        self._sshd = sshd_path
        self.directory = Path(tempfile.mkdtemp(prefix="remedy-sshd-"))
        self.keys = keys or ClientKeys.create(self.directory)
        self._owns_keys = keys is None
        self._extra = config
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        self.host_key = self.directory / "host_ed25519"
        self.log = self.directory / "sshd.log"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def client_key(self) -> Path:
        return self.keys.key

    @property
    def known_hosts(self) -> Path:
        return self.keys.known_hosts

    @property
    def host_key_fingerprint(self) -> str:
        return _fingerprint(_public_key(self.host_key)[1])

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(remove=True)

    def params(self, name: str = "sshd", **overrides: Any) -> ConnectionParams:
        """``ConnectionParams`` for this server (key auth, its known_hosts, no ssh_config)."""
        empty_config = self.directory / "ssh_config"
        empty_config.touch()
        params = ConnectionParams(
            name=name,
            address="127.0.0.1",
            port=self.port,
            user=self.user,
            key_file=str(self.client_key),
            known_hosts=str(self.known_hosts),
            ssh_config=str(empty_config),
        )
        return dataclasses.replace(params, **overrides)

    def start(self, *, deadline: float = 20.0) -> Self:
        """Generate a host key if needed, start sshd and wait for its banner."""
        if not self.host_key.exists():
            _keygen(self.host_key)
        end = time.monotonic() + deadline
        keep_port = self.port
        for _ in range(20):
            self.port = keep_port or _free_port()
            if self._launch(end):
                self._record_host_key()
                return self
            if keep_port:
                break
        raise RuntimeError(f"sshd did not start; see {self.log}:\n{self._log_tail()}")

    def _launch(self, end: float) -> bool:
        """Start sshd on ``self.port``; False if the port was taken meanwhile."""
        config = self.directory / "sshd_config"
        config.write_text(
            _SSHD_CONFIG.format(
                port=self.port,
                host_key=self.host_key,
                authorized_keys=self.keys.authorized_keys,
                extra=self._extra,
            )
        )
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self._proc = subprocess.Popen(
            [self._sshd, "-D", "-e", "-f", str(config), "-E", str(self.log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self._await_banner(self._proc, end)

    def _await_banner(self, proc: subprocess.Popen[bytes], end: float) -> bool:
        pause = 0.005
        while time.monotonic() < end:
            if proc.poll() is not None:
                return False
            with contextlib.suppress(OSError):
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                    sock.settimeout(max(0.1, end - time.monotonic()))
                    if sock.recv(64).startswith(b"SSH-"):
                        return True
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(pause)  # returns at once if sshd died
            pause = min(pause * 2, 0.2)
        self._terminate()
        return False

    def _record_host_key(self) -> None:
        kind, blob = _public_key(self.host_key)
        with self.keys.lock, self.known_hosts.open("a") as handle:
            handle.write(f"[127.0.0.1]:{self.port} {kind} {blob}\n")

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        return ""

    def auth_attempts(self) -> int:
        """How many authentication requests this server has logged since it was created."""
        with contextlib.suppress(FileNotFoundError):
            return self.log.read_text(errors="replace").count("userauth-request for user")
        return 0

    def log_text(self) -> str:
        with contextlib.suppress(FileNotFoundError):
            return self.log.read_text(errors="replace")
        return ""

    def session_pids(self) -> list[int]:
        """Processes the listener forked for connections (and their children)."""
        return _descendants(self._proc.pid) if self._proc else []

    def kill_sessions(self) -> None:
        """SIGKILL every connection's sshd process, as if the server crashed mid-session."""
        for pid in self.session_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def restart_with_new_host_key(self) -> Self:
        """Restart on the same port with a fresh host key; known_hosts keeps the old one."""
        self.stop()
        for path in (self.host_key, Path(f"{self.host_key}.pub")):
            path.unlink(missing_ok=True)
        _keygen(self.host_key)
        if not self._launch(time.monotonic() + 20):
            raise RuntimeError(f"sshd did not restart; see {self.log}:\n{self._log_tail()}")
        return self

    def stop(self, *, remove: bool = False) -> None:
        """Stop the listener and every session; ``remove`` deletes its directory too."""
        if self._proc is not None:
            self.kill_sessions()
            self._terminate()
            self._proc = None
        if remove:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _terminate(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)


def _descendants(root: int) -> list[int]:
    """Every process below ``root``, read from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    queue = list(children.get(root, []))
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children.get(pid, []))
    return found


class SshdFleet:
    """``n`` ``Sshd`` servers started in parallel, sharing one client key and known_hosts."""

    def __init__(self, n: int, *, config: str = "", workers: int = 16) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="remedy-fleet-"))
        self.keys = ClientKeys.create(self.directory)
        self.servers = [Sshd(keys=self.keys, config=config) for _ in range(n)]
        self._workers = max(1, min(workers, n))

    @property
    def known_hosts(self) -> Path:
        return self.keys.known_hosts

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __iter__(self) -> Iterator[Sshd]:
        return iter(self.servers)

    def __len__(self) -> int:
        return len(self.servers)

    def start(self) -> Self:
        """Start every server; if one fails, stop all and raise."""
        with ThreadPoolExecutor(self._workers) as pool:
            futures = [pool.submit(server.start) for server in self.servers]
            errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            self.stop()
            raise RuntimeError(f"{len(errors)} of {len(self.servers)} sshd failed") from errors[0]
        return self

    def params(self, prefix: str = "host") -> list[ConnectionParams]:
        """One ``ConnectionParams`` per server, named ``{prefix}01``, ``{prefix}02``, ..."""
        width = max(2, len(str(len(self.servers))))
        return [s.params(f"{prefix}{i:0{width}d}") for i, s in enumerate(self.servers, 1)]

    def stop(self) -> None:
        """Stop every server and delete their directories."""
        with ThreadPoolExecutor(self._workers) as pool:
            list(pool.map(lambda s: s.stop(remove=True), self.servers))
        shutil.rmtree(self.directory, ignore_errors=True)
