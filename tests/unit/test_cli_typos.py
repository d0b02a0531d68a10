"""Typos on the command line: a misspelt playbook gets the close name; an -e variable is checked
against the variables the run's playbooks declare (their play vars and defaults)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.cli.program import main

Capsys = pytest.CaptureFixture[str]


def validate(capsys: Capsys, *args: str) -> tuple[int, str]:
    code = main(["validate", *args])
    return code, capsys.readouterr().err


def test_a_misspelt_bundled_playbook_name_is_exit_4_with_the_close_name(capsys: Capsys) -> None:
    code, err = validate(capsys, "permision_error")
    assert code == 4
    assert "permision_error: not a file, nor a bundled playbook (did you mean 'permission_error'?)" in err
    assert "'remedy playbooks' lists the bundled ones" in err


def test_a_misspelt_playbook_path_gets_the_file_beside_it(tmp_path: Path, capsys: Capsys) -> None:
    (tmp_path / "restart_web.yml").write_text("- hosts: all\n  tasks: [{debug: {msg: hi}}]\n")
    code, err = validate(capsys, str(tmp_path / "restrat_web.yml"))
    assert code == 4
    assert f"(did you mean '{tmp_path / 'restart_web.yml'}'?)" in err


def test_an_undeclared_extra_variable_warns_naming_the_close_declared_one(capsys: Capsys) -> None:
    code, err = validate(capsys, "port_conflict", "-e", "fallbak_port=9000")
    assert code == 0
    assert err == ("remedy: warning: -e fallbak_port: no playbook of the run declares or reads it, "
                   "so it changes nothing (did you mean 'fallback_port'?)\n")


@pytest.mark.parametrize(("extra", "kind"), [("fallback_port=abc", "an integer"),
                                             ("allow_stop_foreign=maybe", "a boolean")])
def test_a_value_that_contradicts_the_declared_default_is_exit_4(
        capsys: Capsys, extra: str, kind: str) -> None:
    code, err = validate(capsys, "port_conflict", "-e", extra)
    name, value = extra.split("=")
    assert code == 4
    assert f"-e {extra}: '{value}' is not {kind}, as port_conflict declares {name} (default " in err
    assert "port_conflict.yml:" in err and f"or leave -e {name} out for the default" in err


@pytest.mark.parametrize("extra", [
    "fallback_port=9000", "allow_stop_foreign=yes", "fallback_port={{9000}}", "ansible_port=2222",
    '{"fallback_port": 9000, "allow_stop_foreign": true}'])
def test_declared_variables_of_the_right_type_pass_quietly(capsys: Capsys, extra: str) -> None:
    assert validate(capsys, "port_conflict", "-e", extra) == (0, "")


def test_an_undeclared_variable_a_template_reads_passes_quietly(tmp_path: Path, capsys: Capsys) -> None:
    book = tmp_path / "book.yml"
    book.write_text("- hosts: all\n  tasks:\n    - debug: {msg: \"{{ greeting | default('hi') }}\"}\n")
    assert validate(capsys, str(book), "-e", "greeting=hello") == (0, "")
