"""``remedy collect`` and run evidence through the command line, on local hosts (no SSH needed).

Each local host is a sandbox laid out like a Coze host; its paths are inventory
variables. ``remedy collect`` packs one archive with every host, a manifest and
``summary.md``; a run keeps evidence before its first change and at the end
(``--no-evidence``: none); bad input is exit 4 before any host is contacted.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.cli.program import main
from runner.output.summary import host_findings
from runner.redaction import MASK
from runner.run.evidence import evidence_spec

CANARY = "CANARY-c011ec7-secret"


def sandbox(root: Path) -> Path:
    for sub in ("etc/coze", "var/log/coze", "run/coze"):
        (root / sub).mkdir(parents=True)
    (root / "etc/coze/config.yaml").write_text(f"instance: x\nport: 18080\ndb_password: {CANARY}\n")
    (root / "var/log/coze/error.log").write_text("ERROR address already in use: port 18080\n")
    (root / "run/coze/coze.pid").write_text("4194303\n")
    return root


def host_line(name: str, root: Path) -> str:
    return (f"{name} ansible_connection=local coze_config={root}/etc/coze/config.yaml "
            f"coze_log_dir={root}/var/log/coze coze_pid_file={root}/run/coze/coze.pid "
            f"coze_program={root}/opt/none.py coze_system_logs=\"['{root}/syslog']\" "
            f"remedy_lock_path={root}/remedy.lock")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    lines = [host_line(f"local{i}", sandbox(tmp_path / f"root{i}")) for i in (1, 2)]
    (tmp_path / "hosts.ini").write_text("[coze]\n" + "\n".join(lines) + "\n")
    (tmp_path / "out").mkdir()
    return tmp_path


def archive_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_collect_packs_every_host_with_a_manifest_and_a_summary(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["collect", "-i", str(site / "hosts.ini"), "-o", str(site / "out")]) == 0
    archives = list((site / "out").iterdir())
    assert len(archives) == 1 and archives[0].name.endswith(".tar.gz")
    assert str(archives[0]) in capsys.readouterr().out
    members = archive_members(archives[0])
    top = archives[0].name.removesuffix(".tar.gz")
    manifest = members.pop(f"{top}/MANIFEST.sha256").decode()
    listed = {name: digest for digest, name in (line.split("  ", 1) for line in manifest.splitlines())}
    assert sorted(f"{top}/{name}" for name in listed) == sorted(members)
    for name, digest in listed.items():
        assert hashlib.sha256(members[f"{top}/{name}"]).hexdigest() == digest
    for host in ("local1", "local2"):
        assert f"{top}/{host}/config/config.yaml" in members
        assert f"{top}/{host}/capture.json" in members
    assert not any(CANARY.encode() in data for data in members.values())
    summary = members[f"{top}/summary.md"].decode()
    assert "## local1" in summary and "## local2" in summary
    assert "names 4194303, which is not running" in summary
    assert "nothing listens on port 18080 (config)" in summary
    assert "error.log: ERROR address already in use: port 18080" in summary


def test_collect_of_a_slice_packs_only_its_hosts(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["collect", "-i", str(site / "hosts.ini"), "-o", str(site / "out"), "--slice", "2/3"]) == 0
    (archive,) = (site / "out").iterdir()  # local1 is in slice 2 of 3, local2 in slice 1
    hosts = {name.split("/")[1] for name in archive_members(archive) if name.count("/") > 1}
    assert hosts == {"local1"}
    assert main(["collect", "-i", str(site / "hosts.ini"), "--slice", "3/2"]) == 4
    assert "--slice '3/2' is not K/N" in capsys.readouterr().err


def test_an_unreachable_host_is_exit_3_and_the_others_are_still_packed(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with (site / "hosts.ini").open("a") as inventory:
        inventory.write("web1 ansible_host=127.0.0.1 ansible_port=9\n")
    code = main(["collect", "-i", str(site / "hosts.ini"), "-o", str(site / "out"), "--known-hosts",
                 str(site / "known_hosts")])
    assert code == 3
    (archive,) = (site / "out").iterdir()
    summary = next(data for name, data in archive_members(archive).items() if name.endswith("summary.md"))
    assert "| web1 | unreachable: connect" in summary.decode()
    assert "Not collected (unreachable)" in summary.decode()
    assert any(name.endswith("local2/logs/error.log") for name in archive_members(archive))


@pytest.mark.parametrize(("args", "message"), [
    (["-o", "/nonexistent/dir"], "-o '/nonexistent/dir' does not exist"),
    (["-e", "remedy_evidence_log_bytes=12"], "remedy_evidence_log_bytes must be a byte count"),
    (["-l", "nosuchhost"], "nosuchhost"),
])
def test_bad_input_is_exit_4_before_any_host_is_contacted(
        site: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    with (site / "hosts.ini").open("a") as inventory:
        inventory.write("web1 ansible_host=127.0.0.1 ansible_port=9\n")  # contacted: exit 3
    code = main(["collect", "-i", str(site / "hosts.ini"), "-o", str(site / "out"), *args])
    assert code == 4
    assert message in capsys.readouterr().err
    assert not list((site / "out").iterdir())


# --- evidence of a run ---------------------------------------------------------------------

FIX = """\
- name: set {key} in the config
  hosts: all
  vars:
{vars}
  diagnose:
    - name: the config says {key} is fixed
      command: "grep -qx '{key}: fixed' {{{{ coze_config }}}}"
      failed_when: diagnosed.rc != 0
      changed_when: false
      register: diagnosed
  tasks:
    - name: fix {key}
      lineinfile: {{path: "{{{{ coze_config }}}}", regexp: "^{key}:", line: "{key}: fixed"}}
"""


RunJson = Callable[..., dict[str, Any]]


@pytest.fixture
def json_out(capsys: pytest.CaptureFixture[str]) -> RunJson:
    """``json_out(site, playbook text, *args)``: ``remedy run`` on local1, its JSON document."""

    def read(site: Path, book: str, *args: str) -> dict[str, Any]:
        (site / "book.yml").write_text(book)
        code = main(["run", str(site / "book.yml"), "-i", str(site / "hosts.ini"), "-l", "local1",
                     "--audit-log", str(site / "state" / "audit.jsonl"), "--format", "json", *args])
        assert code == 0
        return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]
    return read


def test_a_run_keeps_evidence_before_the_first_change_and_at_the_end(site: Path, json_out: RunJson) -> None:
    document = json_out(site, FIX.format(key="instance", vars="    remedy_evidence: true"))
    (host,) = document["hosts"]
    evidence = host["evidence"]
    root = site / "state" / "evidence" / document["run_id"] / "local1"
    assert evidence == {"before": str(root / "before"), "after": str(root / "after")}
    assert "instance: x" in (root / "before/config/config.yaml").read_text()  # before the change
    assert "instance: fixed" in (root / "after/config/config.yaml").read_text()
    for phase in ("before", "after"):
        assert (root / phase / "MANIFEST.sha256").is_file()
        assert CANARY.encode() not in (root / phase / "config/config.yaml").read_bytes()
        assert MASK.encode() in (root / phase / "config/config.yaml").read_bytes()
    again = json_out(site, FIX.format(key="instance", vars="    remedy_evidence: true"))
    assert again["hosts"][0]["evidence"] is None  # nothing changed: nothing to keep


def test_a_host_with_several_faults_keeps_one_capture_before_and_one_at_the_end(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    books = []
    for name in ("instance", "level"):
        (site / f"{name}.yml").write_text(FIX.format(key=name, vars="    remedy_evidence: true"))
        books.append(str(site / f"{name}.yml"))
    code = main(["run", *books, "-i", str(site / "hosts.ini"), "-l", "local1", "--audit-log",
                 str(site / "state" / "audit.jsonl"), "--format", "json"])
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [f["state"] for f in document["hosts"][0]["faults"]] == ["fixed", "fixed"]
    root = site / "state" / "evidence" / document["run_id"] / "local1"
    assert sorted(p.name for p in root.iterdir()) == ["after", "before"]
    assert document["hosts"][0]["evidence"] == {"before": str(root / "before"), "after": str(root / "after")}
    config = {phase: (root / phase / "config/config.yaml").read_text() for phase in ("before", "after")}
    assert "instance: x" in config["before"] and "level: fixed" not in config["before"]
    assert "instance: fixed" in config["after"] and "level: fixed" in config["after"]


@pytest.mark.parametrize(("variables", "args"), [
    ("    remedy_evidence: true", ["--no-evidence"]),  # the option turns it off
    ("    other: 1", []),  # a playbook of one's own keeps none unless it asks
])
def test_no_evidence_is_kept_when_turned_off_or_not_asked_for(
        site: Path, json_out: RunJson, variables: str, args: list[str]) -> None:
    document = json_out(site, FIX.format(key="instance", vars=variables), *args)
    assert document["hosts"][0]["status"] == "changed"
    assert document["hosts"][0]["evidence"] is None
    assert not (site / "state" / "evidence").exists()


# --- the summary's findings ----------------------------------------------------------------


def test_the_summary_names_a_foreign_port_holder_a_full_disk_and_low_memory() -> None:
    files = {
        "service/status.txt": "service=coze\nsystemd=no\npid_file=/run/coze/coze.pid\npid_file_pid=120\n"
                              "pid_file_alive=yes\nmain_pid=120 (pid file)\n"
                              "main_cmdline=/usr/bin/python3 /opt/coze/cozeservice.py --daemon \n",
        "network/listening.txt": "service_port=8080 config\nuid=0\nmethod=ss\n"
                                 "ss LISTEN 0 5 127.0.0.1:8080 0.0.0.0:* users:((\"python3\",pid=977,fd=3))\n"
                                 "proc 977 www-data /usr/bin/python3 -m http.server 8080 \npidfile 120\n",
        "system/disk.txt": "Filesystem Size Used Avail Use% Mounted on\n/dev/sda1 10G 9.6G 0.4G 96% /\n\n"
                           "Filesystem Inodes IUsed IFree IUse% Mounted on\n/dev/sda1 100 10 90 10% /\n",
        "system/memory.txt": "MemTotal:       1000000 kB\nMemAvailable:     50000 kB\n",
        "system/load.txt": "loadavg=0.50 0.40 0.30 1/99 1234\ncpus=4\n",
    }
    found = host_findings(files, evidence_spec({}, "h"), [])
    assert found.service == "running as pid 120 (python3 cozeservice.py, found by its pid file)"
    assert found.port.startswith("8080 (config): NOT the service: pid 977 (python3 -m http.server)")
    assert found.system == ("fullest: / disk 96% used, memory 48 MiB available of 976 MiB, "
                            "load 0.50 0.40 0.30 on 4 CPUs")
    assert found.wrong == ("port 8080 is held by another process: pid 977 (python3 -m http.server) "
                           "holding 127.0.0.1:8080", "/ disk 96% used", "memory: only 5% available")
