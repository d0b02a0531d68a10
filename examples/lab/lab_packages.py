"""The lab's software: a local apt repository and wheel dir, and each host's own package database.

``build_repository`` makes, once per lab and without any download, a
``file:`` apt repository (``<lab>/packages/apt``: ``.deb`` files built with
dpkg-deb, indexed by dpkg-scanpackages) and a wheel dir
(``<lab>/packages/wheels``). ``coze-lab-tools`` holds ``cozectl``, which
``coze-start`` runs before the service, and depends on ``coze-lab-libs``;
``coze-lab-plugin`` is the Python module the service imports (its config's
``plugins:``) and depends on ``coze-lab-pyutil``.

Every host has its own package database under its root, as a real host has
at ``/``: ``var/lib/dpkg``, apt's lists and cache, and ``etc/apt/apt.conf``
naming them and the lab repository (and nothing else). ``host_environment``
is what the host's sshd sets for every session (``APT_CONFIG``,
``DPKG_ROOT``, ``DPKG_ADMINDIR``), so apt-get, dpkg and dpkg-query run over
SSH see that database; the machine's own is never read or touched. The
service runs from a virtualenv, ``opt/coze/venv`` (with the system
site-packages, for PyYAML), into which the wheels are installed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

from lab_processes import LabError

#: The packages a healthy host has: (name, version, depends, {path under the root: (mode, text)}).
DEBS = (
    ("coze-lab-libs", "1.0", "", {"usr/lib/coze-lab/libcozelab.sh": (
        0o644, "# libcozelab: shell functions of the Coze lab tools\ncozelab_version() { echo 1.0; }\n")}),
    ("coze-lab-tools", "1.0", "coze-lab-libs", {"usr/bin/cozectl": (0o755, """\
#!/bin/sh
# cozectl: the Coze control tool (lab stand-in); coze-start runs `cozectl preflight CONFIG`.
. "$(dirname "$0")/../lib/coze-lab/libcozelab.sh" || exit 1
case ${1:-} in
    preflight) echo "cozectl $(cozelab_version): preflight of ${2:-?} ok" ;;
    *) echo "usage: cozectl preflight CONFIG" >&2; exit 2 ;;
esac
""")}),
)
#: The distributions in the service's venv: (name, version, requires, {module file: text}).
WHEELS = (
    ("coze-lab-pyutil", "1.0", (), {"coze_lab_pyutil/__init__.py": "VERSION = '1.0'\n"}),
    ("coze-lab-plugin", "1.0", ("coze-lab-pyutil",), {"coze_lab_plugin/__init__.py": (
        "\"\"\"The Coze lab's plugin: the service imports it at startup.\"\"\"\n"
        "import coze_lab_pyutil\n\nNAME = 'coze-lab-plugin ' + coze_lab_pyutil.VERSION\n")}),
)
PLUGIN = "coze_lab_plugin"  # the config's plugins: [...]
COMMAND = "cozectl"  # what coze-start needs on its PATH


def repository(lab_dir: Path) -> tuple[Path, Path]:
    """The lab's apt repository dir and wheel dir."""
    return lab_dir / "packages" / "apt", lab_dir / "packages" / "wheels"


def build_repository(lab_dir: Path) -> None:
    """Build the .deb packages with their Packages index, and the wheels."""
    apt_dir, wheel_dir = repository(lab_dir)
    work = lab_dir / "packages" / "build"
    for directory in (apt_dir, wheel_dir, work):
        directory.mkdir(parents=True, exist_ok=True)
    for name, version, depends, files in DEBS:
        tree = work / name
        (tree / "DEBIAN").mkdir(parents=True)
        control = f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: remedy lab " \
                  f"<root@localhost>\n{'Depends: ' + depends + chr(10) if depends else ''}" \
                  f"Description: {name} of the remedy lab\n"
        (tree / "DEBIAN/control").write_text(control)
        for relative, (mode, text) in files.items():
            path = tree / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(mode)
        _run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(apt_dir)])
    index = _run(["dpkg-scanpackages", "--multiversion", "."], cwd=apt_dir)
    (apt_dir / "Packages").write_text(index)
    shutil.rmtree(work)
    for name, version, requires, files in WHEELS:
        _write_wheel(wheel_dir, name, version, requires, files)


def host_environment(root: Path) -> dict[str, str]:
    """The environment that makes apt and dpkg on the host use its own package database."""
    return {"APT_CONFIG": str(root / "etc/apt/apt.conf"), "DPKG_ROOT": str(root),
            "DPKG_ADMINDIR": str(root / "var/lib/dpkg")}


def venv_dir(root: Path) -> Path:
    return root / "opt/coze/venv"


def build_host_packages(root: Path, lab_dir: Path, python: str) -> None:
    """The host's package database with the lab packages installed, and the service's venv."""
    for directory in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers",
                      "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/log/apt",
                      "etc/apt/apt.conf.d", "etc/apt/preferences.d"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "var/lib/dpkg/status").touch()
    apt_dir, wheel_dir = repository(lab_dir)
    (root / "etc/apt/sources.list").write_text(f"deb [trusted=yes] file:{apt_dir} ./\n")
    settings = {"Dir::Etc::sourcelist": root / "etc/apt/sources.list", "Dir::Etc::sourceparts": "-",
                "Dir::Etc::parts": root / "etc/apt/apt.conf.d",
                "Dir::Etc::preferencesparts": root / "etc/apt/preferences.d",
                "Dir::State": root / "var/lib/apt", "Dir::State::status": root / "var/lib/dpkg/status",
                "Dir::Cache": root / "var/cache/apt", "Dir::Log": root / "var/log/apt"}
    dpkg = f'"--root={root}"; "--admindir={root}/var/lib/dpkg"; "--log={root}/var/log/dpkg.log";'
    (root / "etc/apt/apt.conf").write_text("".join(f'{key} "{value}";\n' for key, value in settings.items())
                                           + f"DPkg::Options {{ {dpkg} }};\n")
    apt(root, "update")
    apt(root, "install", *(name for name, *_ in DEBS))
    venv = venv_dir(root)
    _run([python, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)])
    for name, version, _requires, _files in WHEELS:
        _install_wheel(venv, wheel_dir / _wheel_name(name, version))


def apt(root: Path, command: str, *names: str) -> str:
    """Run ``apt-get -y -q COMMAND NAMES`` on the host's own package database."""
    env = {**os.environ, **host_environment(root), "DEBIAN_FRONTEND": "noninteractive"}
    return _run(["apt-get", "-y", "-q", command, *names], env=env)


def uninstall(root: Path, *distributions: str) -> None:
    """Remove distributions from the service's venv, as ``pip uninstall`` does (its RECORD's files)."""
    site = _site_packages(venv_dir(root))
    for name in distributions:
        module = name.replace("-", "_")
        for info in site.glob(f"{module}-*.dist-info"):
            for line in (info / "RECORD").read_text().splitlines():
                (site / line.split(",", 1)[0]).unlink(missing_ok=True)
            shutil.rmtree(info)
        shutil.rmtree(site / module, ignore_errors=True)


def _site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise LabError(f"no site-packages in {venv}")
    return found[0]


def _wheel_name(name: str, version: str) -> str:
    return f"{name.replace('-', '_')}-{version}-py3-none-any.whl"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _write_wheel(directory: Path, name: str, version: str, requires: tuple[str, ...],
                 files: dict[str, str]) -> None:
    """A pure-Python wheel, written as the wheel format says (no build tools needed)."""
    info = f"{name.replace('-', '_')}-{version}.dist-info"
    content = {path: text.encode() for path, text in files.items()}
    content[f"{info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                   + "".join(f"Requires-Dist: {r}\n" for r in requires)).encode()
    content[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: remedy-lab\nRoot-Is-Purelib: true\n" \
                               b"Tag: py3-none-any\n"
    record = [_record_line(path, data) for path, data in content.items()] + [f"{info}/RECORD,,"]
    content[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(directory / _wheel_name(name, version), "w") as wheel:
        for path, data in content.items():
            wheel.writestr(path, data)


def _install_wheel(venv: Path, wheel_path: Path) -> None:
    """Unpack a pure-Python wheel into the venv's site-packages, as pip does (without compiling)."""
    site = _site_packages(venv)
    with zipfile.ZipFile(wheel_path) as wheel:
        wheel.extractall(site)
        info = next(n.split("/")[0] for n in wheel.namelist() if n.endswith(".dist-info/RECORD"))
    (site / info / "INSTALLER").write_text("remedy-lab\n")
    with (site / info / "RECORD").open("a") as record:
        record.write(_record_line(f"{info}/INSTALLER", b"remedy-lab\n") + "\n")


def _run(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, timeout=120, check=False)
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()[-500:]
        raise LabError(f"{' '.join(argv)} exited {done.returncode}: {output}")
    return done.stdout
