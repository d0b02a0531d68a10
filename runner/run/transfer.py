"""Atomic uploads and fetches, built on ``Connection.run`` and ``Connection.get``.

Run stage, used by the executor to perform ``Upload`` and ``Fetch``
steps. An upload is one remote ``sh`` script fed the content on stdin: it
refuses a symlink destination, writes a temp file in the destination's
directory (same filesystem, private mode), checks its sha256, applies
owner/group/mode, runs the optional ``validate`` command on the temp file,
keeps an optional backup, and renames over the destination. Any failure
removes the temp file and leaves the destination untouched; a temp file that
an upload killed outright left behind is removed by the next upload into
that directory, once its writer is gone.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
from pathlib import Path

from runner.connection import Become, Connection
from runner.connection.shell import READ_STDIN
from runner.modules.base import Fetch, Upload, parent_dir, quote
from runner.results import CommandResult

#: What a run id may not bring into a temp file's name.
_RUN_ID = re.compile(r"[^A-Za-z0-9]")

_SCRIPT = r"""
set -u
dest=%(dest)s
dir=%(dir)s
if [ -L "$dest" ]; then echo "refusing to write through the symlink $dest" >&2; exit 70; fi
if [ ! -d "$dir" ]; then echo "directory $dir does not exist" >&2; exit 71; fi
if [ -e "$dest" ] && [ ! -f "$dest" ]; then echo "$dest exists and is not a regular file" >&2; exit 72; fi
%(sweep)s
tmp=$(umask 077; mktemp "$dir/.remedy.%(run)s.$me.XXXXXXXX") || exit 73
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 141' PIPE; trap 'exit 143' TERM
{ %(read_stdin)s; } > "$tmp" || exit 74
if command -v sha256sum >/dev/null 2>&1; then sum=$(sha256sum -- "$tmp")
else sum=$(openssl dgst -sha256 -r "$tmp"); fi
if [ "${sum%%%% *}" != %(sha)s ]; then echo "checksum mismatch after transfer" >&2; exit 75; fi
%(inherit)s
%(attributes)s
%(validate)s
%(backup)s
sync -- "$tmp" 2>/dev/null || true
mv -f -- "$tmp" "$dest" || exit 78
trap - EXIT HUP INT PIPE TERM
echo "written $dest"
"""

#: Sets ``me`` to ``<pid>-<start time>`` of the shell running the upload, read from /proc
#: without a process (``$$`` then, with start time 0, where there is no /proc): it names
#: the temp file, so that a later upload can tell whether its writer is still alive.
_ME = ("read -r p _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ s _ 2>/dev/null </proc/self/stat "
       '&& me="$p-$s" || me="$$-0"')

#: Removes the temp files in ``$dir`` that uploads left when they were killed outright
#: (no trap runs on SIGKILL, power loss, a crash): those whose writer (named in the file's
#: name) is gone, or whose pid now belongs to a process started at another time. A writer
#: that exists but is not visible (another user's process under ``hidepid``: ``kill -0``
#: says EPERM) counts as alive; temp names of another form are never touched.
_SWEEP = r"""remedy_gone() {
  if read -r _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ st _ 2>/dev/null <"/proc/$1/stat"; then
    [ "$st" != "$2" ]; return
  fi
  kill -0 "$1" 2>/dev/null && return 1
  case $(LC_ALL=C kill -0 "$1" 2>&1) in *ermitted*) return 1;; esac
}
for old in "$dir"/.remedy.*.*-*.*; do
  [ -f "$old" ] && [ ! -L "$old" ] || continue
  t=${old#"$dir"/.remedy.}; t=${t#*.}; t=${t%%.*}; pid=${t%%-*}; start=${t#*-}
  case $pid$start in ''|*[!0-9]*) continue;; esac
  remedy_gone "$pid" "$start" && rm -f -- "$old" && echo "removed $old: the upload that wrote it is gone" >&2
done"""

#: True when the temp file already has the destination's owner and group: the
#: destination belongs to this shell's user and group, and so does the new file
#: (whose group differs in a setgid directory). Shell builtins only.
_OWNED_ALIKE = '{ [ -O "$dest" ] && [ -G "$dest" ] && [ -G "$tmp" ]; }'


def upload_script(step: Upload, run_id: str = "") -> str:
    """The remote script that performs ``step`` (content goes on stdin).

    ``mktemp`` creates the temp file exclusively and private (0600, which a
    directory's default ACL cannot widen the way it widens a shell
    redirection's 0666), named ``.remedy.<run_id>.<pid>-<start>.XXXXXXXX``
    after the run and the process writing it; first, temp files whose
    writer is gone are removed (``_SWEEP``). A ``chown`` that would change nothing is skipped.
    The backup's name carries a random token: uploads in one session share
    the persistent shell's ``$$``. The content comes from ``READ_STDIN``:
    ``remedy_stdin`` where the connection defines it (see ``Connection.run``), else stdin;
    either way the sha256 check compares what was written with what was sent.
    """
    attributes = []
    skip = f"{_OWNED_ALIKE} || " if step.owner_is_dest else ""
    if step.owner and step.group:
        attributes.append(f'{skip}chown -- {quote(step.owner + ":" + step.group)} "$tmp" || exit 76')
    elif step.owner:
        attributes.append(f'chown -- {quote(step.owner)} "$tmp" || exit 76')
    elif step.group:
        attributes.append(f'chgrp -- {quote(step.group)} "$tmp" || exit 76')
    if step.mode:
        attributes.append(f'chmod -- {quote(step.mode)} "$tmp" || exit 76')
    validate = ""
    if step.validate:
        command = step.validate.replace("%s", '"$tmp"')
        validate = (f'( {command} ) >&2 || {{ echo "validate command failed: "{quote(step.validate)} >&2; '
                    "exit 77; }")
    backup = ""
    if step.backup:
        backup = (f'if [ -f "$dest" ]; then cp -p -- "$dest" "$dest.$(date +%Y%m%d%H%M%S).'
                  f'{secrets.token_hex(4)}.bak" || exit 79; fi')
    inherit = []  # what the step does not set is kept from the file it replaces
    if not (step.owner and step.group):
        inherit.append(f'[ -e "$dest" ] && ! {_OWNED_ALIKE} && '
                       '{ chown --reference="$dest" -- "$tmp" 2>/dev/null || true; }')
    if not step.mode:
        inherit.append('if [ -e "$dest" ]; then chmod --reference="$dest" -- "$tmp" 2>/dev/null || true; '
                       'else chmod 0644 -- "$tmp"; fi')
    return _SCRIPT % {
        "sweep": f"{_SWEEP}\n{_ME}",
        "run": _RUN_ID.sub("", run_id) or "run",
        "inherit": "\n".join(inherit),
        "read_stdin": READ_STDIN,
        "dest": quote(step.dest),
        "dir": quote(parent_dir(step.dest)),
        "sha": quote(hashlib.sha256(step.content).hexdigest()),
        "attributes": "\n".join(attributes),
        "validate": validate,
        "backup": backup,
    }


def upload(conn: Connection, step: Upload, *, become: Become | None,
           timeout: float | None, run_id: str = "") -> CommandResult:
    """Perform an ``Upload`` step for run ``run_id``; a non-zero rc means the destination is untouched.

    Without a ``validate`` command the script runs only remedy's own commands,
    none of which outlives it: it runs ``contained`` (see ``Connection.run``).
    """
    return conn.run(upload_script(step, run_id), stdin=step.content, become=become, timeout=timeout,
                    contained=not step.validate)


def fetch(conn: Connection, step: Fetch, host: str) -> CommandResult:
    """Copy a host file to the controller atomically (temp file + rename).

    Not ``flat``: the file lands at ``dest/<host>/<src>`` (as in Ansible), so
    hosts never overwrite each other's copies.
    """
    dest = step.dest if step.flat else os.path.join(step.dest, host, step.src.lstrip("/"))
    command = f"fetch {step.src} -> {dest}"
    try:
        data = conn.get(step.src)
    except (OSError, EOFError) as error:
        return CommandResult(command=command, rc=1, stderr=f"cannot read {step.src}: {error}")
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    except OSError as error:
        Path(temp).unlink(missing_ok=True)
        return CommandResult(command=command, rc=1, stderr=f"cannot write {target}: {error}")
    return CommandResult(command=command, rc=0, stdout=f"fetched {len(data)} bytes")
