"""ProxyJump through real sshd servers: from parameters, from ssh_config, chains, failures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.connection import Connection, ConnectionParams, open_connection
from runner.errors import UnreachableError
from runner.testing import Sshd, SshdFleet
from tests.support.loopback import closed_port
from tests.support.prerequisites import require_sshd

Connect = Callable[[ConnectionParams], Connection]


@pytest.fixture
def fleet() -> Iterator[SshdFleet]:
    """Three servers sharing a client key and known_hosts: jump1, jump2, target."""
    require_sshd()
    with SshdFleet(3) as servers:
        yield servers


def tunnels(server: Sshd) -> int:
    """How many direct-tcpip channels ``server`` opened for clients."""
    return server.log_text().count("ctype direct-tcpip")


def hop(server: Sshd) -> str:
    return f"{server.user}@127.0.0.1:{server.port}"


def test_proxy_jump_parameter_reaches_the_target_through_the_jump_host(
    fleet: SshdFleet, connect: Connect
) -> None:
    jump, _, target = fleet.servers
    conn = connect(target.params("web1", proxy_jump=hop(jump)))
    assert conn.run("echo through").stdout == "through\n"
    assert tunnels(jump) == 1
    assert target.log_text().count("Accepted publickey") == 1


def test_a_chain_of_two_jump_hosts_is_followed_in_order(fleet: SshdFleet, connect: Connect) -> None:
    jump1, jump2, target = fleet.servers
    conn = connect(target.params("web1", proxy_jump=f"{hop(jump1)},{hop(jump2)}"))
    assert conn.run("true").ok
    assert (tunnels(jump1), tunnels(jump2), tunnels(target)) == (1, 1, 0)
    conn.close()
    conn.close()
    assert conn.run("true").ok  # a closed connection reconnects when used again


def test_ssh_config_aliases_and_proxy_jump_are_honoured(
    fleet: SshdFleet, connect: Connect, tmp_path: Path
) -> None:
    jump, _, target = fleet.servers
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host app\n  HostName 127.0.0.1\n  Port {target.port}\n  User {target.user}\n"
        f"  IdentityFile {target.client_key}\n  ProxyJump bastion\n"
        f"Host bastion\n  HostName 127.0.0.1\n  Port {jump.port}\n  User {jump.user}\n"
        f"  IdentityFile {jump.client_key}\n"
    )
    params = ConnectionParams(
        name="app",
        address="app",
        ssh_config=str(config),
        known_hosts=str(fleet.known_hosts),
    )
    conn = connect(params)
    assert conn.run("id -un").stdout.strip() == target.user
    assert tunnels(jump) == 1


def test_an_unknown_jump_host_key_is_refused_before_authenticating_to_it(
    fleet: SshdFleet, tmp_path: Path
) -> None:
    jump, _, target = fleet.servers
    known = tmp_path / "known_hosts"
    known.write_text(
        "".join(
            line
            for line in fleet.known_hosts.read_text().splitlines(keepends=True)
            if not line.startswith(f"[127.0.0.1]:{jump.port} ")
        )
    )
    params = target.params("web1", proxy_jump=hop(jump), known_hosts=str(known))
    conn = open_connection(params)
    with pytest.raises(UnreachableError) as caught:
        conn.connect()
    assert caught.value.reason == "host_key"
    assert f"[127.0.0.1]:{jump.port}" in caught.value.detail
    assert jump.host_key_fingerprint in caught.value.detail
    assert jump.auth_attempts() == 0 and target.auth_attempts() == 0


def test_a_refused_next_hop_is_unreachable_connect_via_the_jump_host(fleet: SshdFleet) -> None:
    jump = fleet.servers[0]
    params = jump.params("web1", port=closed_port(), proxy_jump=hop(jump))
    conn = open_connection(params)
    with pytest.raises(UnreachableError) as caught:
        conn.connect()
    assert caught.value.reason == "connect"
    assert "via jump host" in caught.value.detail
