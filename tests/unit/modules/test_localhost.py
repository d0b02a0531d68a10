"""Modules against this machine's real sh: probes read real files, plans converge.

Each test plans, applies the steps with a local stand-in for the executor and
plans again: the second plan must predict no change. File names carry shell
metacharacters; a sentinel file proves nothing in them was ever executed.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runner.modules import MODULES
from runner.modules.pathfact import Probe, path_fact
from runner.results import CommandResult
from tests.support.waiting import wait_until
from tests.unit.modules.localrun import apply, converge, gather, path_without, plan, sh

NASTY = ["x; touch {s}", "$(touch {s})", "`touch {s}`", "-rf", 'it\'s "q"', "new\nline", "sp ace", "ü✓"]


@pytest.fixture
def sentinel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Commands run in tmp_path; a value that reached the shell as code would create PWNED."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "a value was executed by the shell"


@pytest.mark.parametrize("template", NASTY)
def test_path_probe_describes_real_files_with_hostile_names(
    tmp_path: Path, sentinel: Path, template: str
) -> None:
    path = tmp_path / template
    path.write_bytes(b"hello\n")
    os.chmod(path, 0o4751)
    info = path_fact(str(path), Probe(checksum="sha256", content_limit=1000)).parse(
        sh(path_fact(str(path), Probe(checksum="sha256", content_limit=1000)).command)
    )
    real = os.lstat(path)
    assert (info.kind, info.mode, info.uid, info.size) == ("file", 0o4751, real.st_uid, 6)
    assert info.content == "hello\n"
    assert info.checksum == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"


def test_relative_path_with_a_leading_dash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-n").mkdir()
    (tmp_path / "-n" / "f").write_text("x")
    fact = path_fact("-n", Probe(tree=True))
    info = fact.parse(sh(fact.command))
    assert info.kind == "directory"
    assert info.tree is not None and sum(e.count for e in info.tree) == 2


def test_probe_kinds_parent_and_link(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "l").symlink_to("d")
    os.mkfifo(tmp_path / "fifo")
    kinds = {}
    for name in ("d", "l", "fifo", "missing", "no/dir"):
        fact = path_fact(str(tmp_path / name))
        kinds[name] = fact.parse(sh(fact.command))
    assert kinds["d"].kind == "directory" and kinds["fifo"].kind == "other"
    assert (kinds["l"].kind, kinds["l"].link_target) == ("link", "d")
    assert (kinds["missing"].kind, kinds["missing"].parent) == ("absent", "directory")
    assert (kinds["no/dir"].kind, kinds["no/dir"].parent) == ("absent", "absent")
    followed = path_fact(str(tmp_path / "l"), Probe(follow=True))
    assert followed.parse(sh(followed.command)).kind == "directory"


def test_probe_without_stat_falls_back_to_ls(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("abc")
    os.chmod(target, 0o2640)
    env = path_without(tmp_path, "stat", "sha256sum")
    info = MODULES["stat"]().plan(
        {"path": str(target)}, gather(MODULES["stat"](), {"path": str(target)}, env)
    )
    st_ = info.data["stat"]
    assert (st_["mode"], st_["size"], st_["isreg"], st_["mtime"]) == ("2640", 3, True, None)
    assert st_["pw_name"] == "root" and st_["uid"] == 0
    assert st_["checksum"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "openssl"


def test_stat_matches_os_stat(tmp_path: Path) -> None:
    target = tmp_path / "d"
    target.mkdir(mode=0o755)
    os.chmod(target, 0o1777)
    data = plan("stat", {"path": str(target)}).data["stat"]
    real = os.stat(target)
    assert data["mode"] == "1777" and data["isdir"] and not data["isreg"]
    assert (data["uid"], data["gid"], data["mtime"]) == (real.st_uid, real.st_gid, float(int(real.st_mtime)))
    assert data["xoth"] and data["woth"]


def test_file_converges_directory_tree_with_symbolic_mode(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "sub" / "run.sh", 0o777)
    (root / "conf").write_text("x")
    os.chmod(root / "conf", 0o666)
    (root / "link").symlink_to("conf")
    first = converge(
        "file",
        {
            "path": str(root),
            "state": "directory",
            "recurse": True,
            "mode": "u=rwX,g=rX,o=",
            "owner": "65534",
            "group": "65534",
        },
    )
    assert first.changed and first.predictable
    assert stat.S_IMODE(os.stat(root / "sub" / "run.sh").st_mode) == 0o750
    assert stat.S_IMODE(os.stat(root / "conf").st_mode) == 0o640
    assert os.lstat(root / "link").st_uid == 65534


def test_file_converges_each_state(tmp_path: Path, sentinel: Path) -> None:
    base = tmp_path / "x; touch PWNED"
    converge("file", {"path": str(base), "state": "directory", "mode": "0750"})
    converge("file", {"path": str(base / "$(id)"), "state": "touch", "mode": "u+x"})
    assert stat.S_IMODE(os.stat(base / "$(id)").st_mode) & 0o100
    converge("file", {"path": str(base / "-link"), "state": "link", "src": "$(id)"})
    assert os.readlink(base / "-link") == "$(id)"
    converge("file", {"path": str(base / "-link"), "state": "link", "src": "other"})
    converge("file", {"path": str(base), "state": "absent"})
    assert not base.exists()


def test_file_refuses_to_chmod_through_a_link(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s")
    os.chmod(secret, 0o600)
    (tmp_path / "l").symlink_to(secret)
    change = plan("file", {"path": str(tmp_path / "l"), "mode": "0666", "state": "file"})
    assert "symbolic link" in change.failed
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600


def test_copy_converges_and_keeps_owner_of_replaced_file(tmp_path: Path) -> None:
    dest = tmp_path / "config.yaml"
    dest.write_text("old\n")
    os.chown(dest, 65534, 65534)
    os.chmod(dest, 0o640)
    first = converge("copy", {"dest": str(dest), "content": "port: 8081\n", "backup": False})
    assert first.diffs[0].before == "old\n"
    assert dest.read_text() == "port: 8081\n"
    real = os.stat(dest)
    assert (real.st_uid, real.st_gid, stat.S_IMODE(real.st_mode)) == (65534, 65534, 0o640)
    converge("copy", {"dest": str(dest), "content": "port: 8081\n", "mode": "0600", "owner": "root"})
    assert os.stat(dest).st_uid == 0


def test_copy_refuses_a_link_and_a_missing_parent(tmp_path: Path) -> None:
    (tmp_path / "l").symlink_to("/etc/passwd")
    assert "symbolic link" in plan("copy", {"dest": str(tmp_path / "l"), "content": "x"}).failed
    assert "does not exist" in plan("copy", {"dest": str(tmp_path / "no" / "f"), "content": "x"}).failed


def test_lineinfile_converges_on_a_real_file(tmp_path: Path) -> None:
    conf = tmp_path / "coze.conf"
    conf.write_text("# coze\nport = 8080\nworkers = 4")
    converge("lineinfile", {"path": str(conf), "regexp": "^port", "line": "port = 8081"})
    converge("lineinfile", {"path": str(conf), "line": "log = $(reboot)", "insertafter": "^port"})
    converge("lineinfile", {"path": str(conf), "regexp": "^workers", "state": "absent"})
    assert conf.read_text() == "# coze\nport = 8081\nlog = $(reboot)\n"


def test_lineinfile_refuses_a_file_that_is_not_utf8_text(tmp_path: Path) -> None:
    blob = tmp_path / "latin1.conf"
    blob.write_bytes(b"caf\xe9 = 1\n")
    module = MODULES["lineinfile"]()
    args = {"path": str(blob), "line": "x = 2"}
    fact = module.facts(args)["path"]
    raw = subprocess.run(["sh", "-c", fact.command], capture_output=True, check=True)
    # the connection decodes output as UTF-8 with bad bytes backslash-escaped
    decoded = CommandResult(fact.command, 0, raw.stdout.decode("utf-8", "backslashreplace"))
    change = module.plan(args, {"path": fact.parse(decoded)})
    assert "not UTF-8 text" in change.failed


def test_command_guards_and_metacharacters(tmp_path: Path, sentinel: Path) -> None:
    marker = tmp_path / "made; touch PWNED"
    args = {"argv": ["touch", "--", str(marker)], "creates": str(marker)}
    first = converge("command", args)
    assert first.changed and first.predictable and marker.exists()
    out = apply(plan("command", {"cmd": "printf %s 'a; touch PWNED' '$(id)'", "chdir": str(tmp_path)}))
    assert out[0].stdout == "a; touch PWNED$(id)"


def test_shell_runs_pipes_in_chdir(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("1\n2\n3\n")
    out = apply(plan("shell", {"cmd": "cat a | wc -l", "chdir": str(tmp_path), "stdin": "ignored"}))
    assert out[0].stdout.strip() == "3"


@pytest.fixture
def listening_port() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server.getsockname()[1]
    server.close()


def test_wait_for_sees_a_listening_port_in_proc_net_tcp(listening_port: int) -> None:
    module = MODULES["wait_for"]()
    args = {"port": listening_port, "timeout": 5}
    results = apply(module.plan(args, {}))
    assert results[0].rc == 0, results[0].stderr
    closed = {"port": listening_port, "state": "stopped", "timeout": 1}
    change = module.plan(closed, {})
    outcome = module.outcome(closed, {}, change, apply(change))
    assert outcome.failed == f"Timeout when waiting for 127.0.0.1:{listening_port} to stop"


def test_wait_for_connects_to_another_host_with_bash() -> None:
    with socket.socket() as server:
        server.bind(("0.0.0.0", 0))  # noqa: S104 - reachable as 127.0.0.2, which is not "this host" by name
        server.listen()
        port = server.getsockname()[1]
        change = MODULES["wait_for"]().plan({"host": "127.0.0.2", "port": port, "timeout": 3}, {})
        assert "/dev/tcp" in change.steps[0].command and "/proc/net/tcp" not in change.steps[0].command  # type: ignore[union-attr]
        assert apply(change)[0].rc == 0


def test_wait_for_a_string_in_a_file(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    threading.Timer(1.0, lambda: log.write_text("starting\nlistening on 0.0.0.0:8080\n")).start()
    change = MODULES["wait_for"]().plan(
        {"path": str(log), "search_regex": "listening on .*:8080", "timeout": 10}, {}
    )
    assert apply(change)[0].rc == 0


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        code = 200 if self.path == "/health" else 404
        body = json.dumps({"path": self.path, "note": self.headers.get("X-Note")}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(201)
        self.send_header("Content-Type", self.headers["Content-Type"])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("client", ["curl", "wget"])
def test_uri_against_a_local_server(http_url: str, client: str, tmp_path: Path) -> None:
    module = MODULES["uri"]()
    env = path_without(tmp_path, "curl") if client == "wget" else None
    cases: list[tuple[dict[str, object], int, str]] = [
        ({"url": f"{http_url}/health", "headers": {"X-Note": "it's $(id)"}}, 200, ""),
        ({"url": f"{http_url}/nope"}, 404, "Status code was 404 and not [200]"),
        (
            {
                "url": f"{http_url}/echo",
                "method": "POST",
                "body": {"k": "$(id)"},
                "body_format": "json",
                "status_code": [201],
                "return_content": True,
            },
            201,
            "",
        ),
    ]
    for args, status, failure in cases:
        change = module.plan(args, {})
        step = change.steps[0]
        results = [sh(step.command, step.stdin, env)]  # type: ignore[union-attr]
        outcome = module.outcome(args, {}, change, results)
        assert outcome.data["status"] == status, (client, results[0].stderr)
        assert outcome.failed.startswith(failure) if failure else not outcome.failed
        if status == 200:
            assert outcome.data["json"] == {"path": "/health", "note": "it's $(id)"}
        if status == 201:
            assert outcome.data["json"] == {"k": "$(id)"}


def test_uri_connection_refused(listening_port: int) -> None:
    module = MODULES["uri"]()
    args = {"url": "http://127.0.0.1:1/", "timeout": 5}
    change = module.plan(args, {})
    outcome = module.outcome(args, {}, change, apply(change))
    assert outcome.data["status"] == -1 and "Request failed" in outcome.failed


@pytest.fixture
def service_args(tmp_path: Path) -> Iterator[dict[str, object]]:
    args: dict[str, object] = {
        "name": "napper",
        "manager": "pidfile",
        "pidfile": str(tmp_path / "napper.pid"),
        "start": "exec sleep 3131",
        "match": "sleep 3131",
        "stop_timeout": 5,
        "start_timeout": 3,  # "exec sleep" stays in the foreground: taken for the service after 3 s
    }
    yield args
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if (proc / "cmdline").read_bytes() in (b"sleep\x003131\x00", b"sleep\x003132\x00"):
                os.kill(int(proc.name), 9)
        except (FileNotFoundError, ProcessLookupError):
            pass


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_pidfile_service_starts_stops_and_clears_a_stale_pidfile(service_args: dict[str, object]) -> None:
    pidfile = Path(str(service_args["pidfile"]))
    pidfile.write_text("999999\n")  # stale: no such process
    first = converge("service", {**service_args, "state": "started"})
    assert "stale pidfile" in first.diffs[0].before
    pid = int(pidfile.read_text())
    assert _alive(pid)
    assert "sleep 3131" in Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    converge("service", {**service_args, "state": "stopped"})
    wait_until(lambda: not _alive(pid), timeout=5, what="the stopped service to exit")
    assert not pidfile.exists()


def test_pidfile_service_that_ignores_sigterm_is_killed_after_stop_timeout(
        service_args: dict[str, object]) -> None:
    pidfile = Path(str(service_args["pidfile"]))
    args = {**service_args, "start": f"(trap '' TERM; exec sleep 3132) & echo $! > {pidfile}",
            "match": "sleep 3132", "stop_timeout": 1}
    converge("service", {**args, "state": "started"})
    pid = int(pidfile.read_text())
    assert _alive(pid)
    stopped = converge("service", {**args, "state": "stopped"})
    assert stopped.changed and not _alive(pid)  # SIGKILL, once stop_timeout passed
    assert not pidfile.exists()


def test_pidfile_naming_another_program_is_never_signalled(service_args: dict[str, object]) -> None:
    pidfile = Path(str(service_args["pidfile"]))
    pidfile.write_text(f"{os.getpid()}\n")  # this test process: alive, but not the service
    change = plan("service", {**service_args, "state": "stopped"})
    assert change.changed and "another program" in change.diffs[0].before
    assert [s.command for s in change.steps] == [f"rm -f -- {pidfile}"]  # type: ignore[union-attr]


def test_pidfile_service_that_daemonizes_and_writes_its_own_pidfile(service_args: dict[str, object]) -> None:
    pidfile = str(service_args["pidfile"])
    args = {
        **service_args,
        "start": f"sleep 3132 & echo $! > {pidfile}",
        "match": "sleep 3132",
        "state": "started",
    }
    converge("service", args)
    pid = int(Path(pidfile).read_text())
    assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x003132\x00"
    converge("service", {**args, "state": "stopped"})
    assert not Path(pidfile).exists()


@pytest.mark.parametrize("missing", [(), ("stat",)])
def test_a_content_probe_reads_a_file_up_to_its_limit(tmp_path: Path, missing: tuple[str, ...]) -> None:
    env = path_without(tmp_path, *missing)
    for name, size in (("small", 10), ("big", 11)):
        path = tmp_path / name
        path.write_text("x" * size)
        fact = path_fact(str(path), Probe(content_limit=10))
        info = fact.parse(sh(fact.command, env=env))
        assert (info.size, info.content) == (size, "x" * 10 if size <= 10 else None)


def test_backslashes_in_owner_names_and_link_targets_arrive_intact(tmp_path: Path) -> None:
    env = path_without(tmp_path, "stat")
    fake = Path(env["PATH"]) / "stat"  # a domain account, as winbind names them
    fake.write_text("#!/bin/sh\nprintf '%s\\n' 'stat=81a4:1000:1000:3:1700000000:CORP\\carol:CORP\\cops'\n")
    fake.chmod(0o755)
    target = tmp_path / "f"
    target.write_text("abc")
    info = path_fact(str(target)).parse(sh(path_fact(str(target)).command, env=env))
    assert (info.owner, info.group, info.readable) == ("CORP\\carol", "CORP\\cops", True)
    link = tmp_path / "l"
    link.symlink_to("C:\\new\\table")
    assert path_fact(str(link)).parse(sh(path_fact(str(link)).command)).link_target == "C:\\new\\table"
