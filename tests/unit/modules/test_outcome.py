"""outcome(): what the executed steps' results become (registered data, changed, failed)."""

from __future__ import annotations

from typing import Any

import pytest

from runner.modules import MODULES
from runner.modules.base import Change, Command, Outcome, chained
from runner.modules.pathfact import PathInfo
from runner.results import CommandResult


def run(name: str, args: dict[str, Any], *results: CommandResult, facts: Any = None) -> Outcome:
    module = MODULES[name]()
    change = module.plan(args, facts or {})
    assert not change.failed, change.failed
    return module.outcome(args, facts or {}, change, list(results))


def result(stdout: str = "", rc: int | None = 0, stderr: str = "", duration: float = 0.0) -> CommandResult:
    return CommandResult("cmd", rc, stdout, stderr, duration)


# command / shell


def test_command_that_ran_registers_ansible_fields() -> None:
    out = run("command", {"cmd": "echo 'a b' c"}, result("a b c\nd\n", duration=1.5))
    assert out.changed and not out.failed
    assert out.data["cmd"] == ["echo", "a b", "c"]
    assert out.data["rc"] == 0
    assert out.data["stdout_lines"] == ["a b c", "d"]
    assert out.data["delta"] == "0:00:01.500000"


def test_command_with_nonzero_exit_fails_with_the_stderr_tail() -> None:
    out = run("command", {"cmd": "false"}, result(rc=2, stderr="one\ntwo\nboom"))
    assert out.failed == "command exited 2: one\ntwo\nboom"
    assert out.data["msg"] == "non-zero return code"
    assert out.data["rc"] == 2


def test_command_with_unknown_exit_fails() -> None:
    out = run("command", {"cmd": "sleep 1000"}, result(rc=None))
    assert out.failed.startswith("command exited unknown")


def test_skipped_command_registers_the_skip_and_changes_nothing() -> None:
    module = MODULES["command"]()
    args = {"cmd": "make", "creates": "/x"}
    facts = {"guards": module.facts(args)["guards"].parse(result("creates=yes\n"))}
    change = module.plan(args, facts)
    out = module.outcome(args, facts, change, [])
    assert not out.changed and not out.failed
    assert out.data["stdout"] == "skipped, since /x exists"
    assert out.data["rc"] == 0


def test_shell_registers_cmd_as_the_text() -> None:
    out = run("shell", {"cmd": "echo hi | tr a-z A-Z", "chdir": "/tmp"}, result("HI\n"))
    assert out.data["cmd"] == "echo hi | tr a-z A-Z"
    assert out.data["stdout"] == "HI", "trailing newlines dropped, as in Ansible"


# uri


def curl_output(body: str, code: str = "200", seconds: str = "0.012", ctype: str = "") -> str:
    return f"{body}\n::status {code} {seconds} {ctype}\n"


def test_uri_registers_status_json_and_elapsed() -> None:
    body = '{"status": "ok", "db": {"up": true}}'
    out = run(
        "uri",
        {"url": "http://127.0.0.1/health"},
        result(curl_output(body, seconds="2.7", ctype="application/json")),
    )
    assert not out.failed and not out.changed
    assert out.data["status"] == 200
    assert out.data["json"] == {"status": "ok", "db": {"up": True}}
    assert out.data["elapsed"] == 2
    assert out.data["content_type"] == "application/json"
    assert "content" not in out.data
    assert out.data["url"] == "http://127.0.0.1/health"


def test_uri_return_content_registers_the_body() -> None:
    out = run("uri", {"url": "http://x/", "return_content": True}, result(curl_output("hello\nworld")))
    assert out.data["content"] == "hello\nworld"
    assert "json" not in out.data


def test_uri_unexpected_status_fails() -> None:
    out = run("uri", {"url": "http://x/"}, result(curl_output("down", code="503")))
    assert out.failed.startswith("Status code was 503 and not [200]")
    assert out.data["status"] == 503


def test_uri_status_in_the_accepted_list_passes() -> None:
    args = {"url": "http://x/", "method": "DELETE", "status_code": [200, "204"]}
    out = run("uri", args, result(curl_output("", code="204")))
    assert not out.failed
    assert out.changed, "a DELETE is a change"


def test_uri_connection_failure_is_status_minus_one() -> None:
    out = run(
        "uri",
        {"url": "http://x/"},
        result(
            curl_output("", code="000", seconds="0.001"),
            rc=7,
            stderr="curl: (7) Failed to connect to x port 80",
        ),
    )
    assert out.data["status"] == -1
    assert "Failed to connect" in out.failed
    assert out.failed.startswith("Status code was -1 and not [200]: Request failed: curl: (7)")


def test_uri_without_curl_or_wget_fails_clearly() -> None:
    out = run(
        "uri", {"url": "http://x/"}, result(rc=127, stderr="neither curl nor wget is installed on the host")
    )
    assert out.data["status"] == -1
    assert "neither curl nor wget" in out.failed


def test_uri_wget_output_takes_elapsed_from_the_duration() -> None:
    out = run("uri", {"url": "http://x/"}, result(curl_output("[1, 2]", seconds="0"), duration=3.2))
    assert out.data["elapsed"] == 3
    assert out.data["json"] == [1, 2]


def test_uri_body_that_merely_looks_like_json_is_not_an_error() -> None:
    out = run("uri", {"url": "http://x/"}, result(curl_output("{not json")))
    assert "json" not in out.data and not out.failed


# stat


def test_stat_outcome_is_the_planned_stat_without_any_step() -> None:
    module = MODULES["stat"]()
    info = PathInfo(
        "/etc/x",
        kind="file",
        raw_mode=0o100600,
        uid=0,
        gid=0,
        owner="root",
        group="root",
        size=3,
        mtime=1.0,
        checksum="ab" * 32,
        readable=True,
    )
    change = module.plan({"path": "/etc/x"}, {"path": info})
    assert change.steps == ()
    out = module.outcome({"path": "/etc/x"}, {"path": info}, change, [])
    assert not out.changed and not out.failed
    stat = out.data["stat"]
    assert stat["exists"] and stat["isreg"] and not stat["isdir"]
    assert stat["mode"] == "0600"
    assert stat["checksum"] == "ab" * 32
    assert (stat["pw_name"], stat["uid"], stat["size"]) == ("root", 0, 3)


def test_stat_of_a_missing_path_registers_exists_false() -> None:
    module = MODULES["stat"]()
    change = module.plan({"path": "/x"}, {"path": PathInfo("/x", kind="absent")})
    assert module.outcome({"path": "/x"}, {}, change, []).data == {"stat": {"exists": False}}


# wait_for


def test_wait_for_success_registers_elapsed() -> None:
    out = run("wait_for", {"port": 8080}, result("elapsed=4\n"))
    assert not out.failed and not out.changed
    assert out.data["elapsed"] == 4


def test_wait_for_timeout_names_what_it_waited_for() -> None:
    out = run("wait_for", {"port": 8080, "state": "stopped"}, result("elapsed=300\n", rc=1))
    assert out.failed == "Timeout when waiting for 127.0.0.1:8080 to stop"
    assert run("wait_for", {"path": "/run/x", "msg": "never ready"}, result(rc=1)).failed == "never ready"


def test_wait_for_that_cannot_check_says_why() -> None:
    out = run(
        "wait_for",
        {"host": "db", "port": 5432},
        result(rc=3, stderr="cannot test a TCP connection to db: the host has neither bash nor nc"),
    )
    assert "neither bash nor nc" in out.failed


# the default outcome


def test_default_outcome_fails_on_the_first_failed_step() -> None:
    module = MODULES["file"]()
    change = Change(changed=True, steps=(Command("chmod 00600 -- /x"), Command("chown -- coze /x")))
    assert len(change.steps) == 2
    out = module.outcome({}, {}, change, [result(), result(rc=1, stderr="chown: invalid user: 'coze'")])
    assert out.failed == "command exited 1: chown: invalid user: 'coze'"


def test_chained_steps_are_one_command_that_stops_at_the_first_failure() -> None:
    steps = [Command("false", contained=True), Command("touch /never", contained=True)]
    (joined,) = chained(steps)
    assert joined == Command("false && touch /never", contained=True)
    assert chained([Command("a", contained=True), Command("b")]) == (Command("a && b"),)
    assert chained([Command("only")]) == (Command("only"),) and chained([]) == ()
    with pytest.raises(ValueError, match="chained"):
        chained([Command("cat > f", stdin=b"x"), Command("sync")])
    with pytest.raises(ValueError, match="chained"):
        chained([Command("grep q f", ok_rc=(0, 1)), Command("sync")])


# health


def _health(body: str, status: int, checks: list[str]) -> Outcome:
    return run("health", {"url": "http://h/health", "checks": checks},
               result(f"{body}\n::status {status} 0.01 application/json\n"))


UNHEALTHY = ('{"status": "unhealthy", "checks": {"config": "ok", "log_dir": "ok", "data": "failed"}, '
             '"reasons": ["data: bots.json: checksum mismatch"]}')


def test_health_passes_on_its_own_checks_while_another_fault_fails_and_names_it() -> None:
    out = _health(UNHEALTHY, 503, ["config", "log_dir"])
    assert not out.failed
    assert out.data["others_failing"] == ["data"]
    assert "other checks still fail (another fault): data: bots.json: checksum mismatch" in out.data["msg"]


def test_health_fails_when_one_of_its_own_checks_fails_with_the_reason() -> None:
    out = _health(UNHEALTHY, 503, ["data"])
    assert out.failed == "status 503; data: bots.json: checksum mismatch"
    assert out.data["failing"] == ["data"]


def test_health_without_named_checks_is_decided_by_the_status_code() -> None:
    assert _health(UNHEALTHY, 503, []).failed.startswith("status 503, expected [200]: data: bots.json")
    assert not _health('{"status": "ok"}', 200, ["config"]).failed  # no named checks in the body


def test_health_check_the_service_does_not_report_fails() -> None:
    out = _health(UNHEALTHY, 503, ["redis"])
    assert out.failed == "status 503; redis: not reported by the service"


def test_health_without_an_answer_fails() -> None:
    out = run("health", {"url": "http://h/health", "checks": ["config"]},
              result("", rc=7, stderr="curl: (7) Failed to connect"))
    assert out.failed.startswith("no answer from the service: Request failed: curl: (7)")
