"""The controller files a task reads (``copy`` and ``template`` ``src``): where they are, and their text.

Load stage, used by ``argcheck`` when a playbook is loaded (a ``src`` that is
not a template must exist and be readable, exit 4 before any host is
contacted) and by ``run.rendering`` for a ``src`` known only once rendered.
A relative ``src`` is looked up as Ansible does, in ``templates/`` (template)
or ``files/`` (copy) beside the playbook, then in the playbook's directory,
and may not leave that directory; an absolute ``src`` is used as given.
"""

from __future__ import annotations

from pathlib import Path

from runner.errors import InputError, Location

#: The directory beside the playbook where each kind of file is looked up first.
SUBDIRS = {"template_file": "templates", "local_file": "files"}


def find_local(base: Path, path: str, kind: str, location: Location) -> Path:
    """The controller file that ``src: path`` of a playbook in ``base`` names.

    Raises:
        InputError: the path leaves ``base``, or no such file exists.
    """
    if path.startswith("/"):
        candidates = [Path(path)]
    else:
        candidates = [_confined(base, f"{SUBDIRS[kind]}/{path}", path, location),
                      _confined(base, path, path, location)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    where = ", ".join(str(c) for c in candidates)
    found = next((c for c in candidates if c.exists()), None)
    what = f"'{path}' is not a regular file ({found})" if found else f"file '{path}' not found"
    hint = "give a file's path" if found else \
        f"put it in {SUBDIRS[kind]}/ beside the playbook, or give an absolute path"
    raise InputError.at(location, f"{what}; looked in {where}", hint)


def read_local(base: Path, path: str, kind: str, location: Location) -> tuple[Path, str]:
    """The file that ``src: path`` names and its text; a ``copy`` source may hold any bytes.

    Raises:
        InputError: as ``find_local``, or the file cannot be read (or a template is not UTF-8).
    """
    target = find_local(base, path, kind, location)
    try:
        data = target.read_bytes()
    except OSError as error:
        raise InputError.at(location, f"cannot read '{path}' ({target}): {error.strerror or error}",
                            "make the file readable by the user that runs remedy") from None
    if kind == "local_file":
        return target, data.decode("utf-8", errors="surrogateescape")  # bytes kept as they are
    try:
        return target, data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError.at(location, f"template '{path}' ({target}) is not UTF-8 text "
                            f"(byte 0x{data[error.start]:02x} at offset {error.start})",
                            "save the template as UTF-8, or use copy for a binary file") from None


def _confined(base: Path, relative: str, given: str, location: Location) -> Path:
    root = base.resolve()
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise InputError.at(location, f"'{given}' is outside the playbook's directory",
                            "keep templates and files beside the playbook, or give an absolute path")
    return target


__all__ = ["SUBDIRS", "find_local", "read_local"]
