"""``remedy plan -o`` / ``remedy apply``: plans as CI artifacts, on local hosts.

A site of two local hosts whose fault is a missing marker file; the
inventory is a directory with ``group_vars/`` and ``host_vars/`` and the run
reads an ``-e @file``. Each refusal of ``apply`` is exit 4 with one line on
stderr, and leaves both hosts untouched.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runner.cli import commands
from runner.cli.program import main
from runner.plan.artifact import seal_plan

KEY = "a-plan-signing-key-of-32-bytes.."
BOOK = """
- hosts: all
  diagnose:
    - name: the marker is in place
      shell: "test -f {{ marker_dir }}/{{ inventory_hostname }} && echo present || echo missing"
      register: probe
      failed_when: "'missing' in probe.stdout"
  tasks:
    - name: write the marker
      copy:
        content: "{{ marker_text }} {{ greeting }}\\n"
        dest: "{{ marker_dir }}/{{ inventory_hostname }}"
"""


@dataclass
class Site:
    """A checkout (playbook, inventory dir, vars file) and two local hosts' marker dir."""

    root: Path
    capsys: pytest.CaptureFixture[str]

    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    @property
    def markers(self) -> Path:
        return self.root / "markers"

    def remedy(self, *argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err

    def make_plan(self, *extra: str) -> tuple[int, str, str]:
        return self.remedy("plan", "site.yml", "-i", "inventory", "-e", "@vars.yml", "-o", str(self.plan),
                           "--audit-log", "audit.jsonl", *extra)

    def apply(self, *extra: str) -> tuple[int, str, str]:
        return self.remedy("apply", str(self.plan), "--audit-log", "audit.jsonl", *extra)

    def refused(self, check: str, *extra: str) -> str:
        """``apply`` must refuse with exit 4 and one line naming ``check``; nothing is changed."""
        code, out, err = self.apply(*extra)
        assert code == 4, err
        assert err.count("\n") == 1 and err.startswith(f"remedy: apply refused: {self.plan}: {check}: "), err
        assert out == "" and self.fixed() == [], err
        return err

    def fixed(self) -> list[str]:
        return sorted(p.name for p in self.markers.iterdir())


@pytest.fixture
def site(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Site:
    monkeypatch.delenv("REMEDY_PLAN_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # relative paths on the command line, as in a CI checkout
    (tmp_path / "site.yml").write_text(BOOK)
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "host_vars").mkdir()
    (inventory / "hosts.ini").write_text("[web]\n" + "".join(
        f"{h} ansible_connection=local remedy_lock_path={tmp_path}/{h}.lock\n" for h in ("a", "b")))
    (inventory / "group_vars" / "web.yml").write_text(f"marker_dir: {tmp_path}/markers\n")
    (inventory / "host_vars" / "a.yml").write_text("marker_text: fixed-a\n")
    (inventory / "host_vars" / "b.yml").write_text("marker_text: fixed-b\n")
    (tmp_path / "vars.yml").write_text("greeting: hello\n")
    (tmp_path / "markers").mkdir()
    return Site(tmp_path, capsys)


def test_a_saved_plan_holds_every_input_file_by_absolute_path_with_its_sha256(site: Site) -> None:
    code, _, err = site.make_plan("--plan-ttl", "2h", "--detailed-exitcode")
    assert code == 10, err
    saved = json.loads(site.plan.read_text())
    names = ["site.yml", "inventory/hosts.ini", "inventory/group_vars/web.yml", "inventory/host_vars/a.yml",
             "inventory/host_vars/b.yml", "vars.yml"]
    assert saved["inputs"]["files"] == {str(site.root / n): hashlib.sha256((site.root / n).read_bytes())
                                        .hexdigest() for n in names}
    assert saved["inputs"]["playbooks"] == [str(site.root / "site.yml")]
    assert saved["inputs"]["inventory"] == [str(site.root / "inventory")]
    assert saved["inputs"]["extra_vars"] == [f"@{site.root / 'vars.yml'}"]
    created = datetime.strptime(saved["created"], "%Y-%m-%dT%H:%M:%SZ")
    assert datetime.strptime(saved["expires"], "%Y-%m-%dT%H:%M:%SZ") - created == timedelta(hours=2)
    assert saved["seal"]["hmac_sha256"] is None and site.fixed() == []


@pytest.mark.parametrize("command", ["plan", "run"])
def test_the_json_document_is_built_once_for_stdout_and_the_output_file(
    site: Site, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    built: list[str] = []

    def counted(name: str, build: Any) -> Any:
        def build_counted(*args: Any) -> Any:
            built.append(name)
            return build(*args)
        return build_counted

    monkeypatch.setattr(commands, "run_document", counted("run", commands.run_document))
    monkeypatch.setattr(commands, "slice_document", counted("slice", commands.slice_document))
    code, out, err = site.remedy(command, "site.yml", "-i", "inventory", "-e", "@vars.yml",
                                 "--format", "json", "-o", "out.json", "--slice", "1/1")
    assert code == 0, err
    assert sorted(built) == ["run", "slice"]
    printed, written = json.loads(out), json.loads((site.root / "out.json").read_text())
    assert printed["hosts"] == written["hosts"] and printed["slice"] == written["slice"]
    assert ("inputs" in written, "seal" in written) == ((command == "plan"),) * 2


def test_apply_runs_a_saved_plan_once_and_refuses_it_the_second_time(site: Site) -> None:
    assert site.make_plan()[0] == 0
    code, out, err = site.apply()
    assert code == 0, err
    assert site.fixed() == ["a", "b"]
    assert (site.markers / "a").read_text() == "fixed-a hello\n"
    assert "The run changed exactly what the saved plan predicted." in out
    plan_id = json.loads(site.plan.read_text())["plan_id"]
    records = [json.loads(line) for line in (site.root / "audit.jsonl").read_text().splitlines()]
    claims = [r for r in records if r["event"] == "plan_apply"]
    assert [(c["plan_id"], c["plan_file"]) for c in claims] == [(plan_id, str(site.plan))]
    assert records.index(claims[0]) < max(i for i, r in enumerate(records) if r["event"] == "run_start")
    for marker in site.markers.iterdir():  # the fault again: only the single use stops the plan now
        marker.unlink()
    err = site.refused("already applied")
    assert f"plan {plan_id} was applied at " in err and "make and review a new plan" in err


def test_apply_takes_the_output_options_of_run(site: Site) -> None:
    site.make_plan()
    code, out, err = site.apply("--junit", "apply.xml", "-o", "result.json", "--format", "markdown")
    assert code == 0, err
    assert out.startswith("### remedy run: exit 0 (ok), 2 of 2 hosts changed\n")
    assert "| a | changed | 1 | site: fixed |" in out and "RECAP" in err  # human output on stderr
    assert "<details><summary>diff of " in out and "+fixed-a hello\n" in out
    result = json.loads((site.root / "result.json").read_text())
    assert result["check"] is False and [h["status"] for h in result["hosts"]] == ["changed", "changed"]
    junit = (site.root / "apply.xml").read_text()
    assert 'classname="a.site"' in junit and 'name="site:' in junit, junit


def test_a_plan_changed_after_it_was_made_is_refused(site: Site) -> None:
    site.make_plan()
    site.plan.write_text(site.plan.read_text().replace('"host": "b"', '"host": "c"'))
    assert "its content does not match its sha256 seal" in site.refused("tampered")


def test_a_plan_whose_inputs_changed_is_refused_naming_the_file(site: Site) -> None:
    site.make_plan()
    group_vars = site.root / "inventory" / "group_vars" / "web.yml"
    group_vars.write_text(group_vars.read_text() + "# edited\n")
    assert f"{group_vars} changed since the plan was made" in site.refused("input changed")
    group_vars.write_text(group_vars.read_text().replace("# edited\n", ""))
    new = site.root / "inventory" / "group_vars" / "all.yml"
    new.write_text("unrelated: 1\n")
    assert f"{new} is read now but was not when the plan was made" in site.refused("input changed")
    new.unlink()
    (site.root / "inventory" / "host_vars" / "a.yml").rename(site.root / "inventory" / "host_vars" / "a.yaml")
    assert "host_vars/a.yml is gone or no longer read" in site.refused("input changed")


def test_an_expired_plan_is_refused(site: Site) -> None:
    site.make_plan()
    saved = json.loads(site.plan.read_text())
    for stale in ("plan_id", "created", "expires", "seal"):
        del saved[stale]
    site.plan.write_text(seal_plan(saved, now=datetime.now(UTC) - timedelta(hours=5), ttl=timedelta(hours=4),
                                   key=None))
    assert "(--plan-ttl sets how long it stays valid)" in site.refused("expired")


def test_a_signed_plan_is_applied_only_with_its_key(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDY_PLAN_KEY", KEY)
    assert site.make_plan()[0] == 0
    assert json.loads(site.plan.read_text())["seal"]["hmac_sha256"]
    monkeypatch.setenv("REMEDY_PLAN_KEY", "another-key-that-is-long-enough")
    assert "signed with another key than REMEDY_PLAN_KEY" in site.refused("signature")
    monkeypatch.delenv("REMEDY_PLAN_KEY")
    assert "the plan is signed but REMEDY_PLAN_KEY is not set" in site.refused("signature")
    monkeypatch.setenv("REMEDY_PLAN_KEY", KEY)
    assert site.apply()[0] == 0 and site.fixed() == ["a", "b"]


def test_an_unsigned_plan_is_refused_when_a_key_is_set(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    site.make_plan()
    monkeypatch.setenv("REMEDY_PLAN_KEY", KEY)
    assert "REMEDY_PLAN_KEY is set but the plan is not signed" in site.refused("unsigned")


@pytest.mark.parametrize(("option", "message"), [
    (["--plan-ttl", "forever"], "--plan-ttl 'forever' is not a duration from 1s to 30d"),
    (["--plan-ttl", "0m"], "is not a duration from 1s to 30d"),
])
def test_a_bad_plan_option_is_exit_4_before_any_host(site: Site, option: list[str], message: str) -> None:
    code, _, err = site.make_plan(*option)
    assert code == 4 and message in err
    assert not site.plan.exists() and not (site.root / "audit.jsonl").exists()


def test_a_short_signing_key_is_exit_4_before_any_host(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDY_PLAN_KEY", "too-short")
    code, _, err = site.make_plan()
    assert code == 4 and "REMEDY_PLAN_KEY is too short (9 bytes, at least 16)" in err
    assert not site.plan.exists() and not (site.root / "audit.jsonl").exists()


def test_a_plan_made_in_another_checkout_is_applied_from_this_one(
        site: Site, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    site.make_plan()
    job = tmp_path_factory.mktemp("apply-job") / "checkout"
    shutil.copytree(site.root, job, ignore=shutil.ignore_patterns("markers", "audit.jsonl"))
    for name in ("site.yml", "vars.yml"):  # the first checkout's own files are gone
        (site.root / name).unlink()
    monkeypatch.chdir(job)
    code, _, err = site.remedy("apply", "plan.json", "--audit-log", "audit.jsonl")
    assert code == 0, err
    assert f"the plan was made in {site.root}; reading its inputs under {job}" in err
    assert site.fixed() == ["a", "b"]  # group_vars of the copy: the same marker dir


def test_apply_replays_the_tags_and_skip_tags_of_the_plan(site: Site) -> None:
    book = site.root / "site.yml"
    book.write_text(BOOK.replace("    - name: write the marker", """    - name: write an extra marker
      tags: [extra]
      copy: {content: "extra\\n", dest: "{{ marker_dir }}/{{ inventory_hostname }}.extra"}
    - name: write the marker""") + "      tags: [marker]\n")
    assert site.make_plan("--tags", "marker,extra", "--skip-tags", "extra")[0] == 0
    code, _, err = site.apply()
    assert code == 0, err
    assert site.fixed() == ["a", "b"]  # the extra task is skipped again, as planned


def test_a_plan_whose_playbook_is_gone_or_broken_is_refused_before_it_is_loaded(site: Site) -> None:
    site.make_plan()
    book = site.root / "site.yml"
    book.write_text("- hosts: all\n  tasks: [\n")  # no longer even YAML
    assert f"{book} changed since the plan was made" in site.refused("input changed")
    book.unlink()
    assert f"{book} is gone or no longer read" in site.refused("input changed")


NOTE = """    - name: write the note
      copy:
        content: "{{ marker_text }} note\\n"
        dest: "{{ marker_dir }}/{{ inventory_hostname }}.note"
"""


def stale(site: Site, *hosts: str) -> str:
    """``apply`` refuses a stale plan: exit 4, a line naming the check, one line per host; nothing changed."""
    before = site.fixed()
    code, out, err = site.apply()
    assert code == 4 and out == "", err
    header, *paragraphs = err.splitlines()
    assert header.endswith(f": stale: {len(hosts)} of 2 hosts are no longer as planned"), err
    assert header.startswith(f"remedy: apply refused: {site.plan}: ")
    assert [p.split(" ", 3)[2] for p in paragraphs] == list(hosts), err
    assert site.fixed() == before, err
    return err


def test_a_plan_whose_fault_is_gone_from_a_host_is_refused_in_one_paragraph_per_host(site: Site) -> None:
    (site.root / "site.yml").write_text(BOOK + NOTE)
    assert site.make_plan("--detailed-exitcode")[0] == 10
    (site.markers / "b").write_text("fixed by hand\n")
    err = stale(site, "b")
    assert err.endswith("\n  b no longer has the fault: 2 planned changes are moot; make a new plan\n"), err
    assert "plan_apply" not in (site.root / "audit.jsonl").read_text()  # not used up: it never ran
    assert site.make_plan("--detailed-exitcode")[0] == 10 and site.apply()[0] == 0
    assert site.fixed() == ["a", "a.note", "b"]  # b is healthy: its note is not written
    assert (site.markers / "b").read_text() == "fixed by hand\n"


def test_a_plan_that_missed_a_fault_or_a_changed_prediction_is_refused_per_host(site: Site) -> None:
    (site.root / "site.yml").write_text(BOOK + NOTE)
    (site.markers / "a").write_text("fixed-a hello\n")  # a is healthy when the plan is made
    assert site.make_plan()[0] == 0
    (site.markers / "a").unlink()
    (site.markers / "b.note").write_text("fixed-b note\n")  # b's note is already what the plan would write
    err = stale(site, "a", "b")
    assert err.splitlines()[1:] == [
        "  a has a fault the plan did not find (site): 2 changes were not planned; make a new plan",
        "  b has 1 task no longer as planned: 'write the note' planned a change, now no change; "
        "make a new plan",
    ], err
