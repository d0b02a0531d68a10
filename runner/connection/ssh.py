"""``SSHConnection``: the ``Connection`` interface over one paramiko transport per host.

Services layer. The transport is opened once (``connect()`` or the first use)
through any ProxyJump hosts, each hop's host key verified before it is
authenticated to; commands run one after another in the session's persistent
shell (``persistent``; a channel of their own, ``channels``, when it cannot
take them) and file transfers share one SFTP session on the same transport.
Commands are wrapped by ``shell.wrap`` and driven by ``conversation.converse``,
which gives the deadline, the process-group kill, sudo's password dialogue and
the output caps.
"""

from __future__ import annotations

import contextlib
import errno
import io
import shlex
import socket
import threading
from collections.abc import Callable, Mapping, Sequence

import paramiko

from runner.connection import gate, hostkeys
from runner.connection.channels import SWALLOWED, SSHHeld, SSHPipes
from runner.connection.conversation import Pipes, Talk, converse
from runner.connection.interface import (
    DEFAULT_COMMAND_TIMEOUT,
    OUTPUT_CAP,
    Become,
    ConnectionParams,
    HeldCommand,
    Login,
)
from runner.connection.persistent import PersistentShell, ShellTainted
from runner.connection.shell import KILL_GRACE, kill_script, wrap_as
from runner.connection.sshauth import authenticate
from runner.connection.sshconfig import Endpoint, load_config, resolve_route
from runner.errors import CommandError, ConnectionLost, RemedyError, UnreachableError
from runner.results import CommandResult

#: Seconds allowed for authentication; ``connect_timeout`` bounds the TCP
#: connect and, separately, the SSH banner and key exchange.
AUTH_TIMEOUT = 30.0
#: How often an open transport's thread wakes while it waits for packets (paramiko: 0.1 s,
#: which cost 100 idle hosts 5.6 % of a core and the other threads the GIL; now 0.9 %).
IDLE_CHECK = 1.0


class SSHConnection:
    """One SSH session to one host, shared by all of its commands and file transfers."""

    def __init__(self, params: ConnectionParams, *, cap: int = OUTPUT_CAP) -> None:
        self.host = params.name
        self._params = params
        self._cap = cap
        self._lock = threading.Lock()
        self._transports: list[paramiko.Transport] = []  # jump hosts first, target last
        self._user = ""
        self._sftp: paramiko.SFTPClient | None = None
        self._held: list[SSHHeld] = []
        self._cancel = threading.Event()
        self._shell: PersistentShell | None = None
        self._shell_unavailable = not params.persistent_shell  # then a channel per command

    def __repr__(self) -> str:
        state = "open" if self._active() else "closed"
        return f"SSHConnection(host={self.host!r}, address={self._params.address!r}, {state})"

    def _active(self) -> bool:
        return bool(self._transports) and self._transports[-1].is_active()

    def connect(self) -> None:
        """Open the transport now if it is not open; see ``Connection.connect``.

        A session that dies is not replaced behind the caller's back: whatever
        ran on it (and the host lock held on it) ended with it.

        Raises:
            UnreachableError: connect, auth or host key failure.
            ConnectionLost: the session opened earlier has died; ``close()``
                first to open a new one.
        """
        with self._lock:
            if self._active():
                return
            if self._transports:
                raise ConnectionLost(f"{self.host}: the SSH session was lost; close() to reconnect")
            route = resolve_route(self._params, load_config(self._params))
            self._transports = self._open_route(route.jumps, route.target)
            self._user = route.target.user

    def _open_route(self, jumps: tuple[Endpoint, ...], target: Endpoint) -> list[paramiko.Transport]:
        """Transports to every jump host in turn, each tunnelling to the next, then the target."""
        opened: list[paramiko.Transport] = []
        try:
            sock: socket.socket | paramiko.Channel | None = None
            for hop, after in zip(jumps, (*jumps[1:], target), strict=False):
                opened.append(self._open_hop(hop, sock, None))
                sock = self._tunnel(opened[-1], hop, after)
            opened.append(self._open_hop(target, sock, self._params.password))
        except BaseException:
            for transport in reversed(opened):
                transport.close()
            raise
        return opened

    def _open_hop(
        self,
        hop: Endpoint,
        sock: socket.socket | paramiko.Channel | None,
        password: str | None,
    ) -> paramiko.Transport:
        """A transport to ``hop`` (``_try_hop``), dialled again if its server drops it (``gate``)."""
        try:
            return gate.attempts(hop.hostname, hop.port, lambda: self._try_hop(hop, sock, password),
                                 redial=sock is None)
        except gate.DroppedError as dropped:
            raise UnreachableError(self.host, "connect", f"{hop}: {dropped}") from None

    def _try_hop(
        self,
        hop: Endpoint,
        sock: socket.socket | paramiko.Channel | None,
        password: str | None,
    ) -> paramiko.Transport:
        """A transport to ``hop``: handshake, host key check, then authentication.

        Raises:
            UnreachableError: connect, auth or host key failure.
            gate.DroppedError: the server closed the connection before its banner.
        """
        transport = paramiko.Transport(sock if sock is not None else self._dial(hop))
        transport.banner_timeout = self._params.connect_timeout
        transport.auth_timeout = AUTH_TIMEOUT
        known = hostkeys.known_hosts_path(self._params.known_hosts)
        name = hostkeys.entry_name(hop.hostname, hop.port)
        try:
            recorded = hostkeys.lookup(known, name)
            _prefer_key_types(transport, list(recorded))
            _prefer_aead(transport)
            self._handshake(transport, hop)
            offered = transport.get_remote_server_key()
            hostkeys.verify(self.host, name, offered, recorded, known,
                            accept_new=self._params.accept_new_host_keys)
            authenticate(transport, self.host, hop, password)
        except UnreachableError:
            gate.hang_up(transport)
            raise
        except (*SWALLOWED, ValueError) as exc:
            gate.hang_up(transport)
            if gate.dropped_before_banner(exc):
                raise gate.DroppedError(str(exc)) from None
            detail = f"{hop}: {exc or type(exc).__name__}"
            raise UnreachableError(self.host, "connect", detail) from None
        transport.set_keepalive(max(1, round(self._params.keepalive)))
        transport.sock.settimeout(IDLE_CHECK)
        return transport

    def _handshake(self, transport: paramiko.Transport, hop: Endpoint) -> None:
        """Banner and key exchange, bounded by ``connect_timeout``."""
        done = threading.Event()
        transport.start_client(event=done)
        if not done.wait(self._params.connect_timeout):
            detail = f"{hop}: no SSH handshake within {self._params.connect_timeout:g}s"
            raise UnreachableError(self.host, "connect", detail)
        if not transport.is_active():
            raise transport.get_exception() or paramiko.SSHException("SSH negotiation failed")

    def _dial(self, hop: Endpoint) -> socket.socket:
        timeout = self._params.connect_timeout
        try:
            plain = socket.create_connection((hop.hostname, hop.port), timeout=timeout)
        except OSError as exc:
            raise UnreachableError(self.host, "connect", f"{hop}: {exc}") from None
        sock = _QuickAckSocket(fileno=plain.detach()) if hasattr(socket, "TCP_QUICKACK") else plain
        sock.settimeout(timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        # Every command is a few small request/reply packets: without NODELAY, Nagle's
        # algorithm and the peer's delayed ACK stall each of them by ~40 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if hasattr(socket, "TCP_USER_TIMEOUT"):  # a silent peer ends the session
            limit = int(self._params.keepalive * 3 * 1000)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, limit)
        return sock

    def _tunnel(self, transport: paramiko.Transport, hop: Endpoint, after: Endpoint) -> paramiko.Channel:
        """A ``direct-tcpip`` channel from jump host ``hop`` to the next hop ``after``."""
        try:
            return transport.open_channel(
                "direct-tcpip",
                (after.hostname, after.port),
                ("127.0.0.1", 0),
                timeout=self._params.connect_timeout,
            )
        except SWALLOWED as exc:
            detail = f"{after} via jump host {hop}: {exc or type(exc).__name__}"
            raise UnreachableError(self.host, "connect", detail) from None

    def _transport(self) -> paramiko.Transport:
        self.connect()
        return self._transports[-1]

    def _channel(self) -> paramiko.Channel:
        transport = self._transport()
        try:
            return transport.open_session(timeout=self._params.connect_timeout)
        except SWALLOWED as exc:
            raise CommandError(f"{self.host}: cannot open a channel: {exc}") from None

    def run(
        self,
        command: str,
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        become: Become | None = None,
        env: Mapping[str, str] | None = None,
        contained: bool = False,
        _uncancellable: bool = False,
    ) -> CommandResult:
        """Run ``command`` in the persistent shell, else on a channel of its own; see ``Connection.run``."""
        self.connect()
        launch, sudo = wrap_as(command, env=env, become=become, login_user=self._user,
                               become_password=self._params.become_password)
        pipes: Pipes | None = None
        if launch.password is None:
            shell = self._persistent_shell()
            pipes = shell.begin(launch, stdin, contained=contained) if shell is not None else None
        if pipes is None:
            pipes = SSHPipes(self._exec(launch.line))
        talk = Talk(
            stdin=stdin,
            timeout=DEFAULT_COMMAND_TIMEOUT if timeout is None else timeout,
            cap=self._cap,
            kill=lambda pgid: self._kill(pgid, sudo),
            cancel=None if _uncancellable else self._cancel,
        )
        try:
            return converse(self.host, command, launch, pipes, talk)
        except ShellTainted:  # it did not run; the shell is retired, the next one is clean
            return self.run(command, stdin=stdin, timeout=timeout, become=become, env=env,
                            contained=contained, _uncancellable=_uncancellable)

    def _exec(self, line: str) -> paramiko.Channel:
        """A channel of its own running ``line``.

        Raises:
            CommandError: the channel cannot be opened or the command not started.
        """
        channel = self._channel()
        try:
            channel.exec_command(line)
        except SWALLOWED as exc:
            channel.close()
            raise CommandError(f"{self.host}: cannot start a command: {exc}") from None
        return channel

    def _persistent_shell(self) -> PersistentShell | None:
        """The session's long-lived shell, started on first use; None where it is unavailable."""
        if self._shell_unavailable:
            return None
        if self._shell is None or not self._shell.usable:
            self._shell = None
            with contextlib.suppress(CommandError):
                channel = self._exec("exec sh")
                self._shell = PersistentShell.start(channel, SSHHeld(channel), self._params.connect_timeout)
            self._shell_unavailable = self._shell is None and self._active()
        return self._shell

    def whoami(self) -> Login | None:
        """Who commands without ``become`` run as, as the persistent shell said when it started; see
        ``Connection.whoami``. None without a persistent shell, or on a host without /proc."""
        shell = self._persistent_shell()
        return Login(shell.uid, self._user) if shell is not None and shell.uid is not None else None

    def _kill(self, pgid: int, become: Become | None) -> None:
        """End process group ``pgid`` over a second channel: TERM, then KILL after a grace."""
        with contextlib.suppress(RemedyError):
            self.run(kill_script(pgid), become=become, timeout=KILL_GRACE + 10, _uncancellable=True)

    def _sftp_client(self) -> paramiko.SFTPClient:
        transport = self._transport()
        if self._sftp is None or self._sftp.sock.closed:
            try:
                self._sftp = paramiko.SFTPClient.from_transport(transport)
            except SWALLOWED as exc:
                raise CommandError(f"{self.host}: cannot start SFTP: {exc}") from None
            if self._sftp is None:
                raise CommandError(f"{self.host}: cannot start SFTP")
        return self._sftp

    def interrupt(self) -> None:
        """Stop every running and future command: kill its process group, raise ``CommandInterrupted``."""
        self._cancel.set()

    def put(self, data: bytes, path: str) -> None:
        """Write ``data`` to ``path`` over SFTP (not atomic; callers use a temp path).

        Raises:
            OSError: the server refused (permission, missing directory, ...).
            ConnectionLost: the session died during the transfer.
        """
        sftp = self._sftp_client()
        try:
            sftp.putfo(io.BytesIO(data), path, file_size=len(data), confirm=True)
        except (EOFError, paramiko.SSHException, OSError) as exc:
            self._raise_if_lost(exc, "writing", path)
            raise

    def get(self, path: str, *, limit: int = 64 * 1024 * 1024) -> bytes:
        """Read ``path`` over SFTP.

        Raises:
            OSError: it cannot be read, or it is larger than ``limit`` bytes (EFBIG).
            ConnectionLost: the session died during the transfer.
        """
        sftp = self._sftp_client()
        try:
            with sftp.open(path, "rb") as handle:
                size = handle.stat().st_size or 0
                if size > limit:
                    raise OSError(errno.EFBIG, f"larger than {limit} bytes", path)
                handle.prefetch(size)
                data = handle.read(limit + 1)
        except (EOFError, paramiko.SSHException, OSError) as exc:
            self._raise_if_lost(exc, "reading", path)
            raise
        if len(data) > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes", path)
        return bytes(data)

    def _raise_if_lost(self, exc: BaseException, doing: str, path: str) -> None:
        if not self._active() or not isinstance(exc, OSError):
            raise ConnectionLost(f"{self.host}: connection lost while {doing} {path}: {exc}")

    def hold(self, command: str) -> HeldCommand:
        """Start ``command`` with its stdin kept open; see ``HeldCommand``."""
        held = SSHHeld(self._exec(f"exec sh -c {shlex.quote(command)}"))
        self._held.append(held)
        return held

    def close(self) -> None:
        """Close held commands, SFTP, channels, the transport and jump transports; idempotent.

        Using the connection again afterwards opens a new transport.
        """
        with self._lock:
            self._close_transports()

    def _close_transports(self) -> None:
        if self._shell is not None:
            self._shell.retire()
            self._shell = None
        while self._held:
            self._held.pop().close()
        if self._sftp is not None:
            with contextlib.suppress(*SWALLOWED):
                self._sftp.close()
            self._sftp = None
        for transport in reversed(self._transports):
            gate.hang_up(transport)
        self._transports = []


class _QuickAckSocket(socket.socket):
    """A TCP socket that acknowledges what it receives at once (Linux ``TCP_QUICKACK``).

    sshd does not set ``TCP_NODELAY`` for sessions without a terminal, so when it
    sends two small packets in a row (the first channel's confirmation follows
    a global request) Nagle's algorithm holds the second until the first is
    acknowledged, and a delayed ACK makes that ~40 ms. The kernel leaves
    quick-ACK mode by itself, so it is set again before every read.
    """

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        with contextlib.suppress(OSError):
            self.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return super().recv(bufsize, flags)


def _prefer_key_types(transport: paramiko.Transport, known: list[str]) -> None:
    """Ask the server for the host key types already recorded, as OpenSSH does."""
    if not known:
        return
    options = transport.get_security_options()
    rsa = "ssh-rsa" in known
    options.key_types = _first(options.key_types, lambda k: k in known or (rsa and k.startswith("rsa-sha2")))


#: AES-GCM authenticates each packet inside the cipher (OpenSSL); with the CTR
#: ciphers paramiko computes an HMAC and compares it in Python for every packet,
#: which is a third of the controller's CPU per command.
_AEAD = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def _prefer_aead(transport: paramiko.Transport) -> None:
    """Offer the AES-GCM ciphers first; the others stay for servers without them."""
    options = transport.get_security_options()
    options.ciphers = _first(options.ciphers, lambda c: c in _AEAD)


def _first(available: Sequence[str], wanted: Callable[[str], bool]) -> tuple[str, ...]:
    """``available`` with the ``wanted`` ones moved to the front, each group in its own order."""
    return tuple([a for a in available if wanted(a)] + [a for a in available if not wanted(a)])
