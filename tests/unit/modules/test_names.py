"""File names through a probe: sent through base64 on the host, read back exactly, shown escaped."""

from __future__ import annotations

import random
import subprocess

import pytest

from runner.modules.names import decoded, raw, shown

NAMES = [b"plain", b"a\nb", b"tab\there", b" spaces ", b"q\"uo'te", b"back\\slash", b"-dash",
         b"bad\xff\xfe", b"back\\xff", b"\\\\", b"caf\xc3\xa9", b"trail\n", b"\x1b[31mred"]


def sent(names: list[bytes]) -> str:
    """NUL-terminated ``names`` through this host's ``base64``, decoded as the connection does."""
    done = subprocess.run(["base64"], input=b"".join(n + b"\0" for n in names), capture_output=True,
                          check=True)
    return done.stdout.decode("utf-8", "backslashreplace")


@pytest.mark.parametrize("name", NAMES)
def test_a_name_is_read_back_byte_for_byte(name: bytes) -> None:
    [back] = decoded(sent([name])).split("\0")[:-1]
    assert raw(back) == name


def test_random_names_survive_the_round_trip() -> None:
    rng = random.Random(7)
    names = [bytes(rng.randrange(1, 256) for _ in range(rng.randint(1, 40))) for _ in range(300)]
    assert [raw(n) for n in decoded(sent(names)).split("\0")[:-1]] == names


def test_text_that_is_not_base64_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"(?i)padding|base64|character"):
        decoded("kind=d\n[remedy: 10 bytes of output omitted]")


@pytest.mark.parametrize(("name", "expected"), [
    ("/srv/data/bots.json", "/srv/data/bots.json"),
    ("/srv/it's $(x)/-a", "/srv/it's $(x)/-a"),
    ("/srv/a\nb", '"/srv/a\\nb"'),
    ("/srv/tab\there", '"/srv/tab\\there"'),
    ("/srv/ end ", '"/srv/ end "'),
    ('/srv/q"', '"/srv/q\\""'),
    ("/srv/back\\slash", '"/srv/back\\\\slash"'),
    ("/srv/bad\udcff", '"/srv/bad\\xff"'),
    ("/srv/\x1b[31m", '"/srv/\\x1b[31m"'),
    ("/srv/café", "/srv/café"),
])
def test_a_name_is_shown_as_it_is_when_plain_else_quoted_with_escapes(name: str, expected: str) -> None:
    assert shown(name) == expected
    assert shown(name).isprintable()
