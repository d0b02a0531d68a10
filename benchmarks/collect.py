"""``remedy collect`` on N real sshd hosts, in parallel and host after host.

    python benchmarks/collect.py                          # 50 hosts, 3 runs of each variant
    python benchmarks/collect.py --hosts 50 --reps 3 --write-results benchmarks/RESULTS.md

Brings up the harness's hosts (``runner.testing.SshdFleet`` on 127.0.0.1, one
client key and known_hosts, the throwaway ``/bin/sh`` account of
``account.py``) and gives each host a root laid out like a Coze host: a
config with a secret (``db_password``), a 1 MiB ``app.log`` (so the 256 KiB
cap applies), an ``error.log`` and a pid file naming a dead process. Then,
for each repetition, in a rotating order, it runs ``remedy collect`` under
``measure.py`` (wall time, CPU of the tool's process tree, peak PSS), with
the hosts' CPU from ``hostcpu`` (a control group holding every sshd):

* ``parallel``: the defaults (``--forks 20``);
* ``wide``: ``--forks`` = the number of hosts (every host at once);
* ``serial``: ``--forks 1``, one host after another (the reference).

A run counts only if it exits 0, its archive holds every host's bundle and
a manifest, the secret is in none of its files, and every host's root is as
it was (files, modes, mtimes) with no ``remedy-evidence.*`` temp dir left.
``--write-results FILE`` replaces the part of FILE between
``<!-- collect:begin -->`` and ``<!-- collect:end -->`` (appended if absent).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import account  # noqa: E402
from harness import machine  # noqa: E402
from hostcpu import HostCpu  # noqa: E402

from runner.testing import SshdFleet  # noqa: E402

BEGIN, END = "<!-- collect:begin -->", "<!-- collect:end -->"
SECRET = "bench-collect-secret-4f1c"
VARIANTS = {"parallel": [], "wide": ["--forks", "{n}"], "serial": ["--forks", "1"]}
MiB = 1024 * 1024


@dataclass
class Sample:
    variant: str
    ok: bool
    wall: float
    cpu: float = 0.0
    host_cpu: float = float("nan")
    pss: int = 0
    problems: str = ""
    load: float = 0.0  # 1-minute load average when the run started (other jobs share the machine)


def lay_out(root: Path, owner: tuple[int, int]) -> None:
    """A Coze-like host under ``root``, owned by the benchmark account."""
    for sub in ("etc/coze", "var/log/coze", "run/coze"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "etc/coze/config.yaml").write_text(f"instance: {root.name}\nport: 18080\ndb_password: {SECRET}\n")
    (root / "var/log/coze/app.log").write_bytes(b"".join(b"%08d INFO request served\n" % i
                                                          for i in range(MiB // 25)))
    (root / "var/log/coze/error.log").write_text("ERROR address already in use: port 18080\n")
    (root / "run/coze/coze.pid").write_text("4194303\n")
    for path in [root, *root.rglob("*")]:
        os.lchown(path, *owner)


def snapshot(roots: list[Path]) -> dict[str, tuple[int, int, int]]:
    """Every entry under the roots: mode, size, mtime."""
    found = {}
    for root in roots:
        for path in [root, *root.rglob("*")]:
            info = path.lstat()
            found[str(path)] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found


def inventory(path: Path, fleet: SshdFleet, roots: list[Path], user: str) -> None:
    hosts = {}
    for index, (server, root) in enumerate(zip(fleet.servers, roots, strict=False), 1):
        hosts[f"host{index:03d}"] = {
            "ansible_host": "127.0.0.1", "ansible_port": server.port,
            "coze_config": f"{root}/etc/coze/config.yaml", "coze_log_dir": f"{root}/var/log/coze",
            "coze_pid_file": f"{root}/run/coze/coze.pid", "coze_program": f"{root}/opt/coze/none.py",
            "coze_system_logs": [f"{root}/var/log/syslog"]}
    first = fleet.servers[0]
    group = {"ansible_user": user, "ansible_ssh_private_key_file": str(first.client_key),
             "remedy_known_hosts": str(first.known_hosts)}
    path.write_text(json.dumps({"all": {"vars": group, "hosts": hosts}}, indent=1))


def run_once(variant: str, hosts: int, work: Path, inventory_file: Path, cpu: HostCpu) -> Sample:
    out = Path(tempfile.mkdtemp(prefix=f"{variant}-", dir=work))
    extra = [a.format(n=hosts) for a in VARIANTS[variant]]
    collect = [sys.executable, "-m", "runner", "collect", "-i", str(inventory_file), "-o", str(out), "-q"]
    argv = [sys.executable, str(HERE / "measure.py"), "--out", str(out / "measure.json"),
            "--stdout", str(out / "stdout.txt"), "--stderr", str(out / "stderr.txt"), "--", *collect, *extra]
    before, load = cpu.seconds(), os.getloadavg()[0]
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    subprocess.run(argv, check=True, timeout=3600, env=env, cwd=HERE.parent)
    measured = json.loads((out / "measure.json").read_text())
    sample = Sample(variant, False, measured["wall"], measured.get("cpu", 0.0), cpu.spent(before),
                    measured["peak_pss"], load=load)
    sample.problems = _bundle_problems(out, hosts, measured["rc"])
    sample.ok = not sample.problems
    return sample


def _bundle_problems(out: Path, hosts: int, rc: int) -> str:
    if rc != 0:
        return f"exit {rc}: {(out / 'stderr.txt').read_text(errors='replace')[-300:]}"
    (archive,) = out.glob("remedy-collect-*.tar.gz")
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        names = {m.name.split("/")[1] for m in members if m.name.count("/") > 1}
        leaked = [m.name for m in members if SECRET.encode() in tar.extractfile(m).read()]  # type: ignore[union-attr]
    if len(names) != hosts or leaked:
        return f"{len(names)} of {hosts} hosts in the archive; the secret in {leaked[:3]}"
    return ""


def measure(args: argparse.Namespace, work: Path) -> list[Sample]:
    roots = [work / "hosts" / f"h{i:03d}" for i in range(1, args.hosts + 1)]
    work.chmod(0o755)
    user = account.create(work / "home")
    samples: list[Sample] = []
    try:
        for root in roots:
            lay_out(root, (user.uid, user.gid))
        with SshdFleet(args.hosts) as fleet, HostCpu(f"remedy-collect-bench-{os.getpid()}") as cpu:
            cpu.add([s.pid for s in fleet.servers if s.pid])
            inventory(work / "inventory.json", fleet, roots, user.name)
            names = list(VARIANTS)
            for rep in range(args.reps):
                for variant in names[rep % len(names):] + names[:rep % len(names)]:
                    state = snapshot(roots)
                    sample = run_once(variant, args.hosts, work, work / "inventory.json", cpu)
                    if snapshot(roots) != state or glob.glob("/tmp/remedy-evidence.*"):
                        sample.ok, sample.problems = False, "a host's files changed, or a temp dir was left"
                    samples.append(sample)
                    print(f"  rep={rep} {variant:<9} {sample.wall:7.2f}s  "
                          f"{'ok' if sample.ok else 'INVALID ' + sample.problems}", file=sys.stderr)
    finally:
        account.remove(user)
    return samples


def render(samples: list[Sample], args: argparse.Namespace) -> str:
    good = {v: [s for s in samples if s.variant == v and s.ok] for v in VARIANTS}
    serial = statistics.median([s.wall for s in good["serial"]] or [float("nan")])
    loads = sorted(s.load for s in samples) or [0.0]
    lines = [BEGIN, "", f"### remedy collect, {args.hosts} hosts", "",
             f"Generated by `python benchmarks/collect.py {' '.join(args.argv)}` "
             f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: "
             f"{', '.join(f'{k} {v}' for k, v in machine().items())}). 1-minute load average at the "
             f"start of the runs: median {statistics.median(loads):.1f}, max {loads[-1]:.1f} (on "
             f"{os.cpu_count()} cores; the rest of the machine's jobs included).", "",
             "| variant | wall median (s) | min–max (s) | × serial | CPU, tool (s) | CPU, hosts (s) "
             "| peak memory, tree PSS (MiB) | runs ok |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for variant, runs in good.items():
        walls = [s.wall for s in runs] or [float("nan")]
        median = statistics.median(walls)
        lines.append(f"| {variant} ({' '.join(VARIANTS[variant]).format(n=args.hosts) or '--forks 20'}) "
                     f"| {median:.2f} | {min(walls):.2f}–{max(walls):.2f} | {median / serial:.2f} "
                     f"| {statistics.median([s.cpu for s in runs] or [0.0]):.2f} "
                     f"| {statistics.median([s.host_cpu for s in runs] or [float('nan')]):.2f} "
                     f"| {statistics.median([s.pss for s in runs] or [0]) / MiB:.0f} "
                     f"| {len(runs)} of {sum(s.variant == variant for s in samples)} |")
    return "\n".join([*lines, "", END])


def write_results(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        text = head + block + rest.partition(END)[2]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50, help="hosts (default 50)")
    parser.add_argument("--reps", type=int, default=3, help="runs of each variant (default 3)")
    parser.add_argument("--write-results", metavar="FILE", help="update the collect section of FILE")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    work = Path(tempfile.mkdtemp(prefix="remedy-collect-bench-"))
    try:
        samples = measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    block = render(samples, args)
    print(block)
    if args.write_results:
        write_results(Path(args.write_results), block)
    return 0 if all(s.ok for s in samples) else 1


if __name__ == "__main__":
    sys.exit(main())
