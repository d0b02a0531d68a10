"""``remedy demo``: a real remediation of a throw-away sandbox on localhost.

Command line. Creates a sandbox directory with three faults (a world-writable
config, a stale pid file, a stale cache), writes a one-host inventory using
the local connection, shows the plan, runs the fix and prints the recap. No
SSH setup is needed; nothing outside the sandbox is touched.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

DEMO_PLAYBOOK = Path(__file__).resolve().parent / "bundled" / "demo.yml"


def make_sandbox(root: Path) -> None:
    """Lay out the broken demo app under ``root``."""
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "run").mkdir(exist_ok=True)
    (root / "cache").mkdir(exist_ok=True)
    config = root / "etc" / "config.yaml"
    config.write_text("port: 8080\ndata_dir: ./data\n", encoding="utf-8")
    config.chmod(0o666)
    (root / "run" / "app.pid").write_text(f"{_dead_pid()}\n", encoding="utf-8")
    for index in range(5):
        (root / "cache" / f"entry-{index}.bin").write_bytes(b"stale")


def _dead_pid() -> int:
    """A pid that belonged to a process that has exited (and was reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def run_demo(main: Callable[[Sequence[str]], int], *, keep: bool = False, root: str | None = None) -> int:
    """Build the sandbox, plan, fix with ``main`` (the command line); returns the run's exit code."""
    base = Path(root) if root else Path(tempfile.mkdtemp(prefix="remedy-demo-"))
    make_sandbox(base)
    inventory = base / "inventory.ini"
    lock = base / "localhost.lock"  # the run's lock stays in the sandbox
    inventory.write_text(f"localhost ansible_connection=local app_root={base} remedy_lock_path={lock}\n",
                         encoding="utf-8")
    audit = base / "audit.jsonl"
    common = [str(DEMO_PLAYBOOK), "-i", str(inventory), "--audit-log", str(audit)]
    print(f"== sandbox: {base} (config 0666, stale pid file, 5 stale cache entries)", file=sys.stderr)
    print("== 1. plan (dry run, with diffs)", file=sys.stderr)
    code = main(["plan", *common, "--diff"])
    if code != 0:
        return code
    print("\n== 2. run (fix, then verify)", file=sys.stderr)
    code = main(["run", *common])
    if code == 0:
        print("\n== 3. run again: nothing left to do", file=sys.stderr)
        code = main(["run", *common, "-q"])
    if not keep and code == 0 and not root:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
        print("\n== sandbox and its audit log removed (--keep keeps both to inspect)", file=sys.stderr)
    else:
        print(f"\n== audit log: {audit}", file=sys.stderr)
    return code


