"""``remedy validate`` and ``remedy graph``: golden error messages, output shapes, help.

Each ``golden/<case>.yml`` is a bad input; ``<case>.expected`` is the exact
stderr of ``remedy validate <case>.yml`` with paths shown relative to
``golden/``. An optional ``<case>.args`` adds command-line arguments, one per
line, ``{golden}`` standing for the golden directory. Regenerate with
``REMEDY_UPDATE_GOLDEN=1`` and review every changed message by eye: it must
name the file and line, what is wrong, and the fix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.cli.parser import build_parser
from runner.cli.program import main
from runner.load.yamlfile import MAX_FILE_BYTES

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("REMEDY_UPDATE_GOLDEN") == "1"
#: Cases whose input is too big to keep in the repository.
GENERATED: dict[str, Callable[[], bytes]] = {
    "too_large": lambda: b"# generated: one line of padding after another\n- hosts: all\n"
    + (b"#" + b"x" * 1023 + b"\n") * (MAX_FILE_BYTES // 1024 + 1),
}
CASES = sorted([p.stem for p in GOLDEN.glob("*.yml")] + list(GENERATED))
#: Inputs that try to run something; the file they would create must not exist.
CANARY = "/tmp/remedy-golden-canary-{case}"


def golden_input(case: str, tmp_path: Path) -> Path:
    if case in GENERATED:
        path = tmp_path / f"{case}.yml"
        path.write_bytes(GENERATED[case]())
        return path
    return GOLDEN / f"{case}.yml"


def golden_args(case: str) -> list[str]:
    path = GOLDEN / f"{case}.args"
    if not path.exists():
        return []
    return [line.replace("{golden}", str(GOLDEN)) for line in path.read_text().splitlines() if line]


def normalize(text: str, path: Path, case: str) -> str:
    return text.replace(str(path), f"{case}.yml").replace(f"{GOLDEN}/", "")


def test_there_are_at_least_thirty_golden_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES)
def test_validate_reports_a_golden_error(case: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = golden_input(case, tmp_path)
    canary = Path(CANARY.format(case=case))
    canary.unlink(missing_ok=True)
    code = main(["validate", str(path), *golden_args(case)])
    out, err = capsys.readouterr()
    assert not canary.exists(), "the input ran code"
    assert code == 4, err
    assert out == ""
    assert "Traceback" not in err
    err = normalize(err, path, case)
    assert re.match(r"^[\w/.-]+\.(yml|ini):\d+(:\d+)?: ", err), err
    assert err.rstrip().endswith("nothing was run (exit 4)")
    expected = GOLDEN / f"{case}.expected"
    if UPDATE:
        expected.write_text(err, encoding="utf-8")
    assert expected.exists(), f"no golden file; run with REMEDY_UPDATE_GOLDEN=1 and review {expected}"
    assert err == expected.read_text(encoding="utf-8")


def test_every_golden_expectation_has_an_input() -> None:
    stems = {p.stem for p in GOLDEN.glob("*.expected")}
    assert stems <= set(CASES)


def test_canary_inputs_would_create_their_canary() -> None:
    for case in ("python_tag", "sandbox_globals"):
        assert CANARY.format(case=case) in (GOLDEN / f"{case}.yml").read_text()


# --- a good playbook ---------------------------------------------------------------

GOOD = """
# Free a port held by a stale process.
- name: free the port
  hosts: all
  vars:
    port: 8080
  tasks:
    - id: find_owner
      name: who holds the port
      command: "fuser {{ port }}/tcp"
      register: owner
      failed_when: false
    - id: stop
      name: stop the stale process
      command: "fuser -k {{ port }}/tcp"
      when: owner.rc == 0
      notify: restart coze
    - id: report
      name: report
      debug:
        msg: "port {{ port }} is free"
      requires: []
  handlers:
    - name: restart coze
      command: systemctl restart coze
"""


def test_validate_of_a_good_playbook_exits_0(write: Callable[..., Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = write("free_port.yml", GOOD)
    assert main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ok: 1 playbook(s), 4 task(s)")
    assert err == ""


def test_validate_with_an_inventory_checks_variables_and_exits_0(
        write: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = write("free_port.yml", GOOD)
    inventory = write("hosts.ini", "[web]\nweb01 ansible_host=127.0.0.1\n")
    assert main(["validate", str(path), "-i", str(inventory)]) == 0
    out, _ = capsys.readouterr()
    assert out.strip() == "ok: 1 playbook(s), 4 task(s)"


def test_validate_accepts_a_bom(write: Callable[..., Path]) -> None:
    path = write("bom.yml", b"\xef\xbb\xbf" + GOOD.encode())
    assert main(["validate", str(path)]) == 0


def test_undefined_variable_is_found_with_an_inventory_only(
        write: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = write("p.yml", "- hosts: all\n  tasks:\n    - command: rm -rf /{{ dir }}\n")
    inventory = write("hosts.ini", "web01\n")
    assert main(["validate", str(path)]) == 0
    assert main(["validate", str(path), "-i", str(inventory)]) == 4
    assert "undefined variable 'dir'" in capsys.readouterr().err


def test_without_an_inventory_a_variable_no_play_defines_is_a_warning_naming_file_and_line(
        write: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = write("p.yml", "- hosts: all\n  vars: {port: 80}\n  tasks:\n"
                 "    - {name: clean, command: 'rm -rf /{{ dir }}/{{ port }}'}\n"
                 "    - {name: again, command: 'ls /{{ dir }} {{ other | default(1) }}'}\n")
    assert main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines()[0] == (f"{path}:4:7: WARNING: variable 'dir' in task 'clean' is not defined by "
                                   "any play or -e (also used at line 5); pass -i INVENTORY to check it")
    assert "variable 'port'" not in err and "variable 'other'" not in err
    assert out.startswith("ok: 1 playbook(s), 2 task(s), 1 warning(s)")
    assert main(["validate", str(path), "-e", "dir=tmp"]) == 0
    assert capsys.readouterr().err == ""


def test_extra_vars_define_variables_for_validate(write: Callable[..., Path]) -> None:
    path = write("p.yml", "- hosts: all\n  tasks:\n    - command: rm -rf /{{ dir }}\n")
    inventory = write("hosts.ini", "web01\n")
    assert main(["validate", str(path), "-i", str(inventory), "-e", "dir=tmp/x"]) == 0


def test_validate_reports_the_problems_of_every_file_at_once(
        write: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    one = write("one.yml", "- hosts: all\n  taks: []\n")
    two = write("two.yml", "- hosts: 5\n")
    assert main(["validate", str(one), str(two)]) == 4
    err = capsys.readouterr().err
    assert "one.yml:2:3" in err
    assert "two.yml:1:10" in err
    assert "2 input problems" in err


def test_validate_of_a_missing_file_exits_4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "absent.yml")]) == 4
    assert "cannot read file" in capsys.readouterr().err


# --- graph -------------------------------------------------------------------------

GRAPH = """
- hosts: all
  tasks:
    - {id: a, name: first, command: "true"}
    - {id: b, name: second, command: "true", notify: h}
    - {id: c, name: third, command: "true", requires: [a]}
  handlers:
    - {id: h, name: h, command: "true"}
"""


def graph_output(write: Callable[..., Path], capsys: pytest.CaptureFixture[str], fmt: str) -> str:
    path = write("site.yml", GRAPH)
    assert main(["graph", str(path), "--format", fmt]) == 0
    return capsys.readouterr().out


def test_graph_text_lists_tasks_in_run_order_with_dependencies(
        write: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = graph_output(write, capsys, "text")
    lines = out.splitlines()
    assert lines[0].startswith("site / play 1")
    ordered = [line.split()[2] for line in lines[1:]]
    assert ordered == ["site:a", "site:b", "site:c", "site:h"]
    assert lines[3].endswith("<- site:a")


def test_graph_mermaid_has_one_node_per_task_and_every_edge(
        write: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    lines = graph_output(write, capsys, "mermaid").splitlines()
    assert lines[0] == "```mermaid" and lines[-1] == "```"  # a block to paste into Markdown
    lines = lines[1:-1]
    assert lines[0] == "graph TD"
    nodes = [line for line in lines[1:] if re.match(r"^\s+n\d+[\[{]", line)]
    assert len(nodes) == 4
    assert {"first", "second", "third", "h"} == {re.search(r'"(.*)"', n).group(1) for n in nodes}  # type: ignore[union-attr]
    edges = [line.strip() for line in lines[1:] if "-->" in line or "-.->" in line]
    assert sorted(edges) == sorted(["n0 --> n1", "n0 --> n2", "n1 -.->|notify| n3"])


def test_graph_dot_is_a_digraph_with_nodes_and_edges(
        write: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = graph_output(write, capsys, "dot")
    assert out.startswith("digraph remedy {")
    assert out.rstrip().endswith("}")
    assert out.count(" [label=") == 4
    assert '"site:a" -> "site:c";' in out
    assert '"site:b" -> "site:h" [style=dashed, label="notify"];' in out


def test_graph_of_a_cyclic_playbook_exits_4(write: Callable[..., Path],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = write("c.yml", "- hosts: all\n  tasks:\n    - {id: a, command: x, requires: [a]}\n")
    assert main(["graph", str(path)]) == 4
    assert "requires itself" in capsys.readouterr().err


# --- help --------------------------------------------------------------------------

def subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)  # type: ignore[arg-type]


@pytest.mark.parametrize("command", subcommands())
def test_help_of_every_subcommand_exits_0_and_shows_examples(
        command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"usage: remedy {command}" in out
    assert "examples:" in out


def test_top_level_help_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "exit codes: 0 ok, 2 task/verification failed, 3 host unreachable, 4 invalid input" in out


def test_unknown_subcommand_is_an_input_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["valdate", "x.yml"]) == 4
