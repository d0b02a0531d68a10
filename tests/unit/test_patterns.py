"""Host patterns: Ansible's --limit semantics, and errors where Ansible only warns."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from runner.errors import InventoryError
from runner.load.inventory import Inventory, load_inventory
from runner.load.inventory.patterns import (
    HostPatternError,
    check_host_name,
    check_user,
    expand_ranges,
    select_hosts,
    split_pattern,
    split_port,
)

DEMO = Path(__file__).parent / "inventory_corpus" / "patterns_demo"
ALL = ["solo", "db01", "web02", "p1", "alone", "web01", "web03"]


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return load_inventory([DEMO])


def problem_text(error: pytest.ExceptionInfo[InventoryError]) -> str:
    return "\n".join(f"{p.message} | {p.hint}" for p in error.value.problems)


# --- selection, checked by hand against `ansible PATTERN --list-hosts` ------------------

SELECTIONS = {
    "all": ALL,
    "*": ALL,
    "a*": ALL,  # matches the group 'all' (and 'alpha'), as in Ansible
    "web": ["web01", "web02", "web03"],
    "prod": ["p1", "web01", "web02", "web03"],
    "ungrouped": ["solo"],
    "web01": ["web01"],
    "web01,db": ["web01", "db01", "web02"],
    "web01:db": ["web01", "db01", "web02"],
    "web:&db": ["web02"],
    "&db:web": ["web02"],
    "!db:web": ["web01", "web03"],
    "prod:!web": ["p1"],
    "web0?": ["web01", "web02", "web03"],
    "~web0[13]": ["web01", "web03"],
    "web[0:1]": ["web01", "web02"],
    "web[1:]": ["web02", "web03"],
    "web[-1]": ["web03"],
    "web*[1]": ["web02"],
    "prod[0]": ["p1"],
    "localhost": ["localhost"],
    "!web": ["solo", "db01", "p1", "alone"],
}


@pytest.mark.parametrize("pattern", list(SELECTIONS))
def test_each_pattern_form_selects_the_hosts_ansible_selects(inventory: Inventory, pattern: str) -> None:
    assert select_hosts(inventory, pattern) == SELECTIONS[pattern]


def test_intersections_and_exclusions_apply_after_every_plain_part(inventory: Inventory) -> None:
    assert select_hosts(inventory, "!web02:web:&prod:db") == ["web01", "web03"]


def test_a_list_of_patterns_is_one_union(inventory: Inventory) -> None:
    assert select_hosts(inventory, ["web01", "alpha"]) == ["web01", "alone"]


def test_limit_keeps_the_play_pattern_order(inventory: Inventory) -> None:
    assert select_hosts(inventory, "prod", limit="db") == ["web02"]
    assert select_hosts(inventory, "all", limit="web03,solo") == ["solo", "web03"]


def test_an_at_file_holds_one_pattern_per_line(inventory: Inventory, tmp_path: Path) -> None:
    retry = tmp_path / "site.retry"
    retry.write_text("web01\n\ndb\n!web02\n")
    assert select_hosts(inventory, f"@{retry}") == ["web01", "db01"]
    assert select_hosts(inventory, "all", limit=f"@{retry}") == ["db01", "web01"]


def test_an_unreadable_at_file_is_an_error(inventory: Inventory, tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="cannot read host pattern file"):
        select_hosts(inventory, f"@{tmp_path / 'missing.retry'}")


# --- errors -------------------------------------------------------------------------


def test_a_pattern_matching_nothing_is_an_error_with_a_did_you_mean(inventory: Inventory) -> None:
    with pytest.raises(InventoryError) as error:
        select_hosts(inventory, "webz")
    assert "host pattern 'webz' matches no host or group (did you mean 'web'?)" in problem_text(error)


def test_a_typo_in_an_exclusion_is_an_error_not_a_silent_no_op(inventory: Inventory) -> None:
    with pytest.raises(InventoryError, match="'!prodction' matches no host or group"):
        select_hosts(inventory, "all:!prodction")


def test_every_unmatched_part_is_reported_at_once(inventory: Inventory) -> None:
    with pytest.raises(InventoryError) as error:
        select_hosts(inventory, "nope1,web,nope2")
    assert len(error.value.problems) == 2


def test_an_intersection_that_leaves_nothing_is_an_error(inventory: Inventory) -> None:
    with pytest.raises(InventoryError, match="'web:&alpha' selects no hosts"):
        select_hosts(inventory, "web:&alpha")


def test_a_limit_that_excludes_every_play_host_is_an_error(inventory: Inventory) -> None:
    with pytest.raises(InventoryError, match="selects no hosts within --limit 'alpha'"):
        select_hosts(inventory, "web", limit="alpha")


def test_a_subscript_past_the_end_is_an_error(inventory: Inventory) -> None:
    with pytest.raises(InventoryError) as error:
        select_hosts(inventory, "web[5]")
    assert "numbered 0 to 2" in problem_text(error)


def test_a_regex_is_anchored_at_the_start_like_ansible(inventory: Inventory) -> None:
    with pytest.raises(InventoryError, match="'~eb' matches no host or group"):
        select_hosts(inventory, "~eb")


def test_an_invalid_regex_is_an_error(inventory: Inventory) -> None:
    with pytest.raises(InventoryError, match="invalid regular expression"):
        select_hosts(inventory, "~web(")


def test_a_pattern_that_cannot_be_split_is_an_error_not_all_hosts(inventory: Inventory) -> None:
    with pytest.raises(InventoryError, match="cannot split host pattern"):
        select_hosts(inventory, "~[")


# --- splitting ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "parts"),
    [
        ("a:b", ["a", "b"]),
        ("a, b ,c", ["a", "b", "c"]),
        ("web:&prod:!db", ["web", "&prod", "!db"]),
        ("web[0:2]", ["web[0:2]"]),
        ("web[0:2]:db", ["web[0:2]", "db"]),
        ("::1", ["::1"]),
        ("fe80::1,db", ["fe80::1", "db"]),
    ],
)
def test_patterns_split_on_commas_or_colons_but_keep_addresses_and_ranges(
    pattern: str, parts: list[str]
) -> None:
    assert split_pattern(pattern) == parts


# --- host entries, ranges and names ---------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "result"),
    [
        ("web1:2222", ("web1", 2222)),
        ("[::1]:22", ("::1", 22)),
        ("fe80::1", ("fe80::1", None)),
        ("192.0.2.1:80", ("192.0.2.1", 80)),
        ("web[1:3]:22", ("web[1:3]", 22)),
        ("h;x:22", ("h;x:22", None)),
    ],
)
def test_a_host_entry_splits_into_name_and_port_like_ansible(
    entry: str, result: tuple[str, int | None]
) -> None:
    assert split_port(entry) == result


@pytest.mark.parametrize(
    ("name", "names"),
    [
        ("web[01:03]", ["web01", "web02", "web03"]),
        ("n[1:9:4]", ["n1", "n5", "n9"]),
        ("c-[a:c]", ["c-a", "c-b", "c-c"]),
        ("r[1:2]u[a:b]", ["r1ua", "r1ub", "r2ua", "r2ub"]),
        ("w[9:10]x[a:b]", ["w9xa", "w9xb", "w10xa", "w10xb"]),
        ("b[008:010]", ["b008", "b009", "b010"]),
        ("x[:2]", ["x0", "x1", "x2"]),
    ],
)
def test_ranges_expand_with_leading_zeros_steps_and_letters(name: str, names: list[str]) -> None:
    assert expand_ranges(name) == names


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("web[10:1]", "is empty: 10 > 1"),
        ("web[f:a]", "runs backwards"),
        ("web[a:9]", "both ends must be numbers"),
        ("web[01:100]", "mixes widths"),
        ("web[1:3", "unclosed range"),
        ("web[1:3:0]", "invalid step"),
        ("web[1]", "invalid range"),
    ],
)
def test_bad_ranges_are_errors(name: str, message: str) -> None:
    with pytest.raises(HostPatternError, match=message.replace("[", r"\[")):
        expand_ranges(name)


def test_a_range_that_would_expand_to_too_many_hosts_is_refused() -> None:
    with pytest.raises(HostPatternError, match="more than 100000 hosts"):
        expand_ranges("a[0:999]b[0:999]")
    with pytest.raises(HostPatternError, match="more than 100000 hosts"):
        expand_ranges("a[0:99999999999]")


@pytest.mark.parametrize(
    "name", ["web1", "web-1.example.com", "db_2", "10.0.0.1", "::1", "2001:db8::10", "UPPER"]
)
def test_ordinary_host_names_and_addresses_are_accepted(name: str) -> None:
    assert check_host_name(name) == ""


@pytest.mark.parametrize(
    "name",
    [
        "h; touch /tmp/p",
        "-oProxyCommand=x",
        "$(id)",
        "a`b`",
        "h\nx",
        "wéb",
        "a b",
        "fe80::1%eth0;x",
        "",
        "host:22",
    ],
)
def test_host_names_with_metacharacters_or_a_leading_dash_are_refused(name: str) -> None:
    assert check_host_name(name)


@pytest.mark.parametrize(
    ("user", "ok"),
    [
        ("deploy", True),
        ("ops.user-1", True),
        ("jane@corp.example.com", True),
        ("-oProxyCommand=x", False),
        ("root;id", False),
        ("a b", False),
        ("$USER", False),
    ],
)
def test_users_are_plain_names(user: str, ok: bool) -> None:
    assert (check_user(user) == "") is ok


# --- parity with the real ansible ----------------------------------------------------


@pytest.mark.parametrize("pattern", [p for p in SELECTIONS if p != "localhost"])
def test_selection_matches_ansible_list_hosts(pattern: str, inventory: Inventory, tmp_path: Path) -> None:
    if shutil.which("ansible") is None:
        if os.environ.get("REMEDY_ALLOW_SKIP") == "1":
            pytest.skip("ansible not on PATH (REMEDY_ALLOW_SKIP=1)")
        pytest.fail("ansible is not on PATH: pip install ansible-core")
    (tmp_path / "ansible.cfg").write_text("")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        **{k: v for k, v in os.environ.items() if k.startswith("PYENV")},
    }
    done = subprocess.run(
        ["ansible", "-i", str(DEMO), pattern, "--list-hosts"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    listed = [line.strip() for line in done.stdout.splitlines()[1:] if line.strip()]
    assert select_hosts(inventory, pattern) == listed


def test_with_a_comma_colons_no_longer_separate_parts_as_in_ansible(inventory: Inventory) -> None:
    with pytest.raises(InventoryError, match="'web:&db' matches no host or group"):
        select_hosts(inventory, "web:&db,alpha")
