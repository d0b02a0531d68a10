"""Secrets never reach an output: every command, every output option, every file it writes.

One harness runs ``diagnose``, ``plan`` (also ``-o``), ``run --check``,
``apply``, ``run --compare-plan`` and a real ``run`` with ``-vv --diff``, text
and JSON, ``--junit`` and an audit log, and collects what they printed and
wrote. The hosts are local ones whose files live apart from the outputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from runner.cli import commands
from runner.cli.program import main
from runner.redaction import MASK

NO_LOG_CANARY = "NoLogCanary-5d2e7"
LOOP_CANARY = "LoopItemCanary-91c4"


@dataclass
class Outputs:
    """What a series of commands printed and wrote, by where it went."""

    texts: dict[str, str] = field(default_factory=dict)
    codes: dict[str, int] = field(default_factory=dict)

    def leaks(self, *canaries: str) -> list[str]:
        """``where: canary`` for every output that shows a canary, or the first 10 characters of one."""
        return [f"{where}: {canary}" for where, text in self.texts.items() for canary in canaries
                if canary[:10] in text]

    def everything(self) -> str:
        return "\n".join(self.texts.values())


class Harness:
    """Runs remedy commands in-process; outputs go under ``out``, host files under ``hosts``."""

    def __init__(self, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                 monkeypatch: pytest.MonkeyPatch) -> None:
        self.out = tmp_path / "out"
        self.hosts = tmp_path / "hosts"
        self.out.mkdir()
        self.hosts.mkdir()
        self.capsys = capsys
        self.outputs = Outputs()
        # ``apply`` writes to the default audit log: keep it among the outputs
        monkeypatch.setattr(commands, "DEFAULT_AUDIT", self.out / "default-audit.jsonl")

    def command(self, label: str, argv: list[str]) -> int:
        code = main(argv)
        printed = self.capsys.readouterr()
        self.outputs.texts[f"{label} stdout"] = printed.out
        self.outputs.texts[f"{label} stderr"] = printed.err
        self.outputs.codes[label] = code
        return code

    def every_command(self, book: Path, inventory: Path, extra: list[str]) -> Outputs:
        """Each command with every output option, in the order an operator would use them."""
        plan = self.out / "plan.json"
        common = [str(book), "-i", str(inventory), *extra, "-vv", "--diff"]

        def files(name: str) -> list[str]:
            return ["--junit", str(self.out / f"{name}.xml"), "--audit-log", str(self.out / "audit.jsonl")]

        looking = common[:-1]  # diagnose changes nothing: no --diff
        self.command("diagnose json", ["diagnose", *looking, "--format", "json", *files("diagnose")])
        self.command("diagnose text", ["diagnose", *looking, *files("diagnose-text")])
        self.command("plan -o", ["plan", *common, "-o", str(plan), *files("plan")])
        self.command("plan json", ["plan", *common, "--format", "json", *files("plan-json")])
        self.command("plan markdown", ["plan", *common, "--format", "markdown", *files("plan-md")])
        self.command("run --check", ["run", *common, "--check", "--format", "json", *files("check")])
        self.command("apply", ["apply", str(plan), "-vv", "--diff", "--format", "markdown",
                               "-o", str(self.out / "apply-result.json"), *files("apply")])
        self.command("run --compare-plan", ["run", *common, "--compare-plan", str(plan), *files("compare")])
        for stale in self.hosts.iterdir():  # the fault again, for a real run that fixes it
            stale.unlink()
        self.command("run", ["run", *common, *files("run")])
        self.command("run json", ["run", *common, "--format", "json", *files("run-json")])
        for path in sorted(self.out.rglob("*")):
            if path.is_file():
                self.outputs.texts[f"file {path.name}"] = path.read_text(encoding="utf-8")
        return self.outputs


@pytest.fixture
def harness(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Harness:
    return Harness(tmp_path, capsys, monkeypatch)


def local_inventory(tmp_path: Path, extra: str = "") -> Path:
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"[all:vars]\nansible_connection=local\n{extra}\n[web]\n" + "".join(
        f"{host} remedy_lock_path={tmp_path}/{host}.lock\n" for host in "ab"), encoding="utf-8")
    return inventory


NO_LOG_BOOK = """
- hosts: all
  vars:
    token: NO_LOG_CANARY
    token_file: "HOSTS/{{ inventory_hostname }}.token"
  diagnose:
    - name: the token file is in place
      no_log: true
      shell: "test -f {{ token_file }} && echo present || echo missing {{ token }}"
      register: probe
      failed_when: "'missing' in probe.stdout"
  tasks:
    - name: write the token
      no_log: true
      copy: {content: "{{ token }}", dest: "{{ token_file }}"}
      changed_when: false
    - name: use the token
      no_log: true
      shell: "echo using {{ token }}; echo {{ token }} >&2"
    - name: each item
      no_log: true
      command: "echo {{ item }}"
      loop: ["LOOP_CANARY-one", "{{ token }}-two"]
    - name: a failing command
      no_log: true
      shell: "echo {{ token }} >&2; exit 3"
      ignore_errors: true
    - name: a failure message
      no_log: true
      fail: {msg: "bad {{ token }}"}
      ignore_errors: true
    - name: a hidden block
      no_log: true
      block:
        - command: "echo {{ token }}"
    - name: a block with one hidden task
      block:
        - command: "echo {{ token }}"
          no_log: true
        - command: "echo visible"
  verify:
    - name: the token is in place
      no_log: true
      command: "grep -c {{ token }} {{ token_file }}"
"""


def test_a_no_log_secret_and_its_loop_items_reach_no_output_of_any_command(
        tmp_path: Path, harness: Harness) -> None:
    book = tmp_path / "book.yml"
    book.write_text(NO_LOG_BOOK.replace("NO_LOG_CANARY", NO_LOG_CANARY).replace("LOOP_CANARY", LOOP_CANARY)
                    .replace("HOSTS", str(harness.hosts)), encoding="utf-8")
    outputs = harness.every_command(book, local_inventory(tmp_path), [])
    assert outputs.leaks(NO_LOG_CANARY, LOOP_CANARY) == []
    assert outputs.codes == {"diagnose json": 0, "diagnose text": 0, "plan -o": 0, "plan json": 0,
                             "plan markdown": 0, "run --check": 0, "apply": 2, "run --compare-plan": 2,
                             "run": 0, "run json": 0}
    assert (harness.hosts / "a.token").read_text().strip() == NO_LOG_CANARY  # the tasks did run
    diagnosis = json.loads(outputs.texts["diagnose json stdout"])["diagnosis"]
    assert {(row["host"], row["diagnosis"]) for row in diagnosis} == {("a", "fault"), ("b", "fault")}
    assert "(hidden by no_log)" in outputs.texts["file audit.jsonl"]
    assert "visible" in outputs.texts["run stderr"]  # the block's other task is shown


SECRET_CANARIES = {
    "DB_CANARY": "DbPasswordCanary-0a1b", "TOKEN_CANARY": "DeployTokenCanary-2c3d",
    "TAGGED_CANARY": "TaggedCanary-4e5f", "HOST_A_CANARY": "HostACanary-6a7b",
    "HOST_B_CANARY": "HostBCanary-8c9d", "PLAY_CANARY": "PlayCanary-0e1f",
}

SECRET_BOOK = """
- hosts: all
  vars:
    api_key: !secret PLAY_CANARY
    token_file: "HOSTS/{{ inventory_hostname }}.token"
  diagnose:
    - name: the token file is in place
      shell: "test -f {{ token_file }} && echo present || echo missing for {{ host_key }}"
      register: probe
      failed_when: "'missing' in probe.stdout"
  tasks:
    - name: write the credentials
      copy: {content: "{{ db_password }} {{ deploy_token }} {{ db_url }}", dest: "{{ token_file }}"}
    - name: a secret where the plan table cuts its detail
      shell: "echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx{{ vault_key }}"
    - name: every kind of secret in one command
      command: "echo {{ api_key }} {{ host_key }} {{ db_password }} {{ deploy_token }} {{ vault_key }}"
    - name: a failure message
      fail: {msg: "cannot log in with {{ db_password }}"}
      ignore_errors: true
    - name: each secret
      command: "echo {{ item }}"
      loop: ["{{ db_password }}", "{{ deploy_token }}"]
  verify:
    - name: the credentials are in place
      command: "cat {{ token_file }}"
"""


def secret_inputs(tmp_path: Path, hosts: Path) -> tuple[Path, Path, Path]:
    """A playbook, an inventory and an extra-vars file holding every kind of secret variable."""
    def fill(text: str) -> str:
        for name, value in SECRET_CANARIES.items():
            text = text.replace(name, value)
        return text.replace("HOSTS", str(hosts))

    book = tmp_path / "book.yml"
    book.write_text(fill(SECRET_BOOK), encoding="utf-8")
    inventory = local_inventory(tmp_path, fill(
        "remedy_secret_vars=['db_password', '*_token']\ndb_password=DB_CANARY\n"
        "db_url=postgres://app:{{ db_password }}@db/app\n"))
    (tmp_path / "host_vars").mkdir()
    for host in "ab":
        (tmp_path / "host_vars" / f"{host}.yml").write_text(
            fill(f"host_key: !secret HOST_{host.upper()}_CANARY\n"), encoding="utf-8")
    extra = tmp_path / "secrets.yml"
    extra.write_text(fill("deploy_token: TOKEN_CANARY\nvault_key: !secret TAGGED_CANARY\n"), encoding="utf-8")
    return book, inventory, extra


def test_secret_variables_are_masked_in_every_output_of_every_command(
        tmp_path: Path, harness: Harness) -> None:
    book, inventory, extra = secret_inputs(tmp_path, harness.hosts)
    harness.command("inventory --list", ["inventory", "-i", str(inventory), "--list"])
    harness.command("inventory --host", ["inventory", "-i", str(inventory), "--host", "a"])
    outputs = harness.every_command(book, inventory, ["-e", f"@{extra}"])
    assert outputs.leaks(*SECRET_CANARIES.values()) == []
    assert outputs.codes == {"inventory --list": 0, "inventory --host": 0, "diagnose json": 0,
                             "diagnose text": 0, "plan -o": 0, "plan json": 0, "plan markdown": 0,
                             "run --check": 0, "apply": 0, "run --compare-plan": 2, "run": 0, "run json": 0}
    written = (harness.hosts / "a.token").read_text()
    assert SECRET_CANARIES["DB_CANARY"] in written and SECRET_CANARIES["TOKEN_CANARY"] in written
    shown = outputs.texts["run stderr"]
    assert f"{MASK} {MASK} {MASK} {MASK} {MASK}" in shown  # the command's output, every secret masked
    assert f"missing for {MASK}" in outputs.texts["diagnose text stdout"]
    assert f"{MASK} {MASK} postgres://app:{MASK}@db/app" in shown  # the diff of the file written
    assert f'"db_password": "{MASK}"' in outputs.texts["inventory --host stdout"]


def test_a_secret_given_with_e_is_masked_in_a_saved_plan_which_apply_then_refuses(
        tmp_path: Path, harness: Harness) -> None:
    book, inventory, _ = secret_inputs(tmp_path, harness.hosts)
    token = SECRET_CANARIES["TOKEN_CANARY"]
    plan = harness.out / "plan.json"
    assert harness.command("plan", ["plan", str(book), "-i", str(inventory), "-e", f"deploy_token={token}",
                                    "-e", "vault_key=v", "-o", str(plan),
                                    "--audit-log", str(harness.out / "audit.jsonl")]) == 0
    assert token not in plan.read_text()
    assert json.loads(plan.read_text())["inputs"]["extra_vars"][0] == f"deploy_token={MASK}"
    assert harness.command("apply", ["apply", str(plan)]) == 4
    assert "the plan was made with a secret on the command line" in harness.outputs.texts["apply stderr"]
    assert not (harness.hosts / "a.token").exists()
    assert harness.outputs.leaks(token) == []


def test_a_remedy_secret_vars_that_is_not_a_list_is_an_input_error_before_any_host(
        tmp_path: Path, harness: Harness) -> None:
    book, inventory, extra = secret_inputs(tmp_path, harness.hosts)
    code = harness.command("run", ["run", str(book), "-i", str(inventory), "-e", f"@{extra}",
                                   "-e", "remedy_secret_vars=db_password",
                                   "--audit-log", str(harness.out / "audit.jsonl")])
    assert code == 4
    err = harness.outputs.texts["run stderr"]
    assert "<variables of host a>: remedy_secret_vars must be a list of variable names or glob patterns, " \
           "not 'db_password'" in err
    assert 'hint: write it as remedy_secret_vars: [db_password, "*_token"]' in err
    assert list(harness.hosts.iterdir()) == [] and not (harness.out / "audit.jsonl").exists()
