"""The README's command section and every command's ``--help`` say the same thing, and the help is whole."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from runner.cli.parser import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"


def subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def readme_synopses() -> dict[str, str]:
    """``remedy COMMAND ...`` of the README's command section (continuation lines joined, comments cut)."""
    text = README.read_text(encoding="utf-8")
    block = text[text.index("## Commands"):text.index("A PLAYBOOK is a file")]
    synopses: dict[str, str] = {}
    current = ""
    for line in block.splitlines():
        line = line.split("#", 1)[0].rstrip()
        if line.startswith("    remedy "):
            current = line.split()[1]
            synopses[current] = line.strip()
        elif line.startswith("     ") and current:
            synopses[current] += " " + line.strip()
    return synopses


def flags(synopsis: str) -> list[tuple[str, str, str]]:
    """Each option of a synopsis: (option, what encloses it: '[', '(' or '', the word after it)."""
    found, depth = [], []
    words = re.findall(r"[\[\]()]|[^\s\[\]()]+", synopsis)
    for index, word in enumerate(words):
        if word in "[(":
            depth.append(word)
        elif word in "])":
            depth.pop()
        elif word.startswith("-"):
            after = words[index + 1] if index + 1 < len(words) else ""
            found.append((word, depth[-1] if depth else "", after))
    return found


def test_the_readme_lists_every_command_and_no_other() -> None:
    assert sorted(readme_synopses()) == sorted(subparsers())


@pytest.mark.parametrize("command", sorted(subparsers()))
def test_the_readme_synopsis_of_each_command_agrees_with_its_help(command: str) -> None:
    parser = subparsers()[command]
    synopsis = readme_synopses()[command]
    options = {s: a for a in parser._actions for s in a.option_strings}
    grouped = {a for group in parser._mutually_exclusive_groups if group.required
               for a in group._group_actions}
    shown = flags(synopsis)
    for option, enclosed, after in shown:
        assert option in options, f"README: remedy {command} has no option {option}"
        action = options[option]
        want = "(" if action in grouped else "" if action.required else "["
        assert enclosed == want, f"README: remedy {command} {option} is shown {enclosed or 'bare'}, " \
                                 f"but the parser makes it {want or 'required'}"
        if action.choices and "|" in after:
            assert set(after.split("|")) == set(action.choices), f"README: {command} {option} {after}"
    named = {options[o] for o, _, _ in shown}
    for action in parser._actions:
        if action.required and action.option_strings:
            assert action in named, f"README: remedy {command} lacks its required {action.option_strings[0]}"
        if action in grouped:
            assert action in named, f"README: remedy {command} lacks {action.option_strings[0]}"
        if not action.option_strings:
            name = str(action.metavar or action.dest.upper())
            shape = {"+": rf"(?<!\[){name}\.\.\.", "*": rf"\[{name}\.\.\.\]", "?": rf"\[{name}\]"}.get(
                str(action.nargs))
            if shape is not None:
                assert re.search(shape, synopsis), f"README: remedy {command}: {name} as {shape}"


@pytest.mark.parametrize("command", sorted(subparsers()))
def test_every_option_of_every_command_has_help(command: str) -> None:
    for action in subparsers()[command]._actions:
        assert action.help, f"remedy {command} {action.option_strings or action.dest}: no help text"


def test_the_flags_of_a_synopsis_are_read_with_what_encloses_them() -> None:
    assert flags("remedy inventory -i INV (--list | --host H) [-l LIMIT] [--format text|json]") == [
        ("-i", "", "INV"), ("--list", "(", "|"), ("--host", "(", "H"), ("-l", "[", "LIMIT"),
        ("--format", "[", "text|json")]


def test_the_check_json_of_the_run_help_is_not_passed_off_as_a_plan_and_apply_says_what_it_is(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from runner.cli.program import main

    assert main(["run", "--help"]) == 0
    examples = capsys.readouterr().out
    assert "--check --format json > check.json" in examples and "> plan.json" not in examples
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"a ansible_connection=local remedy_lock_path={tmp_path}/a.lock\n")
    book = tmp_path / "book.yml"
    book.write_text("- hosts: all\n  tasks:\n    - {command: 'true'}\n")
    audit = ["--audit-log", str(tmp_path / "audit.jsonl")]
    assert main(["run", str(book), "-i", str(inventory), "--check", "--format", "json", *audit]) == 0
    check = tmp_path / "check.json"
    check.write_text(capsys.readouterr().out)
    assert main(["apply", str(check)]) == 4
    err = capsys.readouterr().err
    assert "damaged: the JSON output of a run (--format json), not a plan saved by 'remedy plan -o'" in err
    assert "'inputs'" not in err
    assert main(["run", str(book), "-i", str(inventory), "--compare-plan", str(check), *audit]) == 4
    err = capsys.readouterr().err
    assert "not a saved remedy plan: the JSON output of a run (--format json)" in err
    assert "create one with 'remedy plan PLAYBOOK... -i INVENTORY -o plan.json'" in err
    assert "'inputs'" not in err


@pytest.mark.parametrize("option", [["--diff"], ["--lock-timeout", "5"]])
def test_diagnose_refuses_the_options_of_a_change(option: list[str],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from runner.cli.program import main

    assert main(["diagnose", "-i", "localhost,", *option]) == 4
    assert "unrecognized arguments" in capsys.readouterr().err
