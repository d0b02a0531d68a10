"""``copy``/``template`` ``src``: found as Ansible finds it, and checked when the playbook is loaded."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from runner.cli.program import main
from runner.errors import InputError, Location
from runner.events import NullListener
from runner.load.inputs import load_inputs
from runner.load.localfiles import find_local, read_local
from runner.plan.hosts import RunOptions
from runner.run.executor import execute

WHERE = Location("book.yml", 3)


def book(tmp_path: Path, task: str) -> Path:
    return write(tmp_path / "book.yml", f"- hosts: all\n  tasks:\n    - {task}\n")


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def validate(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["validate", str(path)])
    return code, capsys.readouterr().err


def test_a_missing_src_is_exit_4_before_any_host_is_contacted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = book(tmp_path, "{template: {src: site.conf.j2, dest: /tmp/site.conf}}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        server.setblocking(False)
        inventory = write(tmp_path / "hosts.ini",
                          f"web ansible_host=127.0.0.1 ansible_port={server.getsockname()[1]}\n")
        code = main(["run", str(path), "-i", str(inventory)])
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody knocked
    err = capsys.readouterr().err
    assert code == 4, err
    assert f"{path}:3:" in err
    assert "argument 'src' of 'template': file 'site.conf.j2' not found" in err
    assert f"{tmp_path}/templates/site.conf.j2, {tmp_path}/site.conf.j2" in err
    assert "put it in templates/ beside the playbook, or give an absolute path" in err


@pytest.mark.parametrize(("module", "subdir"), [("template", "templates"), ("copy", "files")])
def test_a_relative_src_is_looked_up_in_its_subdir_first_then_beside_the_playbook(
        tmp_path: Path, module: str, subdir: str) -> None:
    kind = "template_file" if module == "template" else "local_file"
    beside = write(tmp_path / "a.conf", "beside")
    assert find_local(tmp_path, "a.conf", kind, WHERE) == beside
    inside = write(tmp_path / subdir / "a.conf", "inside")
    assert find_local(tmp_path, "a.conf", kind, WHERE) == inside
    assert find_local(tmp_path, f"{subdir}/a.conf", kind, WHERE) == inside


def test_an_absolute_src_is_used_as_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = write(tmp_path / "elsewhere" / "motd", "hello\n")
    path = book(tmp_path / "project", f"{{copy: {{src: {elsewhere}, dest: /tmp/motd}}}}")
    assert validate(path, capsys)[0] == 0


def test_a_relative_src_may_not_leave_the_playbook_directory(tmp_path: Path) -> None:
    write(tmp_path / "secret", "x")
    project = tmp_path / "project"
    (project / "templates").mkdir(parents=True)
    (project / "templates" / "out").symlink_to(tmp_path)
    for path in ("../secret", "out/secret"):
        with pytest.raises(InputError, match="outside the playbook's directory"):
            find_local(project, path, "template_file", WHERE)


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: (p / "templates" / "site.conf.j2").mkdir(parents=True), "is not a regular file"),
    (lambda p: write(p / "templates" / "site.conf.j2", b"port=\xff\n"), "is not UTF-8 text (byte 0xff"),
    (lambda p: write(p / "templates" / "site.conf.j2", "port={{ port \n"), "template syntax error"),
])
def test_an_unusable_template_is_exit_4_when_the_playbook_is_loaded(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, message: str) -> None:
    make(tmp_path)  # type: ignore[operator]
    code, err = validate(book(tmp_path, "{template: {src: site.conf.j2, dest: /tmp/site.conf}}"), capsys)
    assert code == 4
    assert message in err


def test_a_copy_src_keeps_its_bytes(tmp_path: Path) -> None:
    data = bytes(range(256))
    write(tmp_path / "files" / "blob.bin", data)
    assert read_local(tmp_path, "blob.bin", "local_file", WHERE)[1].encode(
        "utf-8", errors="surrogateescape") == data
    dest = tmp_path / "out.bin"
    path = book(tmp_path, f"{{copy: {{src: blob.bin, dest: {dest}}}}}")
    inventory = write(tmp_path / "hosts.ini", "local ansible_connection=local\n")
    run = execute(load_inputs([str(path)], [str(inventory)]),
                  RunOptions(lock_path=str(tmp_path / "lock")), NullListener())
    assert run.exit_code == 0, [r.message for r in run.all_results()]
    assert dest.read_bytes() == data


def test_a_src_known_only_per_host_is_checked_for_each_host_before_any_is_contacted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = book(tmp_path, "{template: {src: \"{{ inventory_hostname }}.j2\", dest: /tmp/x}}")
    assert validate(path, capsys)[0] == 0  # without an inventory no host can tell
    inventory = write(tmp_path / "hosts.ini", "local ansible_connection=local\n")
    with pytest.raises(InputError) as caught:
        load_inputs([str(path)], [str(inventory)])
    message = caught.value.problems[0].message
    assert "file 'local.j2' not found" in message and "(host local)" in message