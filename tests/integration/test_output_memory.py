"""A command's output costs the controller bounded memory, however much it writes.

Each stream keeps at most ``OUTPUT_CAP`` bytes (its head and its tail, with a
note of what was left out between) and the rest is read and dropped as it
comes. The command runs in a fresh Python process, so that its peak resident
memory (``ru_maxrss``) before and after the command tells what reading the
output cost, on every read path: the persistent shell, a channel of its own
and the local connection.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from runner.connection import OUTPUT_CAP, ConnectionParams
from runner.testing import Sshd

MIB = 1024 * 1024
SIZE = 200 * MIB


def command(fd: int) -> str:
    """200 MiB of "o" between marked ends, on stdout (``fd`` 1) or on stderr (2)."""
    return f"{{ printf HEAD; head -c {SIZE} /dev/zero | tr '\\0' o; printf TAIL; }} >&{fd}"

#: Runs a command (argv[2]) over the connection described by argv[1] (JSON) and reports what it cost.
CHILD = """
import json, resource, sys
from runner.connection import ConnectionParams, open_connection
params = ConnectionParams(**json.loads(sys.argv[1]))
conn = open_connection(params)
conn.run("echo warm")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = conn.run(sys.argv[2], timeout=300)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
conn.close()
print(json.dumps({"growth_kib": after - before, "rc": result.rc, "truncated": result.truncated,
                  "stdout": result.stdout, "stderr": result.stderr}))
"""


def run_in_a_fresh_process(params: ConnectionParams, command: str) -> dict[str, object]:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(dataclasses.asdict(params)), command],
                          capture_output=True, text=True, timeout=600, check=False,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, object] = json.loads(done.stdout)
    return report


def paths(sshd: Sshd) -> dict[str, ConnectionParams]:
    return {
        "persistent shell": sshd.params("web1"),
        "channel of its own": sshd.params("web1", persistent_shell=False),
        "local": ConnectionParams(name="localhost", address="localhost", kind="local"),
    }


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
@pytest.mark.parametrize("path", ["persistent shell", "channel of its own", "local"])
def test_200_mib_of_output_is_capped_and_drained_in_bounded_memory(
    shared_sshd: Sshd, path: str, stream: str
) -> None:
    fd = 1 if stream == "stdout" else 2
    report = run_in_a_fresh_process(paths(shared_sshd)[path], command(fd))
    assert report["rc"] == 0 and report["truncated"] is True
    text, other = (report["stdout"], report["stderr"]) if fd == 1 else (report["stderr"], report["stdout"])
    assert isinstance(text, str) and len(text.encode()) <= OUTPUT_CAP and other == ""
    assert text.startswith("HEAD" + "o" * 1000) and text.endswith("o" * 1000 + "TAIL")
    assert f"bytes of output omitted; {SIZE + 8} bytes in all" in text
    growth = report["growth_kib"]
    assert isinstance(growth, int) and growth < 32 * 1024, f"peak memory grew by {growth} KiB"
