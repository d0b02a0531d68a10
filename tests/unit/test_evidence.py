"""The diagnosis bundle: secrets masked by key name, the spec from a host's variables, one capture.

A capture runs for real through the local connection on a sandbox laid out
like a Coze host (config, logs, pid file): every file of the bundle comes
back, capped as documented, masked, and nothing stays in the temp dir.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.connection import Connection, ConnectionParams, open_connection
from runner.errors import InputError
from runner.load.inputs import bundled_playbooks
from runner.load.playbook import load_playbook
from runner.redaction import MASK, Redactor, mask_secret_keys
from runner.run.capture import MANIFEST, capture, mask_files, write_evidence, write_manifest
from runner.run.evidence import VARIABLES, evidence_spec

# --- secrets by key name ---------------------------------------------------------------------

MASKED_BY_KEY = [
    ("db_password: hunter22\nport: 8080", f"db_password: {MASK}\nport: 8080", ["hunter22"]),
    ('api_token: "two words"', f"api_token: {MASK}", ["two words"]),
    ("COZE_API_TOKEN=abc123\nCOZE_CONFIG=/etc/coze/config.yaml",
     f"COZE_API_TOKEN={MASK}\nCOZE_CONFIG=/etc/coze/config.yaml", ["abc123"]),
    ("export DB_PASSWORD='x y z'", f"export DB_PASSWORD={MASK}", ["x y z"]),
    ("# password: old-one\ninstance: host01", f"# password: {MASK}\ninstance: host01", ["old-one"]),
    ('  "client_secret": "s3cr3t",', f'  "client_secret": {MASK},', ["s3cr3t"]),
    ('{"secret_key": "k-123", "port": 80}', f'{{"secret_key": {MASK}, "port": 80}}', ["k-123"]),
    ("credentials:\n  user: bob\n  pass: nested-1\nport: 1",
     f"credentials:\n  user: {MASK}\n  pass: {MASK}\nport: 1", ["bob", "nested-1"]),
    ("tokens:\n  - aaaa\n  - bbbb\nname: x", f"tokens:\n  - {MASK}\n  - {MASK}\nname: x", ["aaaa", "bbbb"]),
    ("private_key: |\n  -----BEGIN KEY-----\n  Zm9vYmFy\nlevel: info",
     f"private_key: |\n  {MASK}\n  {MASK}\nlevel: info", ["-----BEGIN KEY-----", "Zm9vYmFy"]),
    ("postgres_url: postgresql://coze:pw-1234@127.0.0.1:5432/coze",
     f"postgres_url: postgresql://coze:{MASK}@127.0.0.1:5432/coze", ["pw-1234"]),
    ("SENTRY_DSN=https://abc@sentry.example/1", f"SENTRY_DSN={MASK}", ["https://abc@sentry.example/1"]),
    ("python3 app.py --db-password=letmein --port 80", f"python3 app.py --db-password={MASK} --port 80",
     ["letmein"]),
]


@pytest.mark.parametrize(("text", "masked", "values"), MASKED_BY_KEY)
def test_the_value_of_every_key_named_like_a_secret_is_masked(text: str, masked: str,
                                                              values: list[str]) -> None:
    assert mask_secret_keys(text) == (masked, values)


def test_keys_not_named_like_secrets_keep_their_values() -> None:
    text = "instance: host01\nport: 18080\nlog_dir: /var/log/coze\nredis_url: redis://127.0.0.1:6379/1\n"
    assert mask_secret_keys(text) == (text, [])


# --- the spec from a host's variables ---------------------------------------------------------


def test_the_defaults_are_the_bundled_playbooks_defaults() -> None:
    """Each bundled play's variables give the bundle the defaults give (a literal path equal to
    a default's rendered template counts as the same)."""
    defaults = evidence_spec({}, "h")
    compared = 0
    for path in bundled_playbooks().values():
        for play in load_playbook(path).plays:
            assert evidence_spec(play.vars, "h") == defaults, path.name
            compared += sum(name in play.vars for name in VARIABLES)
    assert compared >= 10


def test_the_spec_renders_the_hosts_variables_over_the_defaults() -> None:
    spec = evidence_spec({"coze_program": "/srv/coze/app.py", "coze_log_dir": "/srv/log",
                          "coze_port": "9090", "coze_service": "coze-api"}, "web1")
    assert spec.process_match == "/srv/coze/app.py"
    assert (spec.app_log, spec.error_log) == ("/srv/log/app.log", "/srv/log/error.log")
    assert (spec.port, spec.service, spec.config_name) == (9090, "coze-api", "config/config.yaml")
    assert spec.log_bytes == 262144


@pytest.mark.parametrize(("name", "value", "message"), [
    ("coze_config", "etc/coze.yaml", "coze_config must be an absolute path"),
    ("remedy_evidence_log_bytes", "lots", "remedy_evidence_log_bytes must be a byte count"),
    ("coze_process_match", "{{ nowhere }}", "coze_process_match: "),
    ("coze_env_prefix", "COZE-", "coze_env_prefix must be the start of a variable name"),
])
def test_a_bad_variable_is_an_input_error_naming_the_host_and_the_variable(
        name: str, value: str, message: str) -> None:
    with pytest.raises(InputError) as raised:
        evidence_spec({name: value}, "web1")
    assert "<variables of host web1>" in raised.value.render()
    assert message in raised.value.problems[0].message


# --- one capture ---------------------------------------------------------------------------


@pytest.fixture
def host_root(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    for sub in ("etc/coze", "var/log/coze", "run/coze", "tmp"):
        (root / sub).mkdir(parents=True)
    (root / "etc/coze/config.yaml").write_text(
        "instance: host01\nport: 18080\napi_token: CANARY-CONFIG-7f3a\n"
        "postgres_url: postgresql://coze:CANARY-URL-91@127.0.0.1:5432/coze\n")
    lines = b"".join(b"line %06d of the app log\n" % i for i in range(20000))
    (root / "var/log/coze/app.log").write_bytes(lines)
    (root / "var/log/coze/error.log").write_bytes(b"ERROR login failed for CANARY-CONFIG-7f3a\n\xff\xfe\n")
    (root / "run/coze/coze.pid").write_text("4194303\n")
    return root


def spec_for(root: Path, **extra: object) -> dict[str, object]:
    return {"coze_config": f"{root}/etc/coze/config.yaml", "coze_log_dir": f"{root}/var/log/coze",
            "coze_pid_file": f"{root}/run/coze/coze.pid", "coze_program": f"{root}/opt/none.py",
            "coze_system_logs": [f"{root}/var/log/syslog"], "remedy_evidence_log_bytes": 4096, **extra}


@pytest.fixture
def local(host_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Connection]:
    monkeypatch.setenv("TMPDIR", str(host_root / "tmp"))  # the host's temp dir: watched below
    conn = open_connection(ConnectionParams(name="local1", address="localhost", kind="local"))
    yield conn
    conn.close()


def test_a_capture_brings_back_every_file_capped_masked_and_leaves_nothing(host_root: Path,
                                                                           local: Connection) -> None:
    spec = evidence_spec(spec_for(host_root), "local1")
    evidence = capture(local, "local1", spec, Redactor(["CANARY-RUN-SECRET"]))
    assert evidence.error == ""
    assert sorted(evidence.files) == [
        "config/config.yaml", "logs/app.log", "logs/error.log", "network/listening.txt",
        "service/environment.txt", "service/files.txt", "service/processes.txt", "service/status.txt",
        "system/disk.txt", "system/load.txt", "system/memory.txt"]
    assert evidence.problems == (f"logs/system.log: none of {host_root}/var/log/syslog is a readable file, "
                                 "and there is no journal",)
    app = (host_root / "var/log/coze/app.log").read_bytes()
    assert evidence.files["logs/app.log"] == app[-4096:]  # the documented cap: the log's last bytes
    assert evidence.sources["logs/app.log"] == f"the last 4096 bytes of {host_root}/var/log/coze/app.log " \
                                                f"({len(app)} bytes)"
    assert evidence.files["config/config.yaml"] == (
        f"instance: host01\nport: 18080\napi_token: {MASK}\n"
        f"postgres_url: postgresql://coze:{MASK}@127.0.0.1:5432/coze\n").encode()
    # the config's secret is masked in the error log too; bytes that are not UTF-8 survive
    assert evidence.files["logs/error.log"] == f"ERROR login failed for {MASK}\n".encode() + b"\xff\xfe\n"
    status = evidence.files["service/status.txt"].decode()
    assert "pid_file_pid=4194303" in status and "pid_file_alive=no" in status
    assert b"service_port=18080 config" in evidence.files["network/listening.txt"]
    assert os.listdir(host_root / "tmp") == []  # the temp dir is gone


def test_a_run_secret_is_masked_in_every_file() -> None:
    spec = evidence_spec({}, "h")
    files, found = mask_files({"logs/app.log": b"connect with CANARY-RUN-SECRET\n",
                               "service/environment.txt": b"COZE_TOKEN=abcdef\n",
                               "service/processes.txt": b"app --header abcdef\n"}, spec,
                              Redactor(["CANARY-RUN-SECRET"]))
    assert files == {"logs/app.log": f"connect with {MASK}\n".encode(),
                     "service/environment.txt": f"COZE_TOKEN={MASK}\n".encode(),
                     "service/processes.txt": f"app --header {MASK}\n".encode()}
    assert found == 1


def test_written_evidence_has_a_manifest_of_every_file(host_root: Path, local: Connection,
                                                       tmp_path: Path) -> None:
    evidence = capture(local, "local1", evidence_spec(spec_for(host_root), "local1"), Redactor())
    target = tmp_path / "evidence" / "local1"
    write_evidence(evidence, target)
    manifest = write_manifest(target)
    listed = dict(reversed(line.split("  ", 1)) for line in manifest.read_text().splitlines())
    on_disk = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert sorted(listed) == [name for name in on_disk if name != MANIFEST]
    for name, digest in listed.items():
        assert hashlib.sha256((target / name).read_bytes()).hexdigest() == digest
    described = json.loads((target / "capture.json").read_text())
    assert described["problems"] == list(evidence.problems)
    assert set(described["files"]) == set(evidence.files)
    assert (target.stat().st_mode & 0o777) == 0o700
