"""Parity with ansible-inventory: every corpus case must resolve exactly as Ansible does.

Each directory under ``inventory_corpus/`` is one case, and so is each
example inventory under ``inventory/``. Its ``-i`` sources are
the lines of ``sources.txt`` (paths relative to the case, or comma lists), or
else the case directory itself. ``ansible-inventory`` runs on every case in a
clean environment (no user config, no caches): ``--list`` must equal
``to_ansible_json()``, ``host_json(H)`` must equal the variables ``--list``
gives H (``_meta.hostvars``, where ansible-inventory leaves out a host
without any) for every host, and ``--host H`` must equal ``host_json(H)`` for
the first and the last host and the implicit localhost. (ansible-inventory
builds ``--host`` and each ``_meta.hostvars`` entry with the same call; one
process per host made this module take minutes.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from runner.load.inventory import load_inventory
from runner.load.inventory.patterns import select_hosts

CORPUS = Path(__file__).parent / "inventory_corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
EXAMPLES = Path(__file__).parents[2] / "inventory"
SOURCES = {
    **{name: None for name in CASES},
    "example-ini": [str(EXAMPLES / "hosts.ini")],
    "example-yaml": [str(EXAMPLES / "hosts.yml")],
    "example-localhost": [str(EXAMPLES / "localhost" / "hosts.ini")],
}


@pytest.fixture(scope="module")
def oracle_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A clean environment for ansible-inventory; fails (not skips) when it is missing."""
    if shutil.which("ansible-inventory") is None:
        if os.environ.get("REMEDY_ALLOW_SKIP") == "1":
            pytest.skip("ansible-inventory not on PATH (REMEDY_ALLOW_SKIP=1)")
        pytest.fail(
            "ansible-inventory is not on PATH: pip install ansible-core "
            "(or set REMEDY_ALLOW_SKIP=1 to skip the parity tests)"
        )
    home = tmp_path_factory.mktemp("ansible-home")
    (home / "ansible.cfg").write_text("")
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANSIBLE_HOME": str(home / ".ansible"),
        "ANSIBLE_CONFIG": str(home / "ansible.cfg"),
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_IS_FAILED": "True",
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True",
        "ANSIBLE_NOCOLOR": "1",
        "LANG": "C.UTF-8",
        **{k: v for k, v in os.environ.items() if k.startswith("PYENV")},
    }


def case_sources(case: Path) -> list[str]:
    listing = case / "sources.txt"
    if not listing.exists():
        return [str(case)]
    lines = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    return [line if "," in line else str(case / line) for line in lines]


def ansible_inventory(env: dict[str, str], sources: list[str], *args: str) -> Any:
    command = ["ansible-inventory", *(x for s in sources for x in ("-i", s)), *args]
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=env["HOME"], timeout=120, check=False
    )
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stderr}"
    return json.loads(done.stdout)


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def test_the_corpus_has_at_least_25_cases() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", list(SOURCES))
def test_remedy_resolves_each_corpus_case_exactly_as_ansible_inventory(
    name: str, oracle_env: dict[str, str]
) -> None:
    sources = SOURCES[name] or case_sources(CORPUS / name)
    inventory = load_inventory(sources)
    hosts = list(inventory.hosts)
    sampled = dict.fromkeys([*hosts[:1], *hosts[-1:], "localhost"])
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        listed = pool.submit(ansible_inventory, oracle_env, sources, "--list")
        shown = {n: pool.submit(ansible_inventory, oracle_env, sources, "--host", n) for n in sampled}
    expected = listed.result()
    expected["_meta"].pop("profile", None)
    assert as_json(inventory.to_ansible_json()) == expected
    for host in hosts:
        assert as_json(inventory.host_json(host)) == expected["_meta"]["hostvars"].get(host, {}), host
    for host, future in shown.items():
        theirs = future.result()
        if inventory.get_host(host).implicit:  # type: ignore[union-attr]
            theirs.pop("ansible_python_interpreter")  # remedy needs no Python on hosts
        assert as_json(inventory.host_json(host)) == theirs, host


LIMITS = [
    ("ini_children", "paris:!par2"),
    ("patterns_demo", "db,alpha,!web02"),
    ("yaml_nested", "prod_db*"),
    ("ini_ranges", "web[2:4]:letters"),
]


@pytest.mark.parametrize(("name", "limit"), LIMITS)
def test_a_limited_listing_matches_ansible_inventory_limit(
    name: str, limit: str, oracle_env: dict[str, str]
) -> None:
    sources = case_sources(CORPUS / name)
    inventory = load_inventory(sources)
    expected = ansible_inventory(oracle_env, sources, "--list", "--limit", limit)
    expected["_meta"].pop("profile", None)
    keep = set(select_hosts(inventory, limit))
    assert as_json(inventory.restricted(keep).to_ansible_json()) == expected
