"""The ``health`` module: a service's health endpoint, judged by the named checks of one fault.

Services layer. A health endpoint answers 200 when every check passes; a
service with several faults answers 503 for all of them at once. A fault's
playbook must not fail (and roll back a correct fix) because another fault
is still present, so this module reads the body's named checks and passes
when the checks that speak for *this* fault pass, whatever the status code.

The body it understands is JSON::

    {"status": "unhealthy", "checks": {"config": "ok", "data": "failed"},
     "reasons": ["data: bots.json: checksum mismatch"]}

``checks`` is a mapping of name to ``"ok"`` (anything else fails; a nested
``{"status": "ok"}`` is accepted too) and ``reasons`` lines start with the
check's name. Without ``checks`` in the arguments, or when the body has no
named checks, the status code alone decides (``status_code``). The request is
the ``uri`` module's GET from the host.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from runner.modules.base import Arg, Change, Module, Outcome
from runner.modules.uri import UriModule, parse_response
from runner.results import CommandResult


class HealthModule(Module):
    """GET a health endpoint from the host; pass when this fault's named checks pass."""

    name = "health"
    summary = "Check a service's health endpoint by the named checks that speak for one fault"
    read_only = True
    args = {
        "url": Arg("str", required=True, doc="The health endpoint, http:// or https://."),
        "checks": Arg(
            "list", elements="str", default=[],
            doc="Named checks of the body that must be ok; [] = the status code decides.",
        ),
        "status_code": Arg("list", elements="int", default=[200], doc="Status codes of a healthy service."),
        "timeout": Arg("int", default=10, doc="Seconds the request may take."),
        "validate_certs": Arg("bool", default=True, doc="Verify the server's TLS certificate."),
    }

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        a = self.resolved(args)
        request = UriModule().plan({"url": a["url"], "timeout": a["timeout"],
                                    "status_code": a["status_code"],
                                    "validate_certs": a["validate_certs"]}, {})
        if request.failed:
            return request
        wanted = [str(c) for c in a["checks"] or []]
        scope = f" (checks: {', '.join(wanted)})" if wanted else ""
        return Change(changed=False, steps=request.steps, summary=f"GET {a['url']}{scope}",
                      data={**request.data, "checks_wanted": wanted})

    def outcome(
        self,
        args: Mapping[str, Any],
        facts: Mapping[str, Any],
        change: Change,
        results: Sequence[CommandResult],
    ) -> Outcome:
        if not results:
            return Outcome(changed=False)
        data: dict[str, Any] = {"url": change.data.get("url")}
        data.update(parse_response(results[-1], return_content=False))
        verdict = judge(data, list(change.data.get("checks_wanted", [])),
                        list(change.data.get("status_code", [200])))
        data.update(verdict)
        return Outcome(changed=False, failed="" if verdict["ok"] else verdict["msg"], data=data,
                       summary=verdict["msg"])


def judge(response: Mapping[str, Any], wanted: Sequence[str], codes: Sequence[int]) -> dict[str, Any]:
    """The verdict on one parsed response: ``ok``, ``msg``, ``failing``, ``reasons``, ``others_failing``."""
    status = response.get("status", -1)
    body = response.get("json")
    named = _named_checks(body)
    reasons = [str(r) for r in body.get("reasons", [])] if isinstance(body, Mapping) else []
    failing = sorted(name for name, ok in named.items() if not ok)
    verdict: dict[str, Any] = {"failing": failing, "reasons": reasons, "checks": named}
    if status == -1:
        return {**verdict, "ok": False, "msg": f"no answer from the service: {response.get('msg', '')}"}
    if not wanted or not named:
        ok = status in codes
        detail = "; ".join(reasons) or str(response.get("msg", ""))
        return {**verdict, "ok": ok, "others_failing": [],
                "msg": f"status {status}" + ("" if ok else f", expected {list(codes)}: {detail}")}
    missing = [name for name in wanted if name not in named]
    own = [name for name in wanted if name in named and not named[name]]
    others = [name for name in failing if name not in wanted]
    verdict["others_failing"] = others
    if missing or own:
        why = [r for r in reasons if r.split(":", 1)[0] in own] or [f"{name}: failed" for name in own]
        why += [f"{name}: not reported by the service" for name in missing]
        return {**verdict, "ok": False, "msg": f"status {status}; " + "; ".join(why)}
    note = ""
    if others:
        other_reasons = [r for r in reasons if r.split(":", 1)[0] in others] or others
        note = f"; other checks still fail (another fault): {'; '.join(other_reasons)}"
    return {**verdict, "ok": True, "msg": f"status {status}; {', '.join(wanted)} ok{note}"}


def _named_checks(body: Any) -> dict[str, bool]:
    if not isinstance(body, Mapping) or not isinstance(body.get("checks"), Mapping):
        return {}
    named: dict[str, bool] = {}
    for name, value in body["checks"].items():
        if isinstance(value, Mapping):
            value = value.get("status", value.get("ok"))
        named[str(name)] = value is True or str(value).lower() in ("ok", "pass", "passed", "healthy")
    return named
