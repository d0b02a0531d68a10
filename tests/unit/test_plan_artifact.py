"""Saved plans as artifacts: sealing, signing, expiry, input files, relocation and single use."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runner.errors import InputError, PlanRefusedError
from runner.load.inventory import load_inventory
from runner.output.audit import claim_plan, plan_applied
from runner.plan.artifact import (
    check_inputs,
    input_files,
    open_plan,
    parse_ttl,
    plan_key,
    relocate,
    seal_plan,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
KEY = b"k" * 32
DOCUMENT = {"version": 1, "hosts": [{"host": "web|01", "tasks": []}],
            "inputs": {"playbooks": [], "inventory": [], "extra_vars": [], "files": {}}}


def saved(tmp_path: Path, *, key: bytes | None = None, now: datetime = NOW, ttl: str = "1h") -> Path:
    path = tmp_path / "plan.json"
    path.write_text(seal_plan(DOCUMENT, now=now, ttl=parse_ttl(ttl), key=key), encoding="utf-8")
    return path


def refusal(path: Path, *, key: bytes | None = None, now: datetime = NOW) -> PlanRefusedError:
    with pytest.raises(PlanRefusedError) as caught:
        open_plan(str(path), key=key, now=now)
    assert "\n" not in str(caught.value)
    return caught.value


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("1h", 3600), (" 2d ", 172800),
                                               ("30d", 2592000)])
def test_a_plan_ttl_is_a_number_and_a_unit(text: str, seconds: int) -> None:
    assert parse_ttl(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "0s", "1", "h", "1.5h", "-1h", "31d", "1w", "99999999999s"])
def test_a_bad_plan_ttl_is_an_input_error_that_shows_the_syntax(text: str) -> None:
    with pytest.raises(InputError, match=r"--plan-ttl .* is not a duration from 1s to 30d"):
        parse_ttl(text)


def test_the_key_comes_from_the_environment_and_must_be_long_enough() -> None:
    assert plan_key({}) is None and plan_key({"REMEDY_PLAN_KEY": "  \n"}) is None
    assert plan_key({"REMEDY_PLAN_KEY": "0123456789abcdef\n"}) == b"0123456789abcdef"
    with pytest.raises(InputError, match=r"REMEDY_PLAN_KEY is too short \(5 bytes, at least 16\)"):
        plan_key({"REMEDY_PLAN_KEY": "short"})


def test_a_sealed_plan_opens_with_its_id_times_and_seal(tmp_path: Path) -> None:
    plan = open_plan(str(saved(tmp_path, ttl="2h")), key=None, now=NOW + timedelta(minutes=119))
    assert plan["created"] == "2026-05-01T12:00:00Z" and plan["expires"] == "2026-05-01T14:00:00Z"
    assert len(plan["plan_id"]) == 32 and plan["seal"]["hmac_sha256"] is None
    assert plan["hosts"] == DOCUMENT["hosts"]


def test_two_plans_of_the_same_document_have_different_ids(tmp_path: Path) -> None:
    first = json.loads(saved(tmp_path).read_text())["plan_id"]
    assert json.loads(saved(tmp_path).read_text())["plan_id"] != first


@pytest.mark.parametrize("key", [None, KEY])
def test_a_change_of_any_byte_is_refused(tmp_path: Path, key: bytes | None) -> None:
    path = saved(tmp_path, key=key)
    original = path.read_bytes()
    for index in range(len(original)):  # every single byte, one at a time, the seal's too
        changed = bytearray(original)
        changed[index] = ord("x") if changed[index] != ord("x") else ord("y")
        path.write_bytes(bytes(changed))
        error = refusal(path, key=key)
        assert error.check in ("tampered", "damaged", "signature"), (index, str(error))
    path.write_bytes(original)
    open_plan(str(path), key=key, now=NOW)


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda t: t.replace('"web|01"', '"web|02"'), "does not match its sha256 seal"),
    (lambda t: t.replace("\n  ", "\n   ", 1), "not byte for byte as remedy wrote it"),
    (lambda t: t + " ", "not byte for byte as remedy wrote it"),
    (lambda t: t[:-20], "no longer the JSON document remedy wrote"),
])
def test_each_kind_of_change_says_what_it_found(tmp_path: Path, edit: Any, reason: str) -> None:
    path = saved(tmp_path)
    path.write_text(edit(path.read_text()))
    error = refusal(path)
    assert error.check == "tampered" and reason in str(error)
    assert "make and review a new plan" in str(error)


def test_a_json_file_that_is_no_plan_is_refused_as_damaged(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"hosts": [], "inputs": {}}))
    assert refusal(path).check == "damaged"


def test_a_plan_expires_at_its_ttl(tmp_path: Path) -> None:
    path = saved(tmp_path, ttl="1h")
    open_plan(str(path), key=None, now=NOW + timedelta(minutes=59, seconds=59))
    error = refusal(path, now=NOW + timedelta(hours=1))
    assert error.check == "expired"
    assert "the plan expired at 2026-05-01T13:00:00Z (made at 2026-05-01T12:00:00Z" in str(error)


def test_a_signed_plan_opens_only_with_its_key(tmp_path: Path) -> None:
    path = saved(tmp_path, key=KEY)
    assert open_plan(str(path), key=KEY, now=NOW)["seal"]["hmac_sha256"]
    assert refusal(path, key=b"o" * 32).check == "signature"
    error = refusal(path, key=None)
    assert error.check == "signature" and "set REMEDY_PLAN_KEY to the key it was signed with" in str(error)


def test_an_unsigned_plan_is_refused_when_a_key_is_set(tmp_path: Path) -> None:
    error = refusal(saved(tmp_path), key=KEY)
    assert error.check == "unsigned" and "REMEDY_PLAN_KEY is set but the plan is not signed" in str(error)


def test_a_signed_plan_changed_and_sealed_again_without_the_key_is_refused(tmp_path: Path) -> None:
    path = saved(tmp_path, key=KEY)
    forged = json.loads(path.read_text())
    forged["hosts"][0]["host"] = "db01"
    signature = forged.pop("seal")["hmac_sha256"]
    text = seal_plan(forged, now=NOW, ttl=timedelta(hours=1), key=None)
    document = json.loads(text)
    document["seal"]["hmac_sha256"] = signature  # the old signature on a new, correctly hashed body
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    assert refusal(path, key=KEY).check == "signature"


def test_inventory_files_are_hashed_as_read_with_group_and_host_vars(tmp_path: Path) -> None:
    (tmp_path / "hosts.ini").write_text("[web]\na\nb\n")
    for name in ("group_vars/web.yml", "host_vars/a.yml", "group_vars/nogroup.yml"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x: 1\n")
    inventory = load_inventory([str(tmp_path / "hosts.ini")])
    assert sorted(inventory.files) == [str(tmp_path / n) for n in ("group_vars/web.yml", "host_vars/a.yml",
                                                                  "hosts.ini")]
    extra = tmp_path / "extra.yml"
    extra.write_text("y: 2\n")
    files = input_files(["book.yml"], inventory.files, ["k=v", f"@{extra}"])
    assert files[str(extra)] == hashlib.sha256(b"y: 2\n").hexdigest()
    assert files[str(tmp_path / "hosts.ini")] == hashlib.sha256(b"[web]\na\nb\n").hexdigest()
    assert files[str(Path("book.yml").absolute())] == ""  # not there: no hash, refused at apply


def test_changed_gone_and_new_input_files_are_refused_one_line_each() -> None:
    planned = {"/a": "1", "/b": "2"}
    check_inputs("plan.json", planned, dict(planned))
    for now, message in (({"/a": "1", "/b": "3"}, "/b changed since the plan was made"),
                         ({"/a": "1"}, "/b is gone or no longer read"),
                         ({**planned, "/c": "4"}, "/c is read now but was not when the plan was made"),
                         ({"/a": "9", "/c": "4"}, "/a changed since the plan was made (and 2 more)")):
        with pytest.raises(PlanRefusedError, match="input changed") as caught:
            check_inputs("plan.json", planned, now)
        assert message in str(caught.value) and "\n" not in str(caught.value)


def test_inputs_of_a_plan_made_in_another_checkout_are_read_from_this_one(tmp_path: Path) -> None:
    here = tmp_path / "job2"
    (here / "inventory").mkdir(parents=True)
    (here / "inventory" / "hosts.ini").write_text("a\n")
    (here / "vars.yml").write_text("x: 1\n")
    inputs = {"playbooks": ["/job1/site.yml", "/elsewhere/book.yml"],
              "inventory": ["/job1/inventory/hosts.ini", "a,b,"],
              "extra_vars": ["@/job1/vars.yml", "k=v"], "files": {"/job1/inventory/hosts.ini": "h"},
              "roots": {"workdir": "/job1"}}
    moved = relocate(inputs, {"workdir": str(here)})
    assert moved["playbooks"] == ["/job1/site.yml", "/elsewhere/book.yml"]  # not here: kept
    assert moved["inventory"] == [f"{here}/inventory/hosts.ini", "a,b,"]
    assert moved["extra_vars"] == [f"@{here}/vars.yml", "k=v"]
    assert moved["files"] == {f"{here}/inventory/hosts.ini": "h"}
    assert relocate(inputs, {"workdir": "/job1"}) == inputs


def test_a_plan_is_claimed_once_in_the_audit_log(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    assert plan_applied(log, "p1") == ""
    assert claim_plan(log, "p1", plan_sha256="s") == ""
    assert plan_applied(log, "p1") != "" and plan_applied(log, "p2") == ""
    assert claim_plan(log, "p1", plan_sha256="s") == plan_applied(log, "p1")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["event"], r["plan_id"], r["plan_sha256"]) for r in records] == [("plan_apply", "p1", "s")]


def test_of_many_concurrent_claims_of_one_plan_exactly_one_wins(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    start = threading.Barrier(8)
    results: list[str] = []

    def claim() -> None:
        start.wait()
        results.append(claim_plan(log, "p1"))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("") == 1 and len(results) == 8
    assert len(log.read_text().splitlines()) == 1
