"""The broken state every benchmark host starts from, and the check that a run fixed it.

Each host of the fleet gets its own root directory (the inventory variable
``bench_root``), since all sshd hosts share this machine's filesystem.
``reset`` puts a root into the identical broken state before every timed run
(not timed); ``problems`` lists what is still wrong after a run (empty: fixed),
and ``untouched_problems`` what a check-mode run changed (empty: untouched).

The broken state:

    etc/app.conf        mode 0666, contains ``log_level=debug``
    etc/app.ini         stale content (the template must replace it)
    log/                missing (must become a directory, mode 0750)
    cache/              50 stale files (must end up empty)
    run/app.pid         names a process that does not exist (must be removed)
    data/               one file corrupted, one missing (restored from backup/)
    backup/data.tar.gz  the good data; backup/data.sha256 its manifest
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CACHE_FILES = 50
TEMPLATE_VARS = {"app_name": "coze", "app_port": 8080, "app_workers": 4}
_CONF = "# app config\nlisten=0.0.0.0\nlog_level=debug\nmax_connections=512\n"
_FIXED_CONF = _CONF.replace("log_level=debug", "log_level=info")
_DATA = {f"part-{i:02d}.dat": (f"record {i}\n" * (200 + i * 37)).encode() for i in range(8)}


def expected_ini() -> str:
    """What the template renders to with ``TEMPLATE_VARS``."""
    return (
        "# rendered by the benchmark workload\n[app]\nname = coze\nport = 8080\nworkers = 4\n"
    )


def _backup() -> tuple[bytes, str]:
    """The tar.gz of the good data and its sha256 manifest (relative paths)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as archive:
        for name, data in sorted(_DATA.items()):
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1_700_000_000
            archive.addfile(info, io.BytesIO(data))
    manifest = "".join(f"{hashlib.sha256(d).hexdigest()}  ./{n}\n" for n, d in sorted(_DATA.items()))
    return buffer.getvalue(), manifest


_ARCHIVE, _MANIFEST = _backup()


def reset(root: Path, owner: tuple[int, int] | None = None) -> None:
    """Put ``root`` into the broken state, whatever it holds now, owned by ``owner`` (uid, gid)."""
    if root.exists():
        shutil.rmtree(root)
    for sub in ("etc", "cache", "run", "data", "backup"):
        (root / sub).mkdir(parents=True)
    conf = root / "etc" / "app.conf"
    conf.write_text(_CONF)
    conf.chmod(0o666)
    (root / "etc" / "app.ini").write_text("[app]\nname = stale\n")
    for i in range(CACHE_FILES):
        (root / "cache" / f"entry-{i:02d}.bin").write_bytes(b"stale cache entry\n")
    (root / "run" / "app.pid").write_text("4194303\n")
    for index, (name, data) in enumerate(sorted(_DATA.items())):
        if index == 0:
            continue  # missing
        (root / "data" / name).write_bytes(data if index != 1 else b"corrupted\n")
    (root / "backup" / "data.tar.gz").write_bytes(_ARCHIVE)
    (root / "backup" / "data.sha256").write_text(_MANIFEST)
    if owner is not None:
        for path in [root, *root.rglob("*")]:
            os.lchown(path, *owner)


def reset_all(roots: list[Path], owner: tuple[int, int] | None = None, workers: int = 8) -> None:
    """``reset`` every root, a few at a time."""
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda root: reset(root, owner), roots))


def _mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.lstat().st_mode)
    except FileNotFoundError:
        return None


def problems(root: Path) -> list[str]:
    """What is still broken under ``root`` after a real run; empty when fixed."""
    found = []
    conf = root / "etc" / "app.conf"
    if _mode(conf) != 0o640:
        found.append(f"app.conf mode is {_mode(conf)!r:}, not 0o640")
    if conf.exists() and conf.read_text() != _FIXED_CONF:
        found.append("app.conf does not have log_level=info (or was otherwise altered)")
    log = root / "log"
    if not log.is_dir() or _mode(log) != 0o750:
        found.append(f"log/ is not a directory with mode 0750 (mode {_mode(log)!r})")
    ini = root / "etc" / "app.ini"
    if not ini.is_file() or ini.read_text() != expected_ini():
        found.append("app.ini is not the rendered template")
    cache = root / "cache"
    if not cache.is_dir() or any(cache.iterdir()):
        found.append("cache/ is not an empty directory")
    if (root / "run" / "app.pid").exists():
        found.append("the stale pid file is still there")
    data = root / "data"
    present = {p.name: p.read_bytes() for p in data.iterdir()} if data.is_dir() else {}
    if present != _DATA:
        found.append("data/ does not match the backup")
    return found


def untouched_problems(root: Path) -> list[str]:
    """What a check-mode run changed under ``root``; empty when it is still the broken state."""
    found = []
    if _mode(root / "etc" / "app.conf") != 0o666:
        found.append("check mode changed app.conf's mode")
    if (root / "log").exists():
        found.append("check mode created log/")
    if len(list((root / "cache").iterdir())) != CACHE_FILES:
        found.append("check mode touched cache/")
    if not (root / "run" / "app.pid").exists():
        found.append("check mode removed the pid file")
    if (root / "etc" / "app.ini").read_text() != "[app]\nname = stale\n":
        found.append("check mode rendered app.ini")
    if "log_level=debug" not in (root / "etc" / "app.conf").read_text():
        found.append("check mode edited app.conf")
    return found
