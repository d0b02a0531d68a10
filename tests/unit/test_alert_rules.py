"""The rules file: strict, every problem at once with file, line and hint; matchers as Alertmanager's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runner.alerts.rules import Guards, Matcher, Mode, load_rules
from runner.cli.program import main
from runner.errors import InputError
from runner.load.inputs import bundled_playbooks

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "alerts"


def test_the_example_rules_name_the_bundled_playbooks_and_their_guards() -> None:
    rules = load_rules(EXAMPLES / "rules.yml")
    assert [r.name for r in rules.rules] == ["coze down", "permission denied", "data corrupt", "stale cache"]
    down = rules.rules[0]
    assert [Path(p).stem for p in down.playbooks] == ["permission_error", "port_conflict",
                                                     "restore_from_backup", "cache_flush"]
    assert down.playbooks[1] == str(bundled_playbooks()["port_conflict"])
    assert down.mode is Mode.RUN and rules.rules[2].mode is Mode.PLAN
    assert down.limit == "{{ labels.instance }}"
    assert rules.guards == Guards(cooldown=900, storm_hosts=2, storm_within=600, loop_fixes=3,
                                  loop_within=3600)
    assert rules.alertnames == {"CozeDown", "CozePermissionDenied", "CozeDataCorrupt", "CozeCacheStale"}


@pytest.mark.parametrize(("matcher", "labels", "expected"), [
    (Matcher("alertname", "=", "CozeDown"), {"alertname": "CozeDown"}, True),
    (Matcher("alertname", "=", "CozeDown"), {"alertname": "CozeDownAgain"}, False),
    (Matcher("severity", "!=", "info"), {"severity": "critical"}, True),
    (Matcher("severity", "!=", "info"), {}, True),  # a missing label is the empty string
    (Matcher("severity", "=~", "critical|page"), {"severity": "page"}, True),
    (Matcher("severity", "=~", "crit"), {"severity": "critical"}, False),  # the whole value
    (Matcher("severity", "!~", "info|warning"), {"severity": "critical"}, True),
    (Matcher("team", "=", ""), {}, True),
])
def test_matchers_match_as_alertmanager_matches(matcher: Matcher, labels: dict[str, str],
                                                expected: bool) -> None:
    assert matcher.matches(labels) is expected


def test_matchers_are_read_in_alertmanager_syntax_quoted_or_not(write: Callable[..., Path]) -> None:
    path = write("rules.yml", """
        rules:
          - matchers: ['alertname="Coze \\"Down\\""', "severity =~ crit.*", 'team!=db', 'env!~"dev|test"']
            playbooks: port_conflict
    """)
    (rule,) = load_rules(path).rules
    assert rule.matchers == (Matcher("alertname", "=", 'Coze "Down"'), Matcher("severity", "=~", "crit.*"),
                             Matcher("team", "!=", "db"), Matcher("env", "!~", "dev|test"))
    assert rule.name == "rule 1" and rule.mode is Mode.PLAN  # plan unless a rule says run


def test_the_first_matching_rule_is_the_alerts_rule(write: Callable[..., Path]) -> None:
    path = write("rules.yml", """
        rules:
          - {name: db, matchers: ['alertname=CozeDown', 'team=db'], playbooks: [restore_from_backup]}
          - {name: any, matchers: ['alertname=CozeDown'], playbooks: [port_conflict]}
    """)
    rules = load_rules(path)
    assert rules.rule_for({"alertname": "CozeDown", "team": "db"}).name == "db"  # type: ignore[union-attr]
    assert rules.rule_for({"alertname": "CozeDown"}).name == "any"  # type: ignore[union-attr]
    assert rules.rule_for({"alertname": "Other"}) is None


def test_a_playbook_file_is_found_beside_the_rules_file(write: Callable[..., Path]) -> None:
    book = write("books/mine.yml", "- hosts: all\n  tasks: [{debug: {msg: hi}}]\n")
    path = write("rules.yml", "rules: [{matchers: ['alertname=A'], playbooks: [books/mine.yml]}]\n")
    assert load_rules(path).rules[0].playbooks == (str(book),)


BAD_RULES = """guards:
  cooldown: soon
  storm: {hosts: 0, within: 10m}
  restart: {fixes: 3, within: 1h}
rules:
  - name: one
    matchers: ['alertname~CozeDown', 'severity=~"(crit"']
    playbooks: [port_conflcit]
    mode: fix
  - name: one
    matchers: ['alertname=CozeDown']
    playbooks: [port_conflict]
    limit: "{{ inventory_hostname }}"
    vars: {port: "{{ labels.port", 2x: y}
    matcher: []
"""


def test_every_problem_of_a_rules_file_is_reported_at_once_with_its_line(write: Callable[..., Path]) -> None:
    path = write("rules.yml", BAD_RULES)
    with pytest.raises(InputError) as caught:
        load_rules(path)
    found = {(p.location.line, p.message) for p in caught.value.problems}
    expected = {
        (2, "the string 'soon' is not a duration"),
        (3, "'hosts' must be a positive count, not the number 0"),
        (4, "unknown guards key 'restart' (did you mean 'restart_loop'?)"),
        (7, "cannot read the matcher 'alertname~CozeDown'"),
        (8, "no bundled playbook or playbook file named 'port_conflcit' (did you mean 'port_conflict'?)"),
        (9, "'mode' must be plan or run, not the string 'fix'"),
        (10, "a second rule named 'one' (the first is at line 6)"),
        (13, "a rule's template may read only labels and annotations, not inventory_hostname"),
        (14, "'2x' is not a variable name"),
        (15, "unknown rule key 'matcher' (did you mean 'matchers'?)"),
    }
    assert expected <= found, sorted(found)
    messages = "\n".join(p.message for p in caught.value.problems)
    assert "invalid regex in the matcher 'severity=~\"(crit\"'" in messages
    assert "template syntax error" in messages


@pytest.mark.parametrize(("text", "message"), [
    ("rules: []\n", "'rules' must be a non-empty list of rules"),
    ("- rules\n", "a rules file must be a mapping, not a list"),
    ("rules: [{playbooks: [port_conflict]}]\n", "a rule needs 'matchers': a non-empty list"),
    ("rules: [{matchers: ['alertname=A']}]\n", "a rule needs 'playbooks': a playbook name or a list of them"),
    ("rulez: []\nrules: [{matchers: [a=b], playbooks: cache_flush}]\n",
     "unknown top-level key 'rulez' (did you mean 'rules'?)"),
    ("guards: {storm: {hosts: 3}}\nrules: [{matchers: [a=b], playbooks: cache_flush}]\n",
     "'storm' must be a mapping of hosts and within"),
])
def test_a_rules_file_of_the_wrong_shape_says_what_shape_it_needs(
        write: Callable[..., Path], text: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        load_rules(write("rules.yml", text))
    assert message in [p.message for p in caught.value.problems]


def test_bad_rules_are_exit_4_naming_file_line_and_fix_before_any_host_is_contacted(
        write: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    rules = write("rules.yml", BAD_RULES)
    inventory = write("hosts.ini", "host02 ansible_host=127.0.0.1 ansible_port=9\n")  # contacted: exit 3
    alert = str(EXAMPLES / "payloads" / "coze-down-host02.json")
    audit = rules.parent / "audit.jsonl"
    for argv in (["trigger", alert], ["listen", "--no-auth", "--port", "0"]):
        code = main([*argv, "-r", str(rules), "-i", str(inventory), "--audit-log", str(audit)])
        err = capsys.readouterr().err
        assert code == 4
        assert f"{rules}:8:17: no bundled playbook or playbook file named 'port_conflcit'" in err
        assert "hint: write label=value, label!=value, label=~regex or label!~regex" in err
        assert "    8 |     playbooks: [port_conflcit]" in err
    assert not audit.exists()


def test_a_missing_rules_file_is_exit_4_with_the_option_to_fix(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["trigger", str(EXAMPLES / "payloads" / "storm.json"), "-r", str(tmp_path / "nope.yml"),
                 "-i", "host02,"])
    assert code == 4
    assert "no rules file" in capsys.readouterr().err
