"""The tools under comparison: how each is installed, given its inventory, and started.

Every tool reaches the same sshd hosts with the same client key and checks
host keys against the same known_hosts file. Each ``Tool.prepare`` writes
the tool's own inventory (and config) into a fresh run directory and returns
the command line, environment and working directory of one run.

* ``remedy``: ``python -m runner run remedy.yml`` with its defaults;
  ``remedy-wide`` the same with ``--forks`` = the number of hosts (every host
  connected at once: what a host costs while it is open).
* ``remedy-forks-N`` (``forks_tool``): the same with ``--forks N``, for the
  sweep of ``--forks`` at one fleet size.
* ``floor``: ``benchmarks/floor.py``, paramiko directly.
* ``ansible``: ``ansible-playbook`` with default settings (forks 5, no
  pipelining, the default ``ssh_args`` with ControlPersist=60s); each run gets
  a fresh ControlPath directory so no master survives from an earlier run.
* ``ansible-tuned``: pipelining, ``ControlPersist=600s`` in ``ssh_args``,
  ``forks`` = the number of hosts, and the interpreter path given.
* ``pyinfra``: ``pyinfra inventory.py deploy.py -y`` (``--dry`` in check mode).

ansible-core and pyinfra live in ``benchmarks/.venv`` (``ensure_venv``), never
in remedy's own dependencies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKLOAD = HERE / "workload"
VENV = HERE / ".venv"
REPO = HERE.parent
#: Pinned so that a rerun on a fresh machine measures the same tools.
PINS = ("ansible-core==2.19.14", "pyinfra==3.10.0")


@dataclass(frozen=True)
class Fleet:
    """What every tool needs to reach the hosts."""

    user: str
    key: str
    known_hosts: str
    hosts: tuple[tuple[str, int, str], ...]  # (name, port, root)

    def as_json(self) -> dict[str, object]:
        return {
            "user": self.user,
            "key": self.key,
            "known_hosts": self.known_hosts,
            "hosts": [{"name": n, "address": "127.0.0.1", "port": p, "root": r} for n, p, r in self.hosts],
        }


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    cwd: Path


Prepare = Callable[[Path, Fleet, bool], Launch]


@dataclass(frozen=True)
class Tool:
    name: str
    prepare: Prepare
    needs_venv: bool = False
    check_mode: bool = True


def ensure_venv(*, quiet: bool = True) -> Path:
    """Create ``benchmarks/.venv`` with the pinned ansible-core and pyinfra; its bin directory."""
    bindir = VENV / "bin"
    marker = VENV / "pins.txt"
    if marker.exists() and marker.read_text().split() == list(PINS):
        return bindir
    if not (bindir / "python").exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    flags = ["-q"] if quiet else []
    subprocess.run([str(bindir / "python"), "-m", "pip", "install", *flags, "--upgrade", *PINS], check=True)
    marker.write_text("\n".join(PINS) + "\n")
    return bindir


def tool_versions() -> dict[str, str]:
    """Versions of the tools as installed (remedy from the working tree)."""
    versions = {"python": sys.version.split()[0]}
    probes = {
        "paramiko": [sys.executable, "-c", "import paramiko; print(paramiko.__version__)"],
        "remedy": [sys.executable, "-m", "runner", "--version"],
        "ansible-core": [str(VENV / "bin" / "ansible-playbook"), "--version"],
        "pyinfra": [str(VENV / "bin" / "pyinfra"), "--version"],
    }
    for name, argv in probes.items():
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False).stdout
        except OSError:
            continue
        first = out.strip().splitlines()[0] if out.strip() else ""
        versions[name] = first
    return versions


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PYINFRA_"))}
    env["PYTHONDONTWRITEBYTECODE"] = "0"
    return env


def _yaml_inventory(path: Path, fleet: Fleet, extra: dict[str, str], *, lock: bool = False) -> None:
    """An Ansible-style YAML inventory (JSON is YAML) read by remedy and ansible-playbook.

    ``lock``: each host's remedy lock file lives in its root (hosts share /tmp here).
    """
    hosts: dict[str, dict[str, object]] = {
        n: {"ansible_host": "127.0.0.1", "ansible_port": p, "bench_root": r} for n, p, r in fleet.hosts}
    if lock:
        for name, _, root in fleet.hosts:
            hosts[name]["remedy_lock_path"] = f"{root}/.remedy.lock"
    group_vars = {"ansible_user": fleet.user, "ansible_ssh_private_key_file": fleet.key, **extra}
    path.write_text(json.dumps({"all": {"vars": group_vars, "hosts": hosts}}, indent=1))


def _remedy(run_dir: Path, fleet: Fleet, check: bool, *, wide: bool = False, forks: int = 0) -> Launch:
    inventory = run_dir / "inventory.yml"
    _yaml_inventory(inventory, fleet, {"remedy_known_hosts": fleet.known_hosts}, lock=True)
    argv = [sys.executable, "-m", "runner", "run", str(WORKLOAD / "remedy.yml"), "-i", str(inventory),
            "--known-hosts", fleet.known_hosts, "--audit-log", str(run_dir / "audit.jsonl")]
    if check:
        argv.append("--check")
    if wide or forks:
        argv += ["--forks", str(forks or len(fleet.hosts))]
    env = _base_env()
    env["PYTHONPATH"] = str(REPO)
    return Launch(argv, env, run_dir)


def _floor(run_dir: Path, fleet: Fleet, check: bool) -> Launch:
    spec = run_dir / "fleet.json"
    spec.write_text(json.dumps(fleet.as_json()))
    return Launch([sys.executable, str(HERE / "floor.py"), str(spec)], _base_env(), run_dir)


_SSH_COMMON = "-o UserKnownHostsFile={kh} -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes"


def _ansible(run_dir: Path, fleet: Fleet, check: bool, *, tuned: bool) -> Launch:
    inventory = run_dir / "inventory.yml"
    _yaml_inventory(inventory, fleet, {"ansible_ssh_common_args": _SSH_COMMON.format(kh=fleet.known_hosts)})
    config = run_dir / "ansible.cfg"
    control = run_dir / "cp"
    control.mkdir()
    if tuned:
        config.write_text(
            "[defaults]\n"
            f"forks = {len(fleet.hosts)}\n"
            "interpreter_python = /usr/bin/python3\n"
            "[ssh_connection]\n"
            "pipelining = True\n"
            "ssh_args = -C -o ControlMaster=auto -o ControlPersist=600s\n"
        )
    else:
        config.write_text("[defaults]\n")  # every setting at its default
    env = _base_env()
    env["ANSIBLE_CONFIG"] = str(config)
    env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(control)
    env["ANSIBLE_LOCAL_TEMP"] = str(run_dir / "tmp")
    argv = [str(VENV / "bin" / "ansible-playbook"), "-i", str(inventory), str(WORKLOAD / "ansible.yml")]
    if check:
        argv.append("--check")
    return Launch(argv, env, run_dir)


def _pyinfra(run_dir: Path, fleet: Fleet, check: bool) -> Launch:
    inventory = run_dir / "inventory.py"
    hosts = [(n, {"ssh_hostname": "127.0.0.1", "ssh_port": p, "bench_root": r}) for n, p, r in fleet.hosts]
    data = {
        "ssh_user": fleet.user,
        "ssh_key": fleet.key,
        "ssh_known_hosts_file": fleet.known_hosts,
        "ssh_strict_host_key_checking": "yes",
        "ssh_allow_agent": False,
        "ssh_look_for_keys": False,
    }
    inventory.write_text(f"hosts = ({hosts!r}, {data!r})\n")
    argv = [str(VENV / "bin" / "pyinfra"), str(inventory), "deploy.py", "-y"]
    if check:
        argv.append("--dry")
    return Launch(argv, _base_env(), WORKLOAD)


def forks_tool(forks: int) -> Tool:
    """``remedy`` with ``--forks forks``, named ``remedy-forks-<forks>``."""
    name = f"remedy-forks-{forks}"
    return Tool(name, lambda d, f, c: _remedy(d, f, c, forks=forks))


TOOLS: dict[str, Tool] = {
    "remedy": Tool("remedy", _remedy),
    "remedy-wide": Tool("remedy-wide", lambda d, f, c: _remedy(d, f, c, wide=True)),
    "floor": Tool("floor", _floor, check_mode=False),
    "ansible": Tool("ansible", lambda d, f, c: _ansible(d, f, c, tuned=False), needs_venv=True),
    "ansible-tuned": Tool("ansible-tuned", lambda d, f, c: _ansible(d, f, c, tuned=True), needs_venv=True),
    "pyinfra": Tool("pyinfra", _pyinfra, needs_venv=True),
}


def lookup(name: str) -> Tool:
    """The tool called ``name``: one of ``TOOLS`` or a ``remedy-forks-N``."""
    if name.startswith("remedy-forks-"):
        return forks_tool(int(name.rpartition("-")[2]))
    return TOOLS[name]
