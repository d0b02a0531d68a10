"""The blast-radius budget: ``max_hosts_changed`` on a play, ``--max-changed`` on the command line."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml

from runner.results import HostResult, Run, Status, TaskResult, worst_exit
from runner.run.budget import ChangeBudget
from tests.unit.test_cli_batches import logged
from tests.unit.test_cli_batches import remedy as run_site
from tests.unit.test_executor import mark_module  # noqa: F401 - the autouse fixture that adds "mark"

HOSTS = "abcdef"


def local_hosts(root: Path, names: Iterable[str]) -> str:
    """An INI inventory of local hosts, each with its lock under ``root`` (no run elsewhere shares it)."""
    return "".join(f"{h} ansible_connection=local remedy_lock_path={root}/{h}.lock\n" for h in names)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """Six local hosts; one fix task that logs the host's name."""
    task = {"mark": {"name": "{{ inventory_hostname }}", "log": f"{tmp_path}/log"}}
    (tmp_path / "book.yml").write_text(yaml.safe_dump([{"hosts": "all", "tasks": [task]}], sort_keys=False))
    (tmp_path / "hosts.ini").write_text(local_hosts(tmp_path, HOSTS))
    return tmp_path


def remedy(site: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    """``remedy run`` on the site, as JSON."""
    return run_site(site, capsys, "run", *args)


def test_past_the_budget_hosts_change_nothing_their_fix_is_not_run_and_the_run_exits_7(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, document, err = remedy(site, capsys, "--max-changed", "2", "--forks", "6")
    assert code == 7
    changed = sorted(logged(site))
    assert len(changed) == 2
    statuses = {h["host"]: h["status"] for h in document["hosts"]}
    assert sorted(h for h, s in statuses.items() if s == "changed") == changed
    held = sorted(h for h, s in statuses.items() if s == "not_run")
    assert held == sorted(set(HOSTS) - set(changed)) == sorted(document["over_budget"])
    for host in document["hosts"]:
        if host["host"] in held:
            (task,) = host["tasks"]  # planned (predicted), not run
            assert (task["message"], task.get("predicted"), task["changed"]) == (
                "blast-radius budget: 2 hosts changed", "change", False)
    assert document["exit_code"] == 7
    assert "run incomplete: blast-radius budget: 2 hosts changed; not changed: " in err


def test_the_plays_percentage_is_of_the_runs_hosts_and_the_command_line_overrides_it(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = site / "book.yml"
    book.write_text(book.read_text().replace("- hosts: all\n", '- hosts: all\n  max_hosts_changed: "50%"\n'))
    code, _, _ = remedy(site, capsys)
    assert (code, len(logged(site))) == (7, 3)
    (site / "log").unlink()
    code, _, _ = remedy(site, capsys, "--max-changed", "100%")
    assert (code, len(logged(site))) == (0, 6)


def test_a_budget_as_large_as_the_run_exits_0(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, document, _ = remedy(site, capsys, "--max-changed", "6")
    assert (code, document["over_budget"], document["incomplete"]) == (0, [], None)
    assert sorted(logged(site)) == list(HOSTS)


def test_a_healthy_host_consumes_no_budget(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = site / "book.yml"
    book.write_text(book.read_text().replace("- hosts: all\n", """- hosts: all
  diagnose:
    - assert:
        that: inventory_hostname not in ['b', 'e']
"""))
    code, document, _ = remedy(site, capsys, "--max-changed", "2")
    assert code == 0
    assert sorted(logged(site)) == ["b", "e"]
    assert {h["status"] for h in document["hosts"] if h["host"] not in "be"} == {"healthy"}


def test_check_mode_never_consumes_the_budget(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, document, _ = remedy(site, capsys, "--check", "--max-changed", "1")
    assert code == 0
    assert logged(site) == []
    assert [t.get("predicted") for h in document["hosts"] for t in h["tasks"]] == ["change"] * 6


def test_the_budget_holds_with_serial_batches(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, document, _ = remedy(site, capsys, "--max-changed", "3", "--serial", "2")
    assert code == 7
    changed = sorted(logged(site))  # batch a, b; then one of c, d (in parallel); e, f: none
    assert changed in (["a", "b", "c"], ["a", "b", "d"])
    assert document["over_budget"] == sorted(set(HOSTS) - set(changed))


@pytest.mark.parametrize("value", ["0", "-1", "0%", "101%", "many", "1.5"])
def test_a_bad_max_changed_is_exit_4_before_any_host(
        site: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    code, document, err = remedy(site, capsys, f"--max-changed={value}")
    assert (code, document) == (4, {})
    assert f"--max-changed {value!r} is not a positive count" in err
    assert logged(site) == []


@pytest.mark.parametrize("value", ["0", "'0%'", "'150%'", "lots", "true"])
def test_a_bad_max_hosts_changed_is_exit_4_naming_the_line(
        site: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    book = site / "book.yml"
    text = book.read_text().replace("- hosts: all\n", f"- hosts: all\n  max_hosts_changed: {value}\n")
    book.write_text(text)
    code, _, err = remedy(site, capsys)
    assert code == 4
    assert "book.yml:2" in err
    assert "must be a positive count of hosts or a percentage" in err
    assert logged(site) == []


def test_parallel_claims_never_exceed_the_limit() -> None:
    budget = ChangeBudget(3)
    start = threading.Barrier(32)
    granted: list[str] = []
    lock = threading.Lock()

    def claim(host: str) -> None:
        start.wait()
        if budget.claim(host):
            with lock:
                granted.append(host)
        assert budget.claim(host) is (host in granted)  # a host's later plays: the same answer

    threads = [threading.Thread(target=claim, args=(f"h{i}",)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 3
    assert budget.held() == {f"h{i}" for i in range(32)} - set(granted)


def host(name: str, status: Status) -> HostResult:
    return HostResult(name, (TaskResult(name, "book:fix", "fix", status),), status)


@pytest.mark.parametrize(("hosts", "held", "code"), [
    ((host("a", Status.CHANGED), host("b", Status.NOT_RUN)), ("b",), 7),
    ((host("a", Status.FAILED), host("b", Status.NOT_RUN)), ("b",), 2),  # a failure is worse
    ((host("a", Status.UNREACHABLE), host("b", Status.NOT_RUN)), ("b",), 3),
    ((host("a", Status.NOT_RUN), host("b", Status.NOT_RUN)), ("b",), 2),  # a not run for another reason
    ((host("a", Status.CHANGED), host("b", Status.OK)), (), 0),
])
def test_incomplete_is_exit_7_only_when_nothing_is_worse(hosts: tuple[HostResult, ...], held: tuple[str, ...],
                                                        code: int) -> None:
    assert Run("r", hosts, over_budget=held, incomplete="budget" if held else "").exit_code == code


def test_the_exit_code_of_several_runs_is_the_worst_not_the_highest() -> None:
    assert worst_exit(0, 7, 2) == 2  # a failure is worse than an incomplete run
    assert worst_exit(7, 6) == 6 and worst_exit(3, 7) == 3 and worst_exit(0, 7) == 7
    assert worst_exit(99, 5) == 5 and worst_exit(7, 0, 0) == 7
