"""End to end over real sshd hosts: every core module fixes a fleet, plan == run, reruns change nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.testing import SshdFleet
from tests.support.loopback import closed_port

HOSTS = 10

PLAYBOOK = """
- name: repair the web sandbox
  hosts: all
  vars:
    config_mode: "0640"
  diagnose:
    - {name: read the config, id: cfg, stat: {path: "{{ root }}/etc/app.conf"}, register: cfg}
    - name: the sandbox is healthy
      assert:
        that:
          - cfg.stat.mode == config_mode
        fail_msg: "config mode is {{ cfg.stat.mode }}"
  tasks:
    - {name: note the host, debug: {msg: "fixing {{ inventory_hostname }}"}}
    - {name: remember the port, set_fact: {web_port: "{{ port }}"}}
    - {name: fix the config mode, file: {path: "{{ root }}/etc/app.conf", mode: "{{ config_mode }}"}}
    - {name: log dir, file: {path: "{{ root }}/log", state: directory, mode: "0750"}}
    - name: render the site config
      template: {src: site.conf.j2, dest: "{{ root }}/etc/site.conf", mode: "0644"}
    - name: page to serve
      copy: {content: "hello from {{ inventory_hostname }}\\n", dest: "{{ root }}/www/index.html"}
    - name: enable caching
      lineinfile: {path: "{{ root }}/etc/app.conf", regexp: "^cache=", line: "cache=on"}
    - name: drop the stale pid file
      command: {cmd: "rm -f {{ root }}/run/stale.pid", removes: "{{ root }}/run/stale.pid"}
    - name: start the web server
      service:
        name: web
        manager: pidfile
        pidfile: "{{ root }}/run/web.pid"
        start: "python3 -m http.server {{ web_port }} --bind 127.0.0.1 --directory {{ root }}/www"
        match: http.server {{ web_port }}
        start_timeout: 3
        state: started
    - {name: wait for it, wait_for: {host: 127.0.0.1, port: "{{ web_port | int }}", timeout: 20}}
    - name: write a marker once
      shell: {cmd: "echo done > {{ root }}/marker", creates: "{{ root }}/marker"}
    - name: collect the config
      fetch: {src: "{{ root }}/etc/site.conf", dest: "{{ fetch_dir }}", flat: false}
  verify:
    - {name: serves the page, uri: {url: "http://127.0.0.1:{{ web_port }}/index.html", return_content: true},
       register: page}
    - assert: {that: ["'hello from ' ~ inventory_hostname in page.content"]}
    - {name: never fails, fail: {msg: unreachable}, when: page.status != 200}
  rollback:
    - {name: stop the web server, service: {name: web, manager: pidfile, pidfile: "{{ root }}/run/web.pid",
       state: stopped}}
"""


@pytest.fixture(scope="module")
def fleet() -> Iterator[SshdFleet]:
    with SshdFleet(HOSTS) as servers:
        yield servers


@pytest.fixture
def site(tmp_path: Path, fleet: SshdFleet) -> Iterator[Path]:
    book = tmp_path / "book.yml"
    book.write_text(PLAYBOOK)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "site.conf.j2").write_text(
        "host={{ inventory_hostname }}\nport={{ web_port }}\nroot={{ root }}\n")
    lines = ["[web]"]
    for params in fleet.params():
        root = tmp_path / "hosts" / params.name
        for sub in ("etc", "www", "run"):
            (root / sub).mkdir(parents=True)
        (root / "etc" / "app.conf").write_text("name=web\ncache=off\n")
        (root / "etc" / "app.conf").chmod(0o666)
        (root / "run" / "stale.pid").write_text("999999\n")
        port = closed_port()
        lines.append(f"{params.name} ansible_host=127.0.0.1 ansible_port={params.port} "
                     f"ansible_user={params.user} ansible_ssh_private_key_file={params.key_file} "
                     f"root={root} port={port} remedy_lock_path={root}/remedy.lock")
    lines += ["[web:vars]", f"remedy_known_hosts={fleet.known_hosts}", f"fetch_dir={tmp_path}/fetched"]
    (tmp_path / "hosts.ini").write_text("\n".join(lines) + "\n")
    (tmp_path / "ssh_config").write_text("")
    yield tmp_path
    subprocess.run(["pkill", "-f", "--", f"--directory {tmp_path}/hosts"], check=False)


def remedy(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "runner", *args, "-F", str(site / "ssh_config"),
               "--audit-log", str(site / "audit.jsonl")]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def changed_count(document: dict) -> int:  # type: ignore[type-arg]
    return sum(1 for h in document["hosts"] for t in h["tasks"] if t["changed"])


def test_every_core_module_fixes_ten_hosts_as_planned_and_a_rerun_changes_nothing(site: Path) -> None:
    book, inventory = str(site / "book.yml"), str(site / "hosts.ini")
    plan = remedy(site, "plan", book, "-i", inventory, "-o", str(site / "plan.json"))
    assert plan.returncode == 0, plan.stderr
    planned = json.loads((site / "plan.json").read_text())
    assert len(planned["hosts"]) == HOSTS

    run = remedy(site, "run", book, "-i", inventory, "--compare-plan", str(site / "plan.json"),
                 "--format", "json")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "changed exactly what the saved plan predicted" in run.stderr
    document = json.loads(run.stdout)
    assert {h["status"] for h in document["hosts"]} == {"changed"}
    for host in document["hosts"]:
        root = site / "hosts" / host["host"]
        assert oct((root / "etc" / "app.conf").stat().st_mode & 0o777) == "0o640"
        assert "cache=on" in (root / "etc" / "app.conf").read_text()
        assert not (root / "run" / "stale.pid").exists()
        assert (site / "fetched" / host["host"]).exists()

    again = remedy(site, "run", book, "-i", inventory, "--format", "json")
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads(again.stdout)
    assert changed_count(second) == 0
    assert {h["status"] for h in second["hosts"]} == {"healthy"}


def test_an_unknown_host_key_is_refused_before_auth_and_nothing_changes(site: Path, fleet: SshdFleet) -> None:
    empty = site / "empty_known_hosts"
    empty.write_text("")
    inventory = site / "hosts.ini"
    inventory.write_text(inventory.read_text().replace(f"remedy_known_hosts={fleet.known_hosts}",
                                                       f"remedy_known_hosts={empty}"))
    before = [s.auth_attempts() for s in fleet]
    result = remedy(site, "run", str(site / "book.yml"), "-i", str(inventory), "-l", "web[0:1]")
    assert result.returncode == 3, result.stderr
    assert "host_key" in result.stderr
    assert [s.auth_attempts() for s in fleet] == before
    for name in ("host01", "host02"):
        assert oct((site / "hosts" / name / "etc" / "app.conf").stat().st_mode & 0o777) == "0o666"


def test_a_changed_host_key_is_refused_with_both_fingerprints(tmp_path: Path) -> None:
    from runner.testing import Sshd

    with Sshd() as server:
        old = server.host_key_fingerprint
        root = tmp_path / "root"
        root.mkdir()
        (tmp_path / "ssh_config").write_text("")
        (tmp_path / "hosts.ini").write_text(
            f"h ansible_host=127.0.0.1 ansible_port={server.port} ansible_user={server.user} "
            f"ansible_ssh_private_key_file={server.client_key} remedy_known_hosts={server.known_hosts}\n")
        (tmp_path / "book.yml").write_text(
            f"- hosts: all\n  tasks:\n    - file: {{path: {root}/touched, state: touch}}\n")
        server.restart_with_new_host_key()
        before = server.auth_attempts()
        result = remedy(tmp_path, "run", str(tmp_path / "book.yml"), "-i", str(tmp_path / "hosts.ini"))
        assert result.returncode == 3, result.stderr
        assert old in result.stderr and server.host_key_fingerprint in result.stderr
        assert server.auth_attempts() == before
        assert not (root / "touched").exists()


def test_two_concurrent_runs_on_one_host_never_interleave(site: Path, fleet: SshdFleet) -> None:
    book = site / "slow.yml"
    book.write_text("""
- hosts: all
  tasks:
    - name: hold the host until the test releases it (at most 60 s)
      shell: "touch {{ root }}/holding; i=0;
        while [ ! -e {{ root }}/release ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done;
        rm {{ root }}/holding"
""")
    first = subprocess.Popen([sys.executable, "-m", "runner", "run", str(book), "-i", str(site / "hosts.ini"),
                              "-l", "host01", "-F", str(site / "ssh_config"), "--audit-log",
                              str(site / "first.jsonl")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        from tests.support.waiting import wait_until

        wait_until(lambda: (site / "hosts" / "host01" / "holding").exists(), timeout=30,
                   what="the first run to hold the host")
        second = remedy(site, "run", str(book), "-i", str(site / "hosts.ini"), "-l", "host01",
                        "--format", "json")
        (site / "hosts" / "host01" / "release").touch()
        first_out, first_err = first.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode == 0, first_err
    assert second.returncode == 2
    document = json.loads(second.stdout)
    [task] = document["hosts"][0]["tasks"]
    assert task["status"] == "not_run" and "locked" in task["message"]
