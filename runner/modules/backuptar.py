"""The shell side of ``backup_restore``: check archives, stage a restore point, swap it in.

Services layer, used by ``backup``. ``archive_checks`` is the read-only part
of the probe: every archive is checked against its ``.sha256`` file, with
``gzip -t``, and by a member listing that rejects absolute names, ``..``
components and links that leave the tree. ``stage_script`` extracts restore
points into the staging dir, newest first, until one passes what only
extraction can show (no symbolic link resolves outside the tree, the
manifest matches); ``swap_script`` puts the staged tree in place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from runner.modules.backupchoice import Point
from runner.modules.base import quote

#: Reads ``tar -tv --quoting-style=c --numeric-owner -P`` and prints up to three members that
#: would land outside the tree; ``!failed`` when tar could not list the archive.
_UNSAFE_MEMBERS = r"""
function unq(s,  out, i, c) {
  out = ""
  for (i = 1; i <= length(s); i++) {
    c = substr(s, i, 1)
    if (c == "\\") { out = out c substr(s, i + 1, 1); i++ }
    else if (c == "\"") { rest = substr(s, i + 1); return out }
    else out = out c
  }
  rest = ""
  return out
}
function lowest(p, d,  n, k, part) {
  n = split(p, part, "/")
  for (k = 1; k <= n; k++) {
    if (part[k] == "..") { if (--d < 0) return -1 }
    else if (part[k] != "" && part[k] != ".") d++
  }
  return d
}
function bad(text) { print text; if (++count >= 3) exit }
$0 == "!failed" { print "!failed"; exit }
{
  i = index($0, "\""); if (!i) next
  type = substr($0, 1, 1); name = unq(substr($0, i + 1))
  if (substr(name, 1, 1) == "/") { bad("member \"" name "\" is an absolute path"); next }
  if (name ~ /(^|\/)\.\.(\/|$)/) { bad("member \"" name "\" contains .."); next }
  if (type != "l" && type != "h") next
  target = unq(substr(rest, index(rest, "\"") + 1))
  if (substr(target, 1, 1) == "/") out = 1
  else if (type == "h") out = target ~ /(^|\/)\.\.(\/|$)/
  else out = lowest(target, lowest(name, 0) - 1) < 0
  kind = type == "h" ? "hard link" : "symbolic link"
  if (out) bad(kind " \"" name "\" points outside the tree (to \"" target "\")")
}
"""

#: sh functions of the probe: ``members ARCHIVE`` prints what ``_UNSAFE_MEMBERS`` finds.
_MEMBERS = (
    "members() { { LC_ALL=C tar -tvPzf \"$1\" --numeric-owner --quoting-style=c 2>/dev/null "
    f"|| echo '!failed'; }} | awk {quote(_UNSAFE_MEMBERS)}; }}"
)


def archive_checks(kinds: Sequence[tuple[str, str, str]]) -> list[str]:
    """Probe lines: ``archive KIND VALIDITY SIZE NAME`` per archive, each followed by its ``note`` lines.

    ``kinds`` holds (kind, directory, glob pattern) of each backup directory.
    """
    lines = [_MEMBERS]
    for kind, directory, pattern in kinds:
        lines += [
            f"b={quote(directory)}",
            f'for x in "$b"/{glob(pattern)}; do',
            '  [ -f "$x" ] || continue',
            "  n=",
            '  if [ ! -f "$x.sha256" ]; then v=nosum',
            "  elif [ \"$(sha256sum <\"$x\" | cut -d' ' -f1)\" != \"$(cut -d' ' -f1 <\"$x.sha256\")\" ]; "
            "then v=mismatch",
            '  elif ! gzip -t <"$x" 2>/dev/null; then v=gzip',
            '  else n=$(members "$x"); case $n in "") v=ok;; *"!failed"*) v=tar; n=;; *) v=unsafe;; esac',
            "  fi",
            f'  echo "archive {kind} $v $(wc -c <"$x") ${{x##*/}}"',
            "  [ -z \"$n\" ] || printf '%s\\n' \"$n\" | sed 's/^/note /'",
            "done",
        ]
    return lines


def glob(pattern: str) -> str:
    """A glob for sh: every character but * ? [ ] quoted."""
    return "".join(c if c in "*?[]" else quote(c) for c in pattern) if pattern else "*"


#: sh functions of the staging script (``$st`` the staging dir, ``$m`` the manifest or empty):
#: ``fresh`` empties the staging dir, ``get ARCHIVE [TAR OPTION]`` re-checks an archive and
#: extracts it, ``verified`` checks the staged tree against its manifest; each sets ``why``.
_STAGE_FUNCTIONS = [
    'fresh() { why="cannot create $st"; rm -rf -- "$st" && mkdir -- "$st"; }',
    "get() {",
    "  [ \"$(sha256sum <\"$1\" | cut -d' ' -f1)\" = \"$(cut -d' ' -f1 <\"$1.sha256\")\" ] "
    '|| { why="${1##*/} no longer matches its .sha256"; return 1; }',
    '  out=$(tar -xzf "$1" $2 -C "$st" 2>&1) '
    '|| { why="cannot extract ${1##*/}: $(printf %s "$out" | head -n 2)"; return 1; }',
    '  r=$(realpath -- "$st") || { why="cannot resolve $st"; return 1; }',
    "  out=$(find \"$st\" -type l -exec realpath -m -- {} + | "
    "R=$r awk 'index($0, ENVIRON[\"R\"] \"/\") != 1 && $0 != ENVIRON[\"R\"]' | head -n 1)",
    '  [ -z "$out" ] || { why="${1##*/} holds a symbolic link that resolves outside the tree, to $out"; '
    "return 1; }",
    "}",
    "verified() {",
    '  [ -n "$m" ] || return 0',
    '  [ -f "$st/$m" ] || { why="the staged tree has no $m"; return 1; }',
    '  out=$(cd "$st" && sha256sum -c --quiet -- "$m" 2>&1) '
    "|| { why=\"the staged tree does not match $m: $(printf '%s\\n' \"$out\" | grep -v '^sha256sum:' "
    "| head -n 3 | tr '\\n' ' ')\"; return 1; }",
    "}",
]


def stage_script(points: Sequence[Point], dirs: Mapping[str, str], stage: str, manifest: str) -> str:
    """Stage the first of ``points`` that passes; prints ``staged I`` or ``skipped I WHY`` per point tried.

    Exits 1, with the staging dir removed, when none passes.
    """
    lines = [f"st={quote(stage)}", f"m={quote(manifest)}", *_STAGE_FUNCTIONS]
    for index, point in enumerate(points):
        gets = []
        for archive in point.archives:
            path = quote(f"{dirs[archive.kind].rstrip('/')}/{archive.name}")
            gets.append(f"get {path}" + (" --listed-incremental=/dev/null" if archive.kind == "inc" else ""))
        lines += [f"if fresh && {' && '.join(gets)} && verified; then echo 'staged {index}'; exit 0; fi",
                  f'echo "skipped {index} $why"']
    lines += ['rm -rf -- "$st"',
              'echo "no restore point passed its checks in staging; nothing was replaced" >&2', "exit 1"]
    return "\n".join(lines)


def swap_script(dest: str, snap: str, stage: str) -> str:
    """Replace ``dest`` by the staged tree with two renames; the old tree becomes ``snap``."""
    return "\n".join([
        f"d={quote(dest)}", f"s={quote(snap)}", f"st={quote(stage)}",
        'if [ -e "$d" ]; then mv -- "$d" "$s" || exit 1; else : >"$s.absent" || exit 1; fi',
        'if ! mv -- "$st" "$d"; then',
        '  if [ -d "$s" ]; then mv -- "$s" "$d"; else rm -f -- "$s.absent"; fi',
        '  echo "cannot move the staged tree into place; $d is unchanged" >&2; exit 1',
        "fi",
        'echo "restored $d; the old tree is $s"',
    ])
