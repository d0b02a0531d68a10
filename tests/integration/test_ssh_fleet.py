"""Many hosts at once: SshdFleet servers reached in parallel, one transport each."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from runner.connection import ConnectionParams, open_connection
from runner.testing import SshdFleet
from tests.support.prerequisites import require_sshd


def probe(params: ConnectionParams) -> tuple[str, str]:
    conn = open_connection(params)
    try:
        conn.connect()
        first = conn.run("echo $SSH_CONNECTION").stdout.split()
        second = conn.run("echo $SSH_CONNECTION").stdout.split()
        assert first == second  # same session: same client port
        return params.name, first[-1]
    finally:
        conn.close()


def test_twenty_hosts_in_parallel_each_answer_on_their_own_port() -> None:
    require_sshd()
    with SshdFleet(20) as fleet:
        params = fleet.params()
        assert len({p.port for p in params}) == 20
        with ThreadPoolExecutor(20) as pool:
            answers = dict(pool.map(probe, params))
        assert answers == {p.name: str(p.port) for p in params}
        assert all(server.log_text().count("Accepted publickey") == 1 for server in fleet)
        assert len(fleet.known_hosts.read_text().splitlines()) == 20
