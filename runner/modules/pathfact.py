"""The path probe: one read-only sh command that describes a path on a host.

Services layer, shared by the ``file``, ``copy``, ``template``, ``lineinfile``,
``stat`` and ``fetch`` modules. The probe prints ``key=value`` lines (kind,
parent, ``stat -c`` fields with an ``ls -ld`` fallback, access, link target,
checksum), optionally a histogram of a directory tree, and optionally the
file's content between markers. ``parse_path`` turns that into a ``PathInfo``;
output it cannot read becomes a ``PathInfo`` whose ``error`` says why, never
an exception.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from runner.modules.base import Fact, operand, parent_dir, quote
from runner.modules.names import decoded, shown
from runner.results import CommandResult

#: Regular files up to this size have their content read, for exact diffs and edits.
CONTENT_LIMIT = 512 * 1024
CHECKSUMS = ("sha1", "sha224", "sha256", "sha384", "sha512", "md5")
_KINDS = {0o100000: "file", 0o040000: "directory", 0o120000: "link"}
_LS_KINDS = {
    "-": 0o100000,
    "d": 0o040000,
    "l": 0o120000,
    "c": 0o020000,
    "b": 0o060000,
    "p": 0o010000,
    "s": 0o140000,
}
_HEX = re.compile(r"\b([0-9a-f]{32,128})\b")


@dataclass(frozen=True)
class Probe:
    """What to ask about a path beyond its kind and stat fields."""

    checksum: str = ""  # one of CHECKSUMS, or "" for none
    content_limit: int = 0  # read the content of regular files up to this size
    follow: bool = False  # describe a link's target instead of the link
    tree: bool = False  # histogram of (mode, owner, group) over a directory tree


@dataclass(frozen=True)
class TreeEntry:
    """``count`` entries of a directory tree share this raw mode and ownership."""

    count: int
    raw_mode: int
    uid: int
    gid: int
    owner: str
    group: str

    @property
    def is_dir(self) -> bool:
        return self.raw_mode & 0o170000 == 0o040000

    @property
    def is_link(self) -> bool:
        return self.raw_mode & 0o170000 == 0o120000


@dataclass(frozen=True)
class PathInfo:
    """What the probe saw. ``kind``: file, directory, link, other, absent."""

    path: str
    kind: str = ""
    raw_mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    owner: str = ""
    group: str = ""
    size: int | None = None
    mtime: float | None = None
    link_target: str | None = None
    parent: str = ""  # "directory", "absent" or "other"
    checksum: str | None = None
    content: str | None = None  # only when read whole and verified by sha256
    readable: bool = False
    writeable: bool = False
    executable: bool = False
    tree: tuple[TreeEntry, ...] | None = None
    error: str = ""

    @property
    def exists(self) -> bool:
        return self.kind not in ("", "absent")

    @property
    def mode(self) -> int | None:
        """Permission bits, including setuid, setgid and sticky."""
        return None if self.raw_mode is None else self.raw_mode & 0o7777


def path_fact(path: str, probe: Probe = Probe()) -> Fact:
    """The probe of ``path`` as a ``Fact`` whose parse never raises."""
    return Fact(probe_command(path, probe), parse_path(path, probe), paths=(path,))


def probe_command(path: str, probe: Probe = Probe()) -> str:
    """The POSIX sh script that describes ``path``; its exit code is 0 unless sh fails."""
    stat_opts = "-L -c" if probe.follow else "-c"
    lines = [
        f"p={quote(path)}",
        ('if [ -L "$p" ]; then t=link; el' if not probe.follow else "")
        + 'if [ -d "$p" ]; then t=directory; elif [ -f "$p" ]; then t=file; '
        'elif [ -e "$p" ]; then t=other; else t=absent; fi',
        'echo "type=$t"',
        f"d={quote(parent_dir(path))}",
        'if [ -d "$d" ]; then echo parent=directory; elif [ -e "$d" ]; then echo parent=other; '
        "else echo parent=absent; fi",
        'if [ "$t" = absent ]; then exit 0; fi',
        f"st=$(stat {stat_opts} 'stat=%f:%u:%g:%s:%Y:%U:%G' -- \"$p\" 2>/dev/null) && "
        "printf '%s\\n' \"$st\" || "
        f'{{ st=; printf \'lsn=%s\\n\' "$(ls -ldn{"L" if probe.follow else ""} -- "$p")"; '
        f'printf \'lsl=%s\\n\' "$(ls -ld{"L" if probe.follow else ""} -- "$p")"; }}',
        'if [ -r "$p" ]; then echo readable=1; fi',
        'if [ -w "$p" ]; then echo writeable=1; fi',
        'if [ -x "$p" ]; then echo executable=1; fi',
        'if [ "$t" = link ]; then printf \'link=%s\\n\' "$(readlink -- "$p" | base64 | tr -d \'\\n\')"; fi',
    ]
    algorithm = "sha256" if probe.content_limit else probe.checksum
    if algorithm:
        lines.append(
            f'if [ "$t" = file ]; then s=$({algorithm}sum <"$p" 2>/dev/null) || '
            f's=$(openssl dgst -{algorithm} <"$p" 2>/dev/null) || s=; echo "sum=$s"; fi'
        )
    if probe.tree:
        lines.append(
            'if [ "$t" = directory ]; then echo "::tree"; '
            f"{{ find {operand(path)} -exec stat -c '%f:%u:%g:%U:%G' {{}} + 2>/dev/null; "
            'echo "::rc=$?"; } | sort | uniq -c; echo "::tree-end"; fi'
        )
    if probe.content_limit:
        lines.append(
            # the size from stat's line (no process), else from wc
            'if [ "$t" = file ]; then n=${st#stat=*:*:*:}; n=${n%%:*}; '
            "case $n in ''|*[!0-9]*) n=$(wc -c <\"$p\" 2>/dev/null);; esac; "
            f'if [ -n "$n" ] && [ $n -le {int(probe.content_limit)} ]; then '
            'echo "::content"; cat -- "$p"; echo; echo "::end"; fi; fi'
        )
    lines.append(":")
    return "\n".join(lines)


def parse_path(path: str, probe: Probe = Probe()) -> Callable[[CommandResult], PathInfo]:
    """A parser of ``probe_command(path, probe)``'s result."""

    def parse(result: CommandResult) -> PathInfo:
        try:
            return _parse(path, probe, result)
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            return PathInfo(path, error=f"unreadable probe output ({exc})")

    return parse


def _parse(path: str, probe: Probe, result: CommandResult) -> PathInfo:
    text = result.stdout
    content: str | None = None
    marker = text.find("::content\n")
    if marker >= 0:
        end = text.rfind("\n::end")
        content = text[marker + len("::content\n") : end] if end >= marker else None
        text = text[:marker]
    tree_text = ""
    if "::tree\n" in text:
        text, _, rest = text.partition("::tree\n")
        tree_text, _, tail = rest.partition("::tree-end")
        text += tail
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isidentifier():
            fields.setdefault(key, value)
    kind = fields.get("type", "")
    if result.rc != 0:
        detail = result.tail("stderr", 3) or f"exit code {result.rc}"
        return PathInfo(path, error=f"the path probe failed: {detail}")
    if kind not in ("file", "directory", "link", "other", "absent"):
        lines = result.stdout.strip().splitlines()
        if not lines:
            return PathInfo(path, error="the path probe printed nothing")
        return PathInfo(path, error=f"unexpected probe output: {lines[0][:80]!r}")
    info = PathInfo(path, kind=kind, parent=fields.get("parent", ""))
    if kind == "absent":
        return info
    stat = _stat_fields(fields)
    if stat is None:
        return PathInfo(path, kind=kind, error="neither 'stat -c' nor 'ls -ld' described it")
    raw_mode, uid, gid, size, mtime, owner, group = stat
    checksum = _checksum(fields.get("sum", "")) if "sum" in fields else None
    return PathInfo(
        path,
        kind=kind,
        raw_mode=raw_mode,
        uid=uid,
        gid=gid,
        owner=owner,
        group=group,
        size=size,
        mtime=mtime,
        link_target=decoded(fields["link"]).removesuffix("\n") if "link" in fields else None,
        parent=info.parent,
        checksum=checksum,
        content=_verified(content, checksum, probe),
        readable="readable" in fields,
        writeable="writeable" in fields,
        executable="executable" in fields,
        tree=_tree(tree_text) if probe.tree and kind == "directory" else None,
    )


_Stat = tuple[int, int, int, int, float | None, str, str]


def _stat_fields(fields: dict[str, str]) -> _Stat | None:
    if "stat" in fields:
        parts = fields["stat"].split(":")
        if len(parts) == 7:
            hexmode, uid, gid, size, mtime, owner, group = parts
            return (int(hexmode, 16), int(uid), int(gid), int(size), float(mtime), owner, group)
    numeric = fields.get("lsn", "").split()
    named = fields.get("lsl", "").split()
    if len(numeric) >= 5 and len(named) >= 4:
        return (
            ls_mode(numeric[0]),
            int(numeric[2]),
            int(numeric[3]),
            int(numeric[4].rstrip(",")),
            None,
            named[2],
            named[3],
        )
    return None


def ls_mode(text: str) -> int:
    """The raw mode of an ``ls -l`` mode string such as ``drwxr-sr-x.``.

    Raises:
        ValueError: the string is not an ls mode.
    """
    if len(text) < 10 or text[0] not in _LS_KINDS:
        raise ValueError(f"not an ls mode: {text!r}")
    mode = _LS_KINDS[text[0]]
    for index, char in enumerate(text[1:10]):
        bit = 1 << (8 - index)
        if char in "rwxst":
            mode |= bit
        elif char not in "-ST":
            raise ValueError(f"not an ls mode: {text!r}")
        if char in "sStT":
            mode |= {2: 0o4000, 5: 0o2000, 8: 0o1000}.get(index, 0)
            if char in "ST":
                mode &= ~bit
    return mode


def _checksum(text: str) -> str | None:
    match = _HEX.search(text.split("=")[-1].lower())
    return match.group(1) if match else None


def _verified(content: str | None, checksum: str | None, probe: Probe) -> str | None:
    """The probed content, kept only when it hashes to the probed sha256."""
    if content is None or checksum is None or not probe.content_limit:
        return None
    data = content.encode("utf-8", errors="surrogateescape")
    return content if hashlib.sha256(data).hexdigest() == checksum else None


def _tree(text: str) -> tuple[TreeEntry, ...] | None:
    entries: list[TreeEntry] = []
    status = None
    for line in text.splitlines():
        count, _, rest = line.strip().partition(" ")
        rest = rest.strip()
        if rest.startswith("::rc="):
            status = rest[len("::rc=") :]
            continue
        parts = rest.split(":")
        if len(parts) != 5:
            return None
        entries.append(
            TreeEntry(int(count), int(parts[0], 16), int(parts[1]), int(parts[2]), parts[3], parts[4])
        )
    return tuple(entries) if status == "0" and entries else None


def describe(info: PathInfo) -> str:
    """A short noun phrase for what is at a path: "a directory", "nothing"."""
    return {
        "file": "a regular file",
        "directory": "a directory",
        "link": "a symbolic link",
        "other": "a special file",
        "absent": "nothing",
    }.get(info.kind, "unknown")


def refusal(info: PathInfo, what: str) -> str:
    """The failure message shared by modules that refuse to write through a link."""
    target = f" (-> {shown(info.link_target)})" if info.link_target else ""
    return (
        f"{what} {info.path} is a symbolic link{target}; remedy does not write through "
        "links: give the link's target path instead"
    )


def missing_parent(info: PathInfo) -> str:
    """The failure message for a path whose directory is missing or not a directory."""
    parent = parent_dir(info.path)
    if info.parent == "other":
        return f"cannot create {info.path}: {parent} is not a directory"
    return (
        f"cannot create {info.path}: its directory {parent} does not exist "
        "(create it first with a file task, state: directory)"
    )
