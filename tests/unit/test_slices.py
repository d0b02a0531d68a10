"""``--slice K/N`` (a stable share of the hosts) and ``remedy merge`` of the sliced runs' documents."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import yaml

from runner.cli.program import main
from runner.plan.hosts import in_slice
from tests.unit.test_change_budget import local_hosts
from tests.unit.test_cli_apply import Site, site  # noqa: F401 - the fixture of a saved plan's site
from tests.unit.test_executor import mark_module  # noqa: F401 - the autouse fixture that adds "mark"

HOSTS = "abcdefghijkl"
#: sha256 of the name, first 8 bytes big-endian, modulo 3, plus 1: pinned, so no release moves a host.
SLICE_OF_3 = {"a": 2, "b": 2, "c": 3, "d": 3, "e": 3, "f": 1, "g": 3, "h": 3, "i": 1, "j": 1, "k": 2, "l": 2}


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    """Twelve local hosts; host 'c' fails its fix."""
    task = {"mark": {"name": "{{ inventory_hostname }}", "log": f"{tmp_path}/log",
                     "fail": "{{ inventory_hostname == 'c' }}"}}
    (tmp_path / "book.yml").write_text(yaml.safe_dump([{"hosts": "all", "tasks": [task]}]))
    (tmp_path / "hosts.ini").write_text(local_hosts(tmp_path, HOSTS))
    return tmp_path


def remedy(fleet: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    audit = ["--audit-log", str(fleet / "audit.jsonl")] if args[0] != "merge" else []
    code = main([*args, *audit])
    out, err = capsys.readouterr()
    return code, out, err


def on_fleet(fleet: Path, capsys: pytest.CaptureFixture[str], command: str,
             *args: str) -> tuple[int, str, str]:
    """``remedy COMMAND`` with the fleet's playbook and inventory."""
    return remedy(fleet, capsys, command, str(fleet / "book.yml"), "-i", str(fleet / "hosts.ini"), *args)


def sliced(fleet: Path, capsys: pytest.CaptureFixture[str], command: str, index: int, *args: str) -> Path:
    """``remedy COMMAND --slice INDEX/3 --format json`` on the fleet, its document kept in a file."""
    code, out, err = on_fleet(fleet, capsys, command, "--slice", f"{index}/3", "--format", "json", *args)
    assert json.loads(out)["exit_code"] == code, err
    path = fleet / f"{command}-{index}{len(args)}.json"
    path.write_text(out)
    return path


def logged(fleet: Path) -> list[str]:
    log = fleet / "log"
    return sorted(log.read_text().split()) if log.exists() else []


def test_each_host_is_in_exactly_one_slice_by_its_pinned_hash() -> None:
    assert {h: next(k for k in (1, 2, 3) if in_slice(h, k, 3)) for h in HOSTS} == SLICE_OF_3
    names = [f"web{i:03d}.example.com" for i in range(300)]
    for count in (1, 2, 5, 7):
        assert sorted(sum(([n for n in names if in_slice(n, k, count)] for k in range(1, count + 1)), [])) \
            == sorted(names)


def test_a_slice_runs_only_its_hosts(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = json.loads(sliced(fleet, capsys, "run", 1, "-o", str(fleet / "out.json")).read_text())
    assert json.loads((fleet / "out.json").read_text()) == document  # -o: the same document
    assert [h["host"] for h in document["hosts"]] == ["f", "i", "j"] == logged(fleet)
    assert document["slice"]["index"] == 1 and document["slice"]["count"] == 3
    assert document["exit_code"] == 0


def test_three_merged_slices_are_the_unsliced_run(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(sliced(fleet, capsys, "run", k)) for k in (3, 1, 2)]
    assert logged(fleet) == sorted(HOSTS)
    code, out, err = remedy(fleet, capsys, "merge", *files, "--format", "json", "--junit",
                            str(fleet / "m.xml"))
    assert out, err
    merged = json.loads(out)
    (fleet / "log").unlink()
    whole_code, whole_out, _ = on_fleet(fleet, capsys, "run", "--format", "json")
    whole = json.loads(whole_out)

    def results(document: dict) -> list[tuple]:  # type: ignore[type-arg]
        return sorted((h["host"], h["status"], tuple((t["task"], t["status"]) for t in h["tasks"]))
                      for h in document["hosts"])

    assert [h["host"] for h in merged["hosts"]] == sorted(HOSTS, key=lambda h: SLICE_OF_3[h])
    assert results(merged) == results(whole)
    assert (code, merged["exit_code"]) == (whole_code, whole["exit_code"]) == (2, 2)
    assert [s["index"] for s in merged["slice"]["merged"]] == [1, 2, 3]
    assert "merged 3 of 3 slices (12 hosts)" in err and "RECAP" in err
    suites = ET.parse(fleet / "m.xml").getroot().findall("testsuite")
    assert sorted(s.get("name") for s in suites) == sorted(HOSTS)
    assert [s.get("failures") for s in suites if s.get("name") == "c"] == ["1"]


def test_a_missing_slice_makes_the_merge_incomplete(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(sliced(fleet, capsys, "run", k)) for k in (1, 2)]  # slice 3 holds 'c', which fails
    code, out, _ = remedy(fleet, capsys, "merge", *files)
    assert code == 7
    assert "run incomplete: slices not merged: 3/3" in out and "missing: 3/3" in out


def test_the_merged_exit_code_is_the_worst_by_precedence(
        fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(sliced(fleet, capsys, "run", k)) for k in (1, 3)]
    assert remedy(fleet, capsys, "merge", *files)[0] == 2  # a failure is worse than a missing slice


def test_merge_refuses_documents_that_are_not_slices_of_one_run(
        fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one, two = sliced(fleet, capsys, "run", 1), sliced(fleet, capsys, "run", 2)
    checked = sliced(fleet, capsys, "run", 3, "--check")
    other = sliced(fleet, capsys, "run", 3, "--limit", "c,d")
    twice = fleet / "twice.json"
    twice.write_text(one.read_text().replace('"index": 1', '"index": 3'))
    whole = fleet / "whole.json"
    whole.write_text(json.dumps({**json.loads(one.read_text()), "slice": None}))
    broken = fleet / "broken.json"
    broken.write_text("{not json")
    cases = [([one, two, checked], f"{checked}: a check run, unlike the one than {one}"),
             ([one, other], f"{other}: made from other inputs"),
             ([one, two, one], f"{one}: slice 1/3 is also {one}"),
             ([one, twice], f"{twice}: host f is also in {one}"),
             ([one, whole], f"{whole}: not the document of a sliced run"),
             ([broken, one], f"{broken}: cannot read a JSON document")]
    for files, message in cases:
        code, out, err = remedy(fleet, capsys, "merge", *map(str, files), "-o", str(fleet / "merged.json"))
        assert (code, out) == (4, ""), err
        assert message in err
        assert not (fleet / "merged.json").exists()


@pytest.mark.parametrize("value", ["0/3", "4/3", "3", "a/b", "1/0", "-1/3", "1/3/3"])
def test_a_bad_slice_is_exit_4_before_any_host(fleet: Path, capsys: pytest.CaptureFixture[str],
                                               value: str) -> None:
    for command in ("run", "plan", "diagnose"):
        code, out, err = on_fleet(fleet, capsys, command, f"--slice={value}")
        assert (code, out) == (4, ""), err
        assert f"--slice {value!r} is not K/N with whole numbers 1 <= K <= N" in err
    assert logged(fleet) == []


def test_a_slice_without_hosts_is_a_run_of_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "book.yml").write_text("- hosts: all\n  tasks:\n    - command: 'true'\n")
    (tmp_path / "hosts.ini").write_text(local_hosts(tmp_path, ["only"]))  # slice 2 of 2
    code, out, err = on_fleet(tmp_path, capsys, "run", "--slice", "1/2", "--format", "json")
    assert (code, json.loads(out)["hosts"]) == (0, [])
    assert "slice 1/2 holds none of the selected hosts: nothing to do" in err


def test_a_saved_plan_records_its_slice_and_apply_runs_only_its_hosts(site: Site) -> None:  # noqa: F811
    code, _, err = site.make_plan("--slice", "1/5")  # a is in slice 1 of 5, b in slice 2
    assert code == 0, err
    saved = json.loads(site.plan.read_text())
    assert saved["inputs"]["slice"] == "1/5" and [h["host"] for h in saved["hosts"]] == ["a"]
    code, _, err = site.apply()
    assert code == 0, err
    assert site.fixed() == ["a"]
