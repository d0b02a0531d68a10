"""The config probe: one read-only sh command that reads config files and what a checker says of them.

Services layer, used by the ``config_file`` module. For each file (named, or
the newest matches of a glob in a directory) the probe prints its state, size,
mtime and sha256, optionally its content between markers (ended by a marker
that carries the sha256, so no content can fake it), optionally the exit
status and last lines of a checker command run on it, and the kind of the
path each of some top-level ``key: /path`` lines names. ``parse_probe`` turns
that into ``ConfigFiles``; output it cannot read becomes an ``error``, never
an exception.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from runner.modules.base import Fact, quote
from runner.results import CommandResult

#: Files up to this size are read and judged.
SIZE_LIMIT = 64 * 1024
#: At most this many of a directory's newest matches are read.
NEWEST_LIMIT = 10
#: Lines of a checker's output that are kept.
CHECK_LINES = 20

_AWK = r"""BEGIN { n = split(keys, k, " ") }
{ for (i = 1; i <= n; i++) if (!(k[i] in seen) && index($0, k[i] ":") == 1) {
    v = substr($0, length(k[i]) + 2); sub(/^[ \t]+/, "", v); sub(/[ \t]+#.*$/, "", v); sub(/[ \t]+$/, "", v)
    if (v ~ /^".*"$/ || v ~ /^'.*'$/) v = substr(v, 2, length(v) - 2)
    seen[k[i]] = 1; print k[i] "\t" v } }"""

#: Shell functions of the probe: a word in base64, and the ``::path`` line of key $1 naming path $2.
_FUNCTIONS = r"""b64() { printf '%s' "$1" | base64 | tr -d '\n'; }
kind() {
  if [ -d "$2" ]; then t=directory; elif [ -f "$2" ]; then t=file
  elif [ -e "$2" ]; then t=other; else t=absent; fi
  if [ -d "$(dirname -- "$2")" ]; then u=directory; else u=absent; fi
  echo "::path $1 $t $u $(b64 "$2")"
}"""


@dataclass(frozen=True)
class Request:
    """What to read: named files or a directory's newest matches, and what to print of each."""

    files: tuple[str, ...] = ()
    directory: str | None = None
    pattern: str = "*"
    newest: int = NEWEST_LIMIT  # matches of the directory that are read (all are listed)
    content: bool = True
    check: str | None = None  # a command; %s stands for the file
    keys: tuple[str, ...] = ()  # top-level keys whose path values get their kind printed
    values: tuple[tuple[str, str], ...] = ()  # (key, path) pairs whose kind is printed, no file needed


@dataclass(frozen=True)
class PathKind:
    """What is at the path a config key names: ``kind`` and its directory's kind."""

    key: str
    value: str
    kind: str  # directory, file, other, absent
    parent: str  # directory, absent


@dataclass(frozen=True)
class ConfigText:
    """One file as the probe saw it. ``state``: file, absent, other, unreadable, large."""

    path: str
    state: str
    size: int | None = None
    mtime: int = 0
    sha256: str = ""
    text: str | None = None  # the content, when read whole and verified by its sha256
    check_rc: int | None = None
    check_output: tuple[str, ...] = ()
    paths: tuple[PathKind, ...] = ()
    error: str = ""  # the content could not be read whole (not UTF-8, or changed while read)


@dataclass(frozen=True)
class ConfigFiles:
    """The probe's result: the files described, every match of the directory, path kinds of ``values``."""

    files: tuple[ConfigText, ...] = ()
    entries: tuple[tuple[int, str], ...] = ()  # (mtime, path) of every match, newest first
    directory: str = ""  # directory, absent, other ("" when none was asked for)
    values: tuple[PathKind, ...] = ()
    error: str = ""

    def file(self, path: str) -> ConfigText | None:
        return next((f for f in self.files if f.path == path), None)


def probe_fact(request: Request) -> Fact:
    return Fact(probe_command(request), parse_probe)


def probe_command(request: Request) -> str:
    """The POSIX sh script that reads what ``request`` asks for; it exits 0 unless sh fails."""
    lines = ["set -u", "LC_ALL=C; export LC_ALL", "tab=$(printf '\\t')", _FUNCTIONS, _describe(request)]
    lines += [f"describe {quote(path)}" for path in request.files]
    if request.directory is not None:
        lines.append(_listing(request))
    if request.values:
        lines.append("echo ::values")
    for key, value in request.values:
        lines.append(f"kind {quote(key)} {quote(value)}")
    lines.append(":")
    return "\n".join(lines)


def _describe(request: Request) -> str:
    body = [
        'echo "::file $(b64 "$1")"',
        'if [ ! -e "$1" ]; then echo "::state absent"; return 0; fi',
        'if [ ! -f "$1" ]; then echo "::state other"; return 0; fi',
        'if [ ! -r "$1" ]; then echo "::state unreadable"; return 0; fi',
        'm=$(stat -L -c %Y -- "$1" 2>/dev/null) || m=0',
        'n=$(wc -c <"$1" | tr -d " ")',
        f'if [ "$n" -gt {SIZE_LIMIT} ]; then echo "::state large $n $m"; return 0; fi',
        's=$(sha256sum <"$1") || s=$(openssl dgst -sha256 -r <"$1"); s=${s%% *}',
        'echo "::state file $n $m $s"',
    ]
    if request.content:
        body.append("echo ::content; cat -- \"$1\"; printf '\\n::content-end %s\\n' \"$s\"")
    if request.check:
        command = request.check.replace("%s", '"$1"')
        body.append(f"o=$( ( {command} ) </dev/null 2>&1 ); echo \"::check $?\"; "
                    f"printf '%s\\n' \"$o\" | tail -n {CHECK_LINES} | sed 's/^/| /'")
    if request.keys:
        body.append(f"awk -v keys={quote(' '.join(request.keys))} {quote(_AWK)} <\"$1\" | "
                    'while IFS="$tab" read -r k v; do kind "$k" "$v"; done')
    return "describe() {\n  " + "\n  ".join(body) + "\n}"


def _listing(request: Request) -> str:
    """Every match of the directory as ``::entry MTIME B64PATH`` (newest first); the newest described."""
    return "\n".join([
        f"d={quote(str(request.directory))}; pat={quote(request.pattern)}",
        'if [ -d "$d" ]; then echo "::directory directory"; '
        'elif [ -e "$d" ]; then echo "::directory other"; else echo "::directory absent"; fi',
        'if [ -d "$d" ]; then',
        '  list=$(IFS=; for f in "$d"/$pat; do [ -f "$f" ] || continue; '
        'm=$(stat -L -c %Y -- "$f" 2>/dev/null) || continue; '
        'echo "$m $(b64 "$f")"; done | sort -k1,1nr -k2,2r)',
        "  printf '%s\\n' \"$list\" | while read -r m b; do [ -n \"$b\" ] && echo \"::entry $m $b\"; done",
        f"  printf '%s\\n' \"$list\" | head -n {int(request.newest)} | while read -r m b; do "
        "[ -n \"$b\" ] && describe \"$(printf '%s' \"$b\" | base64 -d)\"; done",
        "fi",
    ])


def parse_probe(result: CommandResult) -> ConfigFiles:
    """``probe_command``'s result as ``ConfigFiles``; unreadable output gives an ``error``."""
    if result.rc != 0:
        detail = result.tail("stderr", 3) or f"exit {result.rc}"
        return ConfigFiles(error=f"the config probe failed: {detail}")
    try:
        return _Parser(result.stdout).parse()
    except (ValueError, IndexError, binascii.Error) as exc:
        return ConfigFiles(error=f"unreadable probe output ({exc})")


@dataclass
class _File:
    """A file being parsed (``ConfigText`` once done)."""

    path: str
    state: str = ""
    size: int | None = None
    mtime: int = 0
    sha256: str = ""
    text: str | None = None
    check_rc: int | None = None
    check_output: tuple[str, ...] = ()
    paths: list[PathKind] = field(default_factory=list)
    error: str = ""

    def done(self) -> ConfigText:
        return ConfigText(self.path, self.state, self.size, self.mtime, self.sha256, self.text,
                          self.check_rc, self.check_output, tuple(self.paths), self.error)


@dataclass
class _Parser:
    text: str
    pos: int = 0
    files: list[_File] = field(default_factory=list)
    entries: list[tuple[int, str]] = field(default_factory=list)
    values: list[PathKind] | None = None  # set once the ``::values`` line is read
    directory: str = ""

    def parse(self) -> ConfigFiles:
        handlers: dict[str, Callable[[str], None]] = {
            "::file": self._file, "::state": self._state, "::content": self._content,
            "::check": self._check, "::path": self._path, "::entry": self._entry,
            "::directory": self._directory, "::values": self._values}
        while self.pos < len(self.text):
            word, _, rest = self._line().partition(" ")
            handler = handlers.get(word)
            if handler is not None:
                handler(rest)
        return ConfigFiles(tuple(f.done() for f in self.files), tuple(self.entries), self.directory,
                           tuple(self.values or ()))

    def _line(self) -> str:
        end = self.text.find("\n", self.pos)
        end = len(self.text) if end < 0 else end
        line, self.pos = self.text[self.pos:end], end + 1
        return line

    def _file(self, rest: str) -> None:
        self.files.append(_File(_decoded(rest)))

    def _state(self, rest: str) -> None:
        current = self.files[-1]
        current.state, *numbers = rest.split()
        if len(numbers) >= 2:
            current.size, current.mtime = int(numbers[0]), int(numbers[1])
        if len(numbers) >= 3:
            current.sha256 = numbers[2]

    def _content(self, _rest: str) -> None:
        current = self.files[-1]
        marker = f"\n::content-end {current.sha256}\n"
        end = self.text.find(marker, self.pos)
        if end < 0:
            raise ValueError("a file's content has no end marker")
        content, self.pos = self.text[self.pos:end], end + len(marker)
        data = content.encode("utf-8", "surrogateescape")
        if hashlib.sha256(data).hexdigest() != current.sha256:
            current.error = "it is not UTF-8 text (or it changed while it was read)"
            return
        try:
            current.text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
            byte = f"byte 0x{data[exc.start]:02x}"
            current.error = f"it is not UTF-8 text ({byte} at line {line}, column {column})"

    def _check(self, rest: str) -> None:
        output: list[str] = []
        while self.text.startswith("| ", self.pos):
            output.append(self._line()[2:])
        while output and not output[-1].strip():
            output.pop()
        self.files[-1].check_rc, self.files[-1].check_output = int(rest), tuple(output)

    def _path(self, rest: str) -> None:
        key, kind, parent, value = (rest.split(" ") + [""])[:4]
        found = PathKind(key, _decoded(value), kind, parent)
        if self.values is not None:
            self.values.append(found)
        else:
            self.files[-1].paths.append(found)

    def _entry(self, rest: str) -> None:
        mtime, encoded = rest.split(" ", 1)
        self.entries.append((int(mtime), _decoded(encoded)))

    def _directory(self, rest: str) -> None:
        self.directory = rest

    def _values(self, _rest: str) -> None:
        self.values = []


def _decoded(text: str) -> str:
    return base64.b64decode(text.strip(), validate=True).decode("utf-8", "surrogateescape")
