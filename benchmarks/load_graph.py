"""How much loading + validation + graph costs over parsing the YAML alone.

Generates a synthetic set of playbooks (by default 20 files x 500 tasks =
10,000 tasks, with ``requires`` chains inside each file and references across
files), then times, best of N:

  (a) ``yaml.safe_load`` of every file: PyYAML's pure-Python ``SafeLoader``,
      the baseline every Python YAML tool pays;
  (b) ``runner.inputs.load_inputs(files)``: remedy's strict loader, the
      playbook schema, module argument checks, template syntax checks, the
      task graph and its order.

and prints both and the ratio (b)/(a). Template and graph caches are cleared
before each repetition of (b), so every repetition is a cold ``remedy validate``.

    python benchmarks/load_graph.py [--files 20] [--tasks 500] [--repeat 5] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import platform
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.load import templating
from runner.load.inputs import load_inputs


def task_text(file_index: int, index: int) -> str:
    """One task; every kind of keyword a remediation playbook uses shows up regularly."""
    lines = [f"    - id: t{index:04d}", f"      name: step {index} of file {file_index}"]
    if index % 3 == 0:
        lines.append(f'      command: "systemctl is-active {{{{ service }}}}-{index}"')
        lines.append(f"      register: r{index}")
        lines.append("      failed_when: false")
    elif index % 3 == 1:
        lines.append("      debug:")
        lines.append(f'        msg: "checked {{{{ port }}}} for step {index}"')
        lines.append(f"      when: r{index - 1}.rc == 0")
    else:
        lines.append("      command:")
        lines.append(f"        argv: [/usr/bin/fuser, -k, \"{{{{ port }}}}/tcp\", --, step{index}]")
        lines.append("      tags: [fix, port]")
    if index % 10 == 0 and index:
        lines.append(f"      requires: [t{index - 10:04d}]")
    if index % 50 == 25 and file_index:
        lines.append(f"      requires: [file{file_index - 1:02d}:t{index:04d}]")
    if index % 100 == 99:
        lines.append("      requires: []")
    return "\n".join(lines)


def playbook_text(file_index: int, tasks: int) -> str:
    head = [
        f"# Synthetic playbook {file_index}.",
        f"- name: synthetic {file_index}",
        "  hosts: all",
        "  vars:",
        "    service: coze",
        "    port: 8080",
        "  tasks:",
    ]
    return "\n".join(head + [task_text(file_index, i) for i in range(tasks)]) + "\n"


def generate(directory: Path, files: int, tasks: int) -> list[str]:
    paths = []
    for index in range(files):
        path = directory / f"file{index:02d}.yml"
        path.write_text(playbook_text(index, tasks), encoding="utf-8")
        paths.append(str(path))
    return paths


def best_of(repeat: int, work: Callable[[], object], before: Callable[[], None] = lambda: None) -> float:
    best = float("inf")
    for _ in range(repeat):
        before()
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def clear_caches() -> None:
    templating._compile.cache_clear()
    templating._compile_expression.cache_clear()


def safe_load_all(paths: list[str]) -> None:
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            yaml.safe_load(handle)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=500, help="tasks per file")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of load_inputs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        paths = generate(Path(directory), args.files, args.tasks)
        inputs = load_inputs(paths)
        assert len(inputs.graph.order) == args.files * args.tasks
        baseline = best_of(args.repeat, lambda: safe_load_all(paths))
        remedy = best_of(args.repeat, lambda: load_inputs(paths), clear_caches)
        if args.profile:
            clear_caches()
            profile = cProfile.Profile()
            profile.runcall(load_inputs, paths)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
    print(f"python {platform.python_version()}, PyYAML {yaml.__version__} "
          f"(libyaml {'yes' if yaml.__with_libyaml__ else 'no'}), {platform.machine()}")
    print(f"{args.files} files x {args.tasks} tasks = {args.files * args.tasks} tasks, best of {args.repeat}")
    print(f"(a) yaml.safe_load (pure-Python SafeLoader): {baseline:8.3f} s")
    print(f"(b) load_inputs (load + validate + graph):   {remedy:8.3f} s")
    print(f"ratio (b)/(a): {remedy / baseline:.2f} (target <= 2.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
