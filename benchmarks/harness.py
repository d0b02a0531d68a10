"""Side-by-side benchmark of remedy, ansible-playbook, pyinfra and a paramiko floor.

    python benchmarks/harness.py                       # the full matrix (see RESULTS.md)
    python benchmarks/harness.py --sizes 2 --tools remedy,floor --reps 1 --no-scale   # a smoke

Brings up real OpenSSH sshd hosts on 127.0.0.1 (``runner.testing.SshdFleet``,
one client key, one known_hosts), gives each host its own root directory
(``bench_root``), and for every scenario (N hosts, apply or check mode) and
repetition, for each tool in a rotating order:

1. resets every host's root to the identical broken state (``hoststate``),
   not timed;
2. runs the tool under ``measure.py`` (wall time, peak PSS/RSS and CPU time
   of the tool's whole process tree, open fds), and counts the CPU time the
   hosts spent serving it (``hostcpu``: a control group holds every sshd);
3. checks every host: after a real run each one must be fixed, after a
   check-mode run each one must be untouched. A run that fails this does not
   count (it is reported, with what was wrong).

Medians, min-max and each tool's ratio to remedy come from the same
invocation, on the same hosts. ``--scale 200,500`` adds remedy-only runs at
those sizes; ``--forks-sweep 20,50,100`` adds remedy-only runs at
``--forks-hosts`` hosts (default 200) with each of those ``--forks``.
``--listeners L`` starts only L sshd servers and spreads the hosts over them
round-robin (host i on server i mod L): 1,000 inventory hosts need not mean
1,000 sshd processes. Every host keeps its own root and lock either way.
``--write-results FILE`` replaces the generated part of ``RESULTS.md``
(between its markers; ``--section NAME`` uses the ``harness:NAME`` markers
instead, so a run of a few scenarios leaves the full matrix in place) and
``--json FILE`` keeps every raw run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import account  # noqa: E402
import hoststate  # noqa: E402
from hostcpu import HostCpu  # noqa: E402
from tools import TOOLS, Fleet, ensure_venv, forks_tool, lookup, tool_versions  # noqa: E402

from runner.testing import SshdFleet  # noqa: E402


def markers(section: str = "") -> tuple[str, str]:
    """The comment lines around the generated part of RESULTS.md (one pair per section)."""
    name = f"harness:{section}:" if section else "harness:"
    return f"<!-- {name}begin -->", f"<!-- {name}end -->"


MiB = 1024 * 1024


@dataclass
class Sample:
    tool: str
    hosts: int
    check: bool
    rep: int
    ok: bool
    wall: float
    rc: int
    peak_pss: int = 0
    largest_rss: int = 0
    peak_fds: int = 0
    peak_threads: int = 0
    peak_procs: int = 0
    problems: list[str] = field(default_factory=list)
    load: float = 0.0  # 1-minute load average when the run started (other jobs share the machine)
    cpu: float = 0.0  # seconds of CPU of the tool's process tree (the controller)
    host_cpu: float = float("nan")  # seconds of CPU of the sshd hosts and what they started (nan: unmeasured)


def run_one(tool: str, fleet: Fleet, roots: list[Path], *, check: bool, rep: int, work: Path,
            fds: bool, timeout: float, owner: tuple[int, int], hosts: HostCpu) -> Sample:
    """Reset, run ``tool`` once under measure.py, verify every host."""
    hoststate.reset_all(roots, owner)
    load = os.getloadavg()[0]
    hosts_before = hosts.seconds()
    run_dir = Path(tempfile.mkdtemp(prefix=f"{tool}-{len(roots)}-", dir=work))
    launch = lookup(tool).prepare(run_dir, fleet, check)
    out = run_dir / "measure.json"
    argv = [sys.executable, str(HERE / "measure.py"), "--out", str(out),
            "--stdout", str(run_dir / "stdout.txt"), "--stderr", str(run_dir / "stderr.txt")]
    if fds:
        argv.append("--fds")
    argv += ["--", *launch.argv]
    try:
        subprocess.run(argv, env=launch.env, cwd=launch.cwd, check=True, timeout=timeout)
        measured = json.loads(out.read_text())
        hosts_spent = hosts.spent(hosts_before)
    except (subprocess.SubprocessError, OSError, ValueError) as error:
        return Sample(tool, len(roots), check, rep, False, float("nan"), -1, problems=[str(error)], load=load)
    verify = hoststate.untouched_problems if check else hoststate.problems
    problems = [f"{root.name}: {p}" for root in roots for p in verify(root)]
    if measured["rc"] != 0:
        tail = (run_dir / "stderr.txt").read_text(errors="replace")[-400:] or \
            (run_dir / "stdout.txt").read_text(errors="replace")[-400:]
        problems.insert(0, f"exit code {measured['rc']}: {tail.strip()}")
    sample = Sample(tool, len(roots), check, rep, not problems, measured["wall"], measured["rc"],
                    measured["peak_pss"], measured["largest_rss"], measured["peak_fds"],
                    measured["peak_threads"], measured["peak_procs"], problems[:5], load,
                    measured.get("cpu", 0.0), hosts_spent)
    if sample.ok:
        shutil.rmtree(run_dir, ignore_errors=True)
    return sample


def spread(servers: list, n: int) -> list:
    """The server of each of ``n`` hosts: round-robin over ``servers`` (host i on server i mod L)."""
    return [servers[i % len(servers)] for i in range(n)]


def _fleet(servers: list, roots: list[Path], user: str) -> Fleet:
    first = servers[0]
    width = max(3, len(str(len(servers))))
    pairs = enumerate(zip(servers, roots, strict=True), 1)
    hosts = tuple((f"host{i:0{width}d}", s.port, str(r)) for i, (s, r) in pairs)
    return Fleet(user, str(first.client_key), str(first.known_hosts), hosts)


def scenarios(args: argparse.Namespace) -> list[tuple[int, bool, list[str]]]:
    chosen = [t for t in args.tools.split(",") if t]
    plan = [(n, False, chosen) for n in args.sizes]
    if args.check_size:
        plan.append((args.check_size, True, [t for t in chosen if TOOLS[t].check_mode]))
    if args.scale:
        plan += [(n, False, ["remedy"]) for n in args.scale]
    if args.forks_sweep:
        plan.append((args.forks_hosts, False, [forks_tool(f).name for f in args.forks_sweep]))
    return plan


def run_matrix(args: argparse.Namespace, work: Path) -> list[Sample]:
    plan = scenarios(args)
    largest = max(n for n, _, _ in plan)
    roots = [work / "hosts" / f"h{i:04d}" for i in range(1, largest + 1)]
    samples: list[Sample] = []
    started = time.monotonic()
    work.chmod(0o755)  # the benchmark account reaches its roots (and home) below it
    user = account.create(work / "home")
    owner = (user.uid, user.gid)
    print(f"starting {largest} sshd hosts (logging in as {user.name}) ...", file=sys.stderr)
    try:
        _run_plan(args, plan, roots, user.name, owner, work, samples, started)
    finally:
        account.remove(user)
    return samples


def _run_plan(args: argparse.Namespace, plan: list[tuple[int, bool, list[str]]], roots: list[Path],
              user: str, owner: tuple[int, int], work: Path, samples: list[Sample], started: float) -> None:
    largest = len(roots)
    listeners = min(largest, args.listeners or largest)
    with SshdFleet(listeners) as fleet, HostCpu(f"remedy-bench-{os.getpid()}") as cpu:
        if not cpu.add([s.pid for s in fleet.servers if s.pid]):
            print("  the hosts' CPU is not measured: no writable cgroup", file=sys.stderr)
        print(f"  {len(fleet.servers)} sshd up in {time.monotonic() - started:.1f}s", file=sys.stderr)
        for n, check, tools in plan:
            fleet_n = _fleet(spread(fleet.servers, n), roots[:n], user)
            scale = (n in args.scale and tools == ["remedy"]) or _sweep(tools)
            reps = args.scale_reps if scale else args.reps
            for rep in range(reps):
                order = tools[rep % len(tools):] + tools[:rep % len(tools)]
                for tool in order:
                    if not scale and n >= 50 and tool == "ansible" and rep >= args.slow_reps:
                        continue
                    sample = run_one(tool, fleet_n, roots[:n], check=check, rep=rep, work=work,
                                     fds=tool.startswith("remedy"), timeout=args.timeout, owner=owner,
                                     hosts=cpu)
                    samples.append(sample)
                    state = "ok" if sample.ok else "INVALID " + "; ".join(sample.problems[:2])
                    print(f"  n={n:<4} {'check' if check else 'apply'} rep={rep} {tool:<14} "
                          f"{sample.wall:8.2f}s  {sample.peak_pss / MiB:7.1f} MiB  {state}",
                          file=sys.stderr)


# --- summaries ------------------------------------------------------------------------------


@dataclass
class Summary:
    tool: str
    runs: int
    invalid: int
    median: float
    low: float
    high: float
    pss: float  # MiB, median of the peaks
    rss: float  # MiB, largest single process, median
    fds: int
    threads: int
    cpu: float  # seconds, median: the tool's own process tree
    host_cpu: float  # seconds, median: the hosts serving it


def summarize(samples: list[Sample], n: int, check: bool) -> dict[str, Summary]:
    by_tool: dict[str, list[Sample]] = {}
    for s in samples:
        if s.hosts == n and s.check == check:
            by_tool.setdefault(s.tool, []).append(s)
    result = {}
    for tool, runs in by_tool.items():
        good = [r for r in runs if r.ok]
        walls = [r.wall for r in good] or [float("nan")]
        result[tool] = Summary(
            tool, len(good), len(runs) - len(good), statistics.median(walls), min(walls), max(walls),
            statistics.median([r.peak_pss for r in good] or [0]) / MiB,
            statistics.median([r.largest_rss for r in good] or [0]) / MiB,
            max([r.peak_fds for r in good] or [0]), max([r.peak_threads for r in good] or [0]),
            statistics.median([r.cpu for r in good] or [0.0]),
            statistics.median([r.host_cpu for r in good] or [float("nan")]))
    return result


def _order(tool: str) -> int:
    return list(TOOLS).index(tool) if tool in TOOLS else 99


def comparison_table(samples: list[Sample], n: int, check: bool) -> str:
    summary = summarize(samples, n, check)
    base = summary.get("remedy")
    lines = ["| tool | wall median (s) | min–max (s) | × remedy | CPU, tool (s) | CPU, hosts (s) "
             "| peak memory, tree PSS (MiB) | runs ok |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for tool in sorted(summary, key=_order):
        s = summary[tool]
        ratio = s.median / base.median if base and base.median == base.median else float("nan")
        invalid = f" ({s.invalid} invalid)" if s.invalid else ""
        lines.append(f"| {tool} | {s.median:.2f} | {s.low:.2f}–{s.high:.2f} | {ratio:.2f} | "
                     f"{s.cpu:.2f} | {s.host_cpu:.2f} | {s.pss:.0f} | {s.runs}{invalid} |")
    return "\n".join(lines)


def scale_table(samples: list[Sample], sizes: list[int]) -> str:
    baseline = summarize(samples, 1, False).get("remedy")
    lines = ["| hosts | wall median (s) | min–max (s) | peak RSS (MiB) | MiB/host above 1 host "
             "| peak open fds | peak threads | runs ok |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in sorted({1, *sizes} if baseline else set(sizes)):
        s = summarize(samples, n, False).get("remedy")
        if s is None:
            continue
        per_host = (s.rss - baseline.rss) / (n - 1) if baseline and n > 1 else float("nan")
        per = "—" if n == 1 else f"{per_host:.2f}"
        invalid = f" ({s.invalid} invalid)" if s.invalid else ""
        lines.append(f"| {n} | {s.median:.2f} | {s.low:.2f}–{s.high:.2f} | {s.rss:.0f} | {per} | "
                     f"{s.fds} | {s.threads} | {s.runs}{invalid} |")
    return "\n".join(lines)


def _sweep(tools: list[str]) -> bool:
    return bool(tools) and all(t.startswith("remedy-forks-") for t in tools)


def forks_table(samples: list[Sample], n: int, forks: list[int]) -> str:
    """One row per ``--forks`` value of the sweep at ``n`` hosts; the ratio is to the first value."""
    summary = summarize(samples, n, False)
    lines = ["| --forks | wall median (s) | min–max (s) | × first | CPU, tool (s) | CPU, hosts (s) "
             "| peak RSS (MiB) | peak threads | runs ok |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    base = summary.get(forks_tool(forks[0]).name) if forks else None
    for f in forks:
        s = summary.get(forks_tool(f).name)
        if s is None:
            continue
        ratio = s.median / base.median if base and base.median == base.median else float("nan")
        invalid = f" ({s.invalid} invalid)" if s.invalid else ""
        lines.append(f"| {f} | {s.median:.2f} | {s.low:.2f}–{s.high:.2f} | {ratio:.2f} | {s.cpu:.2f} | "
                     f"{s.host_cpu:.2f} | {s.rss:.0f} | {s.threads} | {s.runs}{invalid} |")
    return "\n".join(lines)


def machine() -> dict[str, str]:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    os_name = ""
    if Path("/etc/os-release").exists():
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    sshd = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False).stderr.strip()
    return {"cpu": cpu, "cores": str(os.cpu_count()), "memory": f"{int(mem) / 1024 / 1024:.1f} GiB",
            "kernel": platform.release(), "os": os_name, "openssh": sshd}


def render(samples: list[Sample], args: argparse.Namespace, versions: dict[str, str], elapsed: float) -> str:
    info = machine()
    begin, end = markers(args.section)
    parts = [begin, "",
             f"Generated by `python benchmarks/harness.py {' '.join(args.argv)}` "
             f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {elapsed / 60:.0f} min).", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()) + ".", "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".", "",
             _load_line(samples), ""]
    if args.listeners:
        parts += [f"Hosts share {args.listeners} sshd listeners, round-robin "
                  f"({max(n for n, _, _ in scenarios(args))} inventory hosts at most).", ""]
    for n, check, _tools in scenarios(args):
        if (n in args.scale and _tools == ["remedy"]) or _sweep(_tools):
            continue
        mode = "check mode" if check else "apply"
        parts += [f"### {n} host{'s' if n > 1 else ''}, {mode}", "", comparison_table(samples, n, check), ""]
    if args.scale:
        parts += ["### remedy at scale", "", scale_table(samples, args.scale), ""]
    if args.forks_sweep:
        parts += [f"### remedy at {args.forks_hosts} hosts by --forks", "",
                  forks_table(samples, args.forks_hosts, args.forks_sweep), ""]
    invalid = [s for s in samples if not s.ok]
    if invalid:
        parts += ["Invalid runs (not counted):", ""]
        parts += [f"- {s.tool} n={s.hosts} {'check' if s.check else 'apply'} rep {s.rep}: "
                  f"{'; '.join(s.problems[:2])}" for s in invalid]
        parts.append("")
    parts.append(end)
    return "\n".join(parts)


def _load_line(samples: list[Sample]) -> str:
    loads = sorted(s.load for s in samples) or [0.0]
    return (f"1-minute load average at the start of the runs: median {statistics.median(loads):.1f}, "
            f"max {loads[-1]:.1f} (on {os.cpu_count()} cores; anything above the tools' own load "
            "comes from other jobs on the machine).")


def write_results(path: Path, block: str, section: str = "") -> None:
    begin, end = markers(section)
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        text = head + block + tail
    else:
        text = text + ("\n" if text else "") + block + "\n"
    path.write_text(text)


def _sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=_sizes, default=[1, 10, 50], help="host counts (default 1,10,50)")
    parser.add_argument("--check-size", type=int, default=10, help="hosts for check mode (0: none)")
    parser.add_argument("--scale", type=_sizes, default=[200, 500], help="remedy-only sizes")
    parser.add_argument("--no-scale", dest="scale", action="store_const", const=[])
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma list of {', '.join(TOOLS)}")
    parser.add_argument("--reps", type=int, default=5, help="repetitions per scenario (default 5)")
    parser.add_argument("--slow-reps", type=int, default=3,
                        help="repetitions of default ansible at 50+ hosts (default 3)")
    parser.add_argument("--scale-reps", type=int, default=3, help="repetitions of remedy-only runs")
    parser.add_argument("--forks-sweep", type=_sizes, default=[],
                        help="remedy-only runs with each of these --forks (e.g. 20,50,100)")
    parser.add_argument("--forks-hosts", type=int, default=200, help="hosts of the --forks sweep")
    parser.add_argument("--listeners", type=int, default=0,
                        help="start this many sshd and spread the hosts over them (default: one per host)")
    parser.add_argument("--section", default="", help="the name of the RESULTS.md markers to replace")
    parser.add_argument("--timeout", type=float, default=3600.0, help="per run, seconds")
    parser.add_argument("--json", metavar="FILE", help="write every raw run here")
    parser.add_argument("--write-results", metavar="FILE", help="update the generated part of FILE")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    args.argv = argv
    unknown = [t for t in args.tools.split(",") if t and t not in TOOLS]
    if unknown:
        parser.error(f"unknown tools: {', '.join(unknown)}")
    return args


def _stop(signum: int, frame: object) -> None:
    """SIGTERM ends the run like Ctrl-C: the sshd hosts, the account and the work dir go."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _stop)
    if any(lookup(t).needs_venv for _, _, tools in scenarios(args) for t in tools):
        print("preparing benchmarks/.venv (ansible-core, pyinfra) ...", file=sys.stderr)
        ensure_venv()
    work = Path(tempfile.mkdtemp(prefix="remedy-bench-"))
    started = time.monotonic()
    try:
        samples = run_matrix(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - started
    versions = tool_versions()
    block = render(samples, args, versions, elapsed)
    print(block)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(s) for s in samples], indent=1))
    if args.write_results:
        write_results(Path(args.write_results), block, args.section)
    return 0 if all(s.ok for s in samples) else 1


if __name__ == "__main__":
    sys.exit(main())
