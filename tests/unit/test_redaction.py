"""The redactor: every form of a secret masked in any nested value."""

from __future__ import annotations

import base64
import shlex
import urllib.parse

from runner.redaction import MASK, Redactor


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
