"""runner.testing's fakes: scripted results, recorded calls, loud failures on surprises."""

from __future__ import annotations

import re

import pytest

from runner.connection import Become, Connection, ConnectionParams
from runner.connection.local import LocalConnection
from runner.errors import CommandTimeout
from runner.results import CommandResult
from runner.testing import (
    FakeCall,
    FakeConnection,
    RecordingConnection,
    UnexpectedCommandError,
    result,
)


def test_exact_commands_get_their_scripted_result_with_the_command_filled_in() -> None:
    conn = FakeConnection({"id -u": result("0\n"), "false": result(rc=1, stderr="no")})
    assert conn.run("id -u") == CommandResult("id -u", 0, "0\n")
    assert conn.run("false") == CommandResult("false", 1, "", "no")


def test_a_string_response_is_stdout_of_a_successful_command() -> None:
    assert FakeConnection({"hostname": "web1\n"}).run("hostname").stdout == "web1\n"


def test_regex_matchers_must_match_the_whole_command() -> None:
    conn = FakeConnection({re.compile(r"test -e \S+"): result(rc=1)})
    assert conn.run("test -e /etc/x").rc == 1
    with pytest.raises(UnexpectedCommandError):
        conn.run("test -e /etc/x && rm -rf /")


def test_exact_matches_win_over_patterns_and_patterns_go_in_order() -> None:
    conn = FakeConnection(
        {
            re.compile(r"cat .*"): "first",
            (lambda command: command.startswith("cat")): "second",
            "cat /etc/hosts": "exact",
        }
    )
    assert conn.run("cat /etc/hosts").stdout == "exact"
    assert conn.run("cat /etc/motd").stdout == "first"


def test_callable_responses_see_the_call() -> None:
    conn = FakeConnection({"cat": lambda call: result((call.stdin or b"").decode())})
    assert conn.run("cat", stdin=b"data").stdout == "data"


def test_exception_responses_are_raised() -> None:
    error = CommandTimeout("web1: timed out", CommandResult("sleep 9", None, timed_out=True))
    conn = FakeConnection({"sleep 9": error})
    with pytest.raises(CommandTimeout):
        conn.run("sleep 9")


def test_unknown_commands_fail_loudly_naming_the_command() -> None:
    conn = FakeConnection({}, host="db1")
    with pytest.raises(AssertionError, match=r"db1: unexpected command: 'rm -rf /tmp/x'"):
        conn.run("rm -rf /tmp/x")
    assert conn.commands == ["rm -rf /tmp/x"]


def test_every_call_is_recorded_with_stdin_become_env_and_timeout() -> None:
    conn = FakeConnection({"true": result()})
    become = Become(user="postgres")
    conn.run("true", stdin=b"x", become=become, env={"A": "1"}, timeout=5)
    conn.run("true")
    assert conn.calls == [FakeCall("true", b"x", become, {"A": "1"}, 5), FakeCall("true")]


def test_files_put_can_be_got_back() -> None:
    conn = FakeConnection(files={"/etc/a": b"a"})
    conn.put(b"b", "/etc/b")
    assert (conn.get("/etc/a"), conn.get("/etc/b")) == (b"a", b"b")
    with pytest.raises(FileNotFoundError):
        conn.get("/etc/c")


def test_held_commands_replay_the_scripted_lines() -> None:
    conn = FakeConnection({re.compile(r"flock .*"): "LOCKED\n"})
    held = conn.hold("flock -n /var/lock/remedy.lock -c 'echo LOCKED; cat'")
    assert held.readline(1) == "LOCKED"
    assert held.readline(1) is None
    held.close()
    assert not held.running


def test_fakes_satisfy_the_connection_protocol() -> None:
    conns: list[Connection] = [FakeConnection(), RecordingConnection(FakeConnection())]
    for conn in conns:
        conn.connect()
        conn.close()


def test_the_recording_connection_forwards_and_records() -> None:
    inner = LocalConnection(ConnectionParams(name="l", address="l", kind="local"))
    conn = RecordingConnection(inner)
    assert conn.run("echo $A", env={"A": "1"}).stdout == "1\n"
    assert conn.run("cat", stdin=b"in").stdout == "in"
    assert conn.commands == ["echo $A", "cat"]
    assert conn.calls[0].env == {"A": "1"} and conn.calls[1].stdin == b"in"
    held = conn.hold("echo LOCKED; cat")
    assert held.readline(10) == "LOCKED"
    conn.close()
    assert conn.held == ["echo LOCKED; cat"] and not held.running


def test_getting_a_file_larger_than_the_limit_fails_like_real_connections() -> None:
    conn = FakeConnection(files={"/big": b"x" * 10})
    with pytest.raises(OSError, match="larger than 5 bytes"):
        conn.get("/big", limit=5)


def test_the_public_names_are_exactly_those_in_all() -> None:
    import runner.testing as testing

    public = {
        name
        for name, value in vars(testing).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == testing.__name__
    }
    assert public <= set(testing.__all__)
    assert all(hasattr(testing, name) for name in testing.__all__)
