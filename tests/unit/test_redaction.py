"""The redactor: every form of a secret masked in any nested value; no_log results; secret variables."""

from __future__ import annotations

import base64
import shlex
import urllib.parse
from typing import Any

import pytest

from runner.errors import InputError, Location
from runner.load.marked import SecretText
from runner.output.runs import render_plan
from runner.plan.secrets import host_secrets
from runner.redaction import MASK, NO_LOG_MESSAGE, Redactor, conceal
from runner.results import CommandResult, Diff, HostResult, Run, Status, TaskResult


def test_every_form_of_a_secret_is_masked_in_nested_values() -> None:
    secret = "s3cr3t pass&word"
    redactor = Redactor([secret])
    forms = [secret, shlex.quote(secret), urllib.parse.quote(secret), urllib.parse.quote_plus(secret),
             base64.b64encode(secret.encode()).decode()]
    record = {"msg": f"login {forms[0]}", forms[1]: ("x", [f"-p {forms[2]}", forms[3]]), "b64": forms[4],
              "n": 3}
    masked = redactor.value(record)
    assert masked == {"msg": f"login {MASK}", MASK: ["x", [f"-p {MASK}", MASK]], "b64": MASK, "n": 3}
    assert record["msg"] == f"login {secret}"  # the input is left as it was


def test_without_secrets_a_value_is_returned_as_it_is() -> None:
    record = {"msg": "nothing to hide", "items": ("a", "b")}
    assert Redactor().value(record) is record
    assert Redactor(["abc"]).value(record) is record  # shorter than a secret can be
    redactor = Redactor()
    redactor.add("later-secret")
    assert redactor.value({"m": "a later-secret"}) == {"m": f"a {MASK}"}
    assert redactor.text("the later-secret") == f"the {MASK}"


def result(**fields: Any) -> TaskResult:
    return TaskResult(**{"host": "h", "task": "b:t", "name": "t", "status": Status.CHANGED, **fields})


def test_a_no_log_result_keeps_only_its_name_status_and_flags() -> None:
    secret_result = result(
        message="run echo hunter22", no_log=True, changed=True, predicted="change",
        diffs=(Diff("/etc/pw", "", "hunter22"),), commands=(CommandResult("echo hunter22", 0, "hunter22"),),
        data={"stdout": "hunter22", "results": [{"item": "hunter22"}], "changed": True, "attempts": 2})
    hidden = conceal(secret_result)
    assert (hidden.message, hidden.diffs, hidden.commands) == (NO_LOG_MESSAGE, (), ())
    assert hidden.data == {"changed": True}
    assert (hidden.name, hidden.status, hidden.changed, hidden.predicted) == \
        ("t", Status.CHANGED, True, "change")
    assert conceal(hidden) == hidden
    assert conceal(result(no_log=True)).message == ""  # no message: nothing to say it hid
    shown = result(message="visible")
    assert conceal(shown) is shown


def test_a_recorded_result_is_masked_before_any_renderer_cuts_it_short() -> None:
    secret = "TruncatedSecret-123"
    recorded = Redactor([secret]).result(result(
        message="x" * 70 + secret, diffs=(Diff(f"/{secret}", secret, f"a {secret}"),),
        commands=(CommandResult(f"echo {secret}", 0, secret, f"{secret}\n"),), data={"out": [secret]}))
    assert recorded.message == "x" * 70 + MASK
    assert recorded.diffs == (Diff(f"/{MASK}", MASK, f"a {MASK}"),)
    assert recorded.commands[0] == CommandResult(f"echo {MASK}", 0, MASK, f"{MASK}\n")
    assert recorded.data == {"out": [MASK]}
    assert "TruncatedS" not in render_plan(Run("r", (HostResult("h", (recorded,), Status.CHANGED),),
                                                         check=True))


def test_secret_variables_are_the_named_ones_and_the_tagged_ones() -> None:
    variables = {
        "remedy_secret_vars": ["db_password", "*_token"], "db_password": "pw-value", "api_token": 12345,
        "keys": {"deploy_token": ["t-one", "t-two"]}, "plain": "not-secret",
        "ansible_become_password": "sudo-pw",
        "nested": {"inner": SecretText("tagged-value"), "other": "not-secret-either"},
        "db_url": "postgres://u:{{ db_password }}@h", "remedy_secret_vars_extra": None,
    }
    found = set(host_secrets(variables, Location("<vars>")))
    assert found == {"pw-value", "12345", "sudo-pw", "tagged-value"}
    variables["remedy_secret_vars"] = ["db_*", "keys"]
    found = set(host_secrets(variables, Location("<vars>")))
    assert found == {"pw-value", "postgres://u:{{ db_password }}@h", "postgres://u:pw-value@h", "t-one",
                     "t-two", "sudo-pw", "tagged-value"}


def test_a_secret_template_that_needs_a_task_result_is_kept_as_written() -> None:
    variables = {"remedy_secret_vars": ["token"], "token": "{{ registered.stdout }}"}
    assert list(host_secrets(variables, Location("<vars>"))) == ["{{ registered.stdout }}"]


@pytest.mark.parametrize("value", ["db_password", [1], [""], {"a": 1}])
def test_remedy_secret_vars_must_be_a_list_of_names(value: Any) -> None:
    with pytest.raises(InputError) as caught:
        list(host_secrets({"remedy_secret_vars": value}, Location("<variables of host a>")))
    text = caught.value.render()
    assert "<variables of host a>: remedy_secret_vars must be a list of variable names" in text
    assert 'remedy_secret_vars: [db_password, "*_token"]' in text
