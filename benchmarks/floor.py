"""The floor: the benchmark workload done with paramiko directly, no framework.

    python benchmarks/floor.py FLEET.json

``FLEET.json`` is written by the harness: ``{"user", "key", "known_hosts",
"hosts": [{"name", "address", "port", "root"}, ...]}``. Every host gets a
thread: one transport (host key checked against known_hosts before
authenticating), then each of the workload's ten tasks as the one command
it needs on a channel of that transport, and the rendered template over
SFTP (temp file + rename). No probes, no planning, no checks beyond exit
codes: the physical reference a runner is compared with. It asks for the
AES-GCM ciphers first, as remedy does. Exit 0 when every command on every
host succeeded.
"""

from __future__ import annotations

import io
import json
import shlex
import socket
import sys
import threading
from pathlib import Path

import paramiko

_TEMPLATE = Path(__file__).parent / "workload" / "templates" / "app.ini.j2"
_VARS = {"app_name": "coze", "app_port": 8080, "app_workers": 4}


def render() -> bytes:
    """The workload's template with its three variables (Jinja2, as every tool uses)."""
    import jinja2

    return jinja2.Template(_TEMPLATE.read_text(), keep_trailing_newline=True).render(**_VARS).encode()


def commands(root: str) -> list[str | tuple[str, bytes]]:
    """The workload for one host: shell commands, and one (path, content) upload."""
    r = shlex.quote(root)
    return [
        f"df -P {r}",
        f"stat -c '%a %s %U' {r}/etc/app.conf",
        f"chmod 0640 {r}/etc/app.conf",
        f"mkdir -p {r}/log && chmod 0750 {r}/log",
        (f"{root}/etc/app.ini", render()),
        f"rm -rf {r}/cache && mkdir -m 0755 {r}/cache",
        f"rm -f {r}/run/app.pid",
        f"rm -rf {r}/data && mkdir {r}/data && tar -xzf {r}/backup/data.tar.gz -C {r}/data",
        f"cd {r}/data && sha256sum -c --quiet ../backup/data.sha256",
        f"sed -i 's/^log_level=.*/log_level=info/' {r}/etc/app.conf",
    ]


def run(transport: paramiko.Transport, command: str) -> int:
    """One command on a new channel; its exit code (output is read and dropped)."""
    channel = transport.open_session()
    channel.exec_command(command)
    while not channel.exit_status_ready() or channel.recv_ready() or channel.recv_stderr_ready():
        if channel.recv_ready():
            channel.recv(65536)
        elif channel.recv_stderr_ready():
            channel.recv_stderr(65536)
        else:
            channel.status_event.wait(0.05)
    status = channel.recv_exit_status()
    channel.close()
    return status


def connect(fleet: dict, host: dict, known: paramiko.HostKeys) -> paramiko.Transport:
    sock = socket.create_connection((host["address"], host["port"]), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(sock)
    # the same cipher preference as remedy (AES-GCM first, runner.connection.ssh._AEAD), so the
    # floor stays the floor; paramiko alone here, so the list is kept in step by hand
    options = transport.get_security_options()
    gcm = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
    ciphers = options.ciphers
    options.ciphers = tuple([c for c in gcm if c in ciphers] + [c for c in ciphers if c not in gcm])
    transport.start_client(timeout=10)
    offered = transport.get_remote_server_key()
    name = f"[{host['address']}]:{host['port']}" if host["port"] != 22 else host["address"]
    expected = known.lookup(name)
    if expected is None or expected.get(offered.get_name()) != offered:
        transport.close()
        raise RuntimeError(f"{host['name']}: host key not in known_hosts")
    transport.auth_publickey(fleet["user"], paramiko.Ed25519Key.from_private_key_file(fleet["key"]))
    return transport


def fix(fleet: dict, host: dict, known: paramiko.HostKeys, failures: list[str]) -> None:
    try:
        transport = connect(fleet, host, known)
        try:
            for item in commands(host["root"]):
                if isinstance(item, tuple):
                    path, data = item
                    sftp = paramiko.SFTPClient.from_transport(transport)
                    assert sftp is not None
                    temp = f"{path}.floor-tmp"
                    sftp.putfo(io.BytesIO(data), temp)
                    sftp.chmod(temp, 0o640)
                    sftp.posix_rename(temp, path)
                    sftp.close()
                elif (rc := run(transport, item)) != 0:
                    failures.append(f"{host['name']}: exit {rc}: {item}")
                    return
        finally:
            transport.close()
    except Exception as error:  # noqa: BLE001 - reported, then exit 1
        failures.append(f"{host['name']}: {type(error).__name__}: {error}")


def main(argv: list[str]) -> int:
    fleet = json.loads(Path(argv[0]).read_text())
    known = paramiko.HostKeys(fleet["known_hosts"])
    failures: list[str] = []
    threads = [threading.Thread(target=fix, args=(fleet, h, known, failures)) for h in fleet["hosts"]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
