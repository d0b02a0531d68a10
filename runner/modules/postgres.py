"""The ``postgres_restore`` module: restore PostgreSQL from ``pg_dump -Fc`` archives, staged, with undo.

Services layer. The probe checks every dump against its ``.sha256`` file and
with ``pg_restore --list``, and counts the rows of ``verify_table``. The
plan picks the newest valid dump at or before ``restore_point``
(``backupchoice``), restores it into a staging database and checks the row
count there, then swaps: the whole database by ``ALTER DATABASE ... RENAME``,
or, with ``schema``, inside the live database in one transaction (the live
schema is renamed to the snapshot name and the dump is replayed). The
replaced database or schema is kept as the safety snapshot that
``state: reverted`` renames back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.modules.backupchoice import (
    Archive,
    RestoreModule,
    choose_for,
    describe_point,
    fallback_problem,
    parse_point,
)
from runner.modules.base import Arg, Change, Command, quote
from runner.results import CommandResult, Diff

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SUFFIX = re.compile(r"^[a-z0-9_]{1,30}$")
_TABLE = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")


@dataclass(frozen=True)
class PgFacts:
    rows: int | None = None  # rows of verify_table; None when it cannot be counted
    rows_error: str = ""
    snapshot: bool = False  # the snapshot schema/database exists
    staging: bool = False
    sessions: int = 0  # other sessions on the database (database mode)
    archives: tuple[Archive, ...] = ()
    error: str = ""


def _names(a: Mapping[str, Any]) -> tuple[str, str, str]:
    """(live object, snapshot name, staging database)."""
    live = str(a["schema"] or a["database"])
    stage = f"{a['database']}_{a['schema']}" if a["schema"] else str(a["database"])
    return live, f"{live}_snap_{a['snapshot']}"[:63], f"{stage}_stage_{a['snapshot']}"[:63]


def _problem(a: Mapping[str, Any]) -> str:
    for key in ("database", "schema", "maintenance_db"):
        if a[key] and not _IDENT.match(str(a[key])):
            return f"{key} {a[key]!r}: use lowercase letters, digits and _ (a plain identifier)"
    if not _SUFFIX.match(str(a["snapshot"] or "")):
        return f"snapshot {a['snapshot']!r}: use lowercase letters, digits and _ (at most 30)"
    if not _TABLE.match(str(a["verify_table"] or "")):
        return f"verify_table {a['verify_table']!r} is not a [schema.]table name"
    if a["state"] != "reverted" and not a["dump_dir"]:
        return "dump_dir is needed to restore"
    if a["restore_point"] and parse_point(str(a["restore_point"])) is None:
        return f"restore_point {a['restore_point']!r} is not a time such as 2024-03-14T10:00:00Z"
    return fallback_problem(str(a["max_fallback"]))


def _client(a: Mapping[str, Any]) -> list[str]:
    bin_dir = str(a["bin_dir"] or "")
    tool = (lambda name: quote(f"{bin_dir.rstrip('/')}/{name}")) if bin_dir else (lambda name: name)
    auth = (f'PGPASSWORD=$(cat {quote(a["password_file"])}) || exit 1; export PGPASSWORD'
            if a["password_file"] else ":")
    conn = f"-h {quote(a['host'])} -p {int(a['port'])} -U {quote(a['user'])}"
    return [
        auth,
        "PGOPTIONS='-c client_min_messages=warning'; export PGOPTIONS",
        f"q() {{ db=$1; shift; {tool('psql')} -X -q -v ON_ERROR_STOP=1 {conn} -d \"$db\" \"$@\"; }}",
        f"r() {{ {tool('pg_restore')} \"$@\"; }}",
        f"if ! command -v {tool('psql')} >/dev/null 2>&1 || "
        f"! command -v {tool('pg_restore')} >/dev/null 2>&1; then "
        "echo 'error=psql or pg_restore is not installed on the host (set bin_dir?)'; exit 0; fi",
    ]


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _count(relation: str, where: str = "") -> str:
    """``SELECT count(*)``; ``relation`` is a checked identifier, ``where`` built with ``_sql_text``."""
    return " ".join(["SELECT count(*) FROM", relation, *(["WHERE", where] if where else [])])


def _probe(a: Mapping[str, Any]) -> str:
    live, snap, stage = _names(a)
    database = quote(a["database"])
    exists = (_count("pg_namespace", f"nspname = {_sql_text(snap)}") if a["schema"] else
              _count("pg_database", f"datname = {_sql_text(snap)}"))
    lines = [
        *_client(a),
        f'out=$(q {database} -tAc "SELECT 1" 2>&1) || {{ echo "error=cannot connect: $out"; exit 0; }}',
        f"if out=$(q {database} -tAc {quote(_count(str(a['verify_table'])))} 2>&1); "
        'then echo "rows=$out"; else echo "rows_error=$(printf %s "$out" | head -n 1)"; fi',
        f"echo snapshot=$(q {database} -tAc {quote(exists)})",
        f"echo staging=$(q {database} -tAc {quote(_count('pg_database', f'datname = {_sql_text(stage)}'))})",
        f"echo sessions=$(q {database} -tAc {quote(_sessions_sql(a))})",
    ]
    if a["state"] != "reverted":
        lines += [
            f"b={quote(a['dump_dir'])}",
            f'for x in "$b"/{"".join(c if c in "*?[]" else quote(c) for c in str(a["dump_pattern"]))}; do',
            '  [ -f "$x" ] || continue',
            '  if [ ! -f "$x.sha256" ]; then v=nosum',
            "  elif [ \"$(sha256sum <\"$x\" | cut -d' ' -f1)\" != \"$(cut -d' ' -f1 <\"$x.sha256\")\" ]; "
            "then v=mismatch",
            '  elif r --list "$x" >/dev/null 2>&1; then v=ok; else v=invalid; fi',
            '  echo "archive dump $v $(wc -c <"$x") ${x##*/}"',
            "done",
        ]
    lines.append("echo end=1")
    return "\n".join(lines)


def _sessions_sql(a: Mapping[str, Any]) -> str:
    name = _sql_text(str(a["database"]))
    return _count("pg_stat_activity", f"datname = {name} AND pid <> pg_backend_pid()")


def _parse(result: CommandResult) -> PgFacts:
    found: dict[str, str] = {}
    archives = []
    for line in result.stdout.splitlines():
        if line.startswith("archive "):
            parts = line.split(" ", 4)
            if len(parts) == 5:
                archives.append(Archive.of(parts[1], parts[4], parts[2], int(parts[3] or 0)))
        else:
            key, _, value = line.partition("=")
            found.setdefault(key, value)
    if found.get("error") or result.rc != 0 or "end" not in found:
        detail = found.get("error") or result.tail("stderr", 3) or f"exit code {result.rc}"
        return PgFacts(error=f"the PostgreSQL probe failed: {detail}")
    rows = found.get("rows", "").strip()
    return PgFacts(rows=int(rows) if rows.isdigit() else None, rows_error=found.get("rows_error", ""),
                   snapshot=found.get("snapshot", "0").strip() not in ("", "0"),
                   staging=found.get("staging", "0").strip() not in ("", "0"),
                   sessions=int(found.get("sessions", "0").strip() or 0), archives=tuple(archives))


def _restore_plan(a: Mapping[str, Any], f: PgFacts) -> Change:
    live, snap, stage = _names(a)
    table, minimum = str(a["verify_table"]), int(a["min_rows"])
    now = f"{table}: {f.rows} rows" if f.rows is not None else f"{table}: {f.rows_error or 'unreadable'}"
    if f.rows is not None and f.rows >= minimum and not a["force"]:
        return Change(changed=False, summary=f"{now} (at least {minimum}): nothing to restore")
    if f.snapshot:
        return Change(changed=False, failed=f"{snap} already exists; choose another snapshot name")
    if not a["schema"] and f.sessions:
        return Change(changed=False, failed=f"{f.sessions} other sessions use database {a['database']}; "
                      "it cannot be renamed while they are connected (stop its clients first)")
    choice, point = choose_for(a, f.archives)
    if not choice.archives:
        return Change(changed=False, data=choice.data(), failed=choice.failure(point))
    dump = f"{str(a['dump_dir']).rstrip('/')}/{choice.archives[0].name}"
    kind = "schema" if a["schema"] else "database"
    return Change(
        changed=True,
        steps=(Command(_stage_script(a, dump, stage)), Command(_swap_script(a, dump, live, snap, stage))),
        diffs=(Diff(f"postgresql {kind} {live}", now + "\n",
                    f"restored from {choice.label()} ({describe_point(choice.time)}); "
                    f"old {kind} kept as {snap}\n"),),
        summary="; ".join([*([choice.loss()] if choice.loss() else []),
                           f"restore {kind} {live} from {choice.label()} via staging database {stage}",
                           *([] if choice.loss() else choice.skipped), f"keep the current {kind} as {snap}"]),
        data=choice.data(),
    )


def _count_check(a: Mapping[str, Any], db: str, what: str) -> list[str]:
    table, minimum = str(a["verify_table"]), int(a["min_rows"])
    return [
        f'n=$(q {db} -tAc {quote(_count(table))}) || fail "cannot count {table} in {what}"',
        f'[ "$n" -ge {minimum} ] || fail "{table} has $n rows in {what}, fewer than {minimum}"',
        f'echo "{what}: {table} has $n rows"',
    ]


def _stage_script(a: Mapping[str, Any], dump: str, stage: str) -> str:
    database = quote(a["database"])
    return "\n".join([
        *_client(a),
        f"x={quote(dump)}",
        f"fail() {{ q {database} -c {quote(f'DROP DATABASE IF EXISTS {stage}')} >/dev/null 2>&1; "
        'echo "$1; nothing was replaced" >&2; exit 1; }',
        "[ \"$(sha256sum <\"$x\" | cut -d' ' -f1)\" = \"$(cut -d' ' -f1 <\"$x.sha256\")\" ] "
        '|| fail "$x no longer matches its .sha256"',
        f"q {database} -c {quote(f'DROP DATABASE IF EXISTS {stage}')} -c {quote(f'CREATE DATABASE {stage}')} "
        '|| fail "cannot create the staging database"',
        f'out=$(r --no-owner --exit-on-error --single-transaction -h {quote(a["host"])} -p {int(a["port"])} '
        f'-U {quote(a["user"])} -d {stage} "$x" 2>&1) || fail "pg_restore into {stage} failed: $out"',
        *_count_check(a, stage, f"staging database {stage}"),
    ])


def _swap_script(a: Mapping[str, Any], dump: str, live: str, snap: str, stage: str) -> str:
    database = quote(a["database"])
    lines = [*_client(a), f"x={quote(dump)}", 'fail() { echo "$1" >&2; exit 1; }']
    if a["schema"]:
        lines += [
            'sql=$(mktemp) || exit 1',
            'r --no-owner -f "$sql" "$x" || { rm -f -- "$sql"; fail "pg_restore cannot read $x"; }',
            f"{{ echo {quote(f'ALTER SCHEMA {live} RENAME TO {snap};')}; cat \"$sql\"; }} "
            f"| q {database} --single-transaction >/dev/null || {{ rm -f -- \"$sql\"; "
            'fail "the swap failed; its transaction was rolled back and nothing changed"; }',
            'rm -f -- "$sql"',
            f"q {database} -c {quote(f'DROP DATABASE IF EXISTS {stage}')} >/dev/null",
        ]
    else:
        lines += [
            f"q {quote(a['maintenance_db'])} -c {quote(f'ALTER DATABASE {live} RENAME TO {snap}')} "
            '|| fail "cannot rename the live database"',
            f"q {quote(a['maintenance_db'])} -c {quote(f'ALTER DATABASE {stage} RENAME TO {live}')} || "
            f"{{ q {quote(a['maintenance_db'])} -c {quote(f'ALTER DATABASE {snap} RENAME TO {live}')}; "
            'fail "cannot rename the staging database; the live one was put back"; }',
        ]
    lines += _count_check(a, database, f"{a['database']} after the swap")
    return "\n".join(lines)


def _revert_plan(a: Mapping[str, Any], f: PgFacts) -> Change:
    live, snap, stage = _names(a)
    database, maintenance = quote(a["database"]), quote(a["maintenance_db"])
    if not f.snapshot and not f.staging:
        return Change(changed=False, summary=f"no snapshot {snap}: nothing to revert")
    drop = quote(f"DROP DATABASE IF EXISTS {stage}")
    lines = [*_client(a), f"q {maintenance} -c {drop} >/dev/null || exit 1"]
    if f.snapshot and a["schema"]:
        sql = f"DROP SCHEMA IF EXISTS {live} CASCADE; ALTER SCHEMA {snap} RENAME TO {live};"
        lines.append(f"q {database} --single-transaction -c {quote(sql)} >/dev/null")
    elif f.snapshot:
        failed = f"{live}_failed_{a['snapshot']}"[:63]
        lines += [f"q {maintenance} -c {quote(f'ALTER DATABASE {live} RENAME TO {failed}')} || exit 1",
                  f"q {maintenance} -c {quote(f'ALTER DATABASE {snap} RENAME TO {live}')} || exit 1",
                  f"q {maintenance} -c {quote(f'DROP DATABASE {failed}')}"]
    kind = "schema" if a["schema"] else "database"
    return Change(
        changed=True,
        steps=(Command("\n".join(lines)),),
        diffs=(Diff(f"postgresql {kind} {live}", "as restored\n",
                    f"the snapshot {snap}\n" if f.snapshot else "unchanged (staging dropped)\n"),),
        summary=f"put {kind} {live} back from {snap}" if f.snapshot else f"drop the staging database {stage}",
    )


class PostgresRestoreModule(RestoreModule):
    """Restore a PostgreSQL database (or one schema of it) from verified ``pg_dump -Fc`` archives.

    Dumps are ``dump_dir/<dump_pattern>`` files whose names carry their time
    (``YYYYMMDDTHHMMSS``, UTC), each with a ``.sha256`` file. A dump is used
    only if it matches its checksum and ``pg_restore --list`` reads it. It is
    restored into the staging database ``<database>_stage_<snapshot>``, where
    ``verify_table`` must hold at least ``min_rows`` rows; then it replaces
    the live data, keeping the old as ``<database or schema>_snap_<snapshot>``.
    Without ``force`` nothing is restored while ``verify_table`` already holds
    ``min_rows`` rows. A dump older than the newest one by more than
    ``max_fallback`` is refused (``restore_point`` accepts it); a smaller
    fallback is named first in the plan. ``state: reverted`` renames the
    snapshot back.
    """

    name = "postgres_restore"
    fact = "postgres"
    summary = "Restore PostgreSQL from verified pg_dump archives via a staging database, with undo"
    args = {
        "database": Arg("str", required=True, doc="The live database."),
        "schema": Arg("str", doc="Restore and swap only this schema (the dump holds just it)."),
        "dump_dir": Arg("path", doc="Where the pg_dump -Fc archives are."),
        "dump_pattern": Arg("str", default="*.dump", doc="Glob of the archives in dump_dir."),
        "restore_point": Arg("str", doc="Use the newest valid dump at or before this time."),
        "max_fallback": Arg("str", default="24h", doc="How much older than the newest dump (at or before "
                            "restore_point) the restored one may be: 90m, 24h, 2d, 1w, or unlimited; an "
                            "older choice fails before anything changes."),
        "verify_table": Arg("str", required=True, doc="[schema.]table whose row count proves a restore."),
        "min_rows": Arg("int", default=1, doc="Rows verify_table must hold after a restore."),
        "snapshot": Arg("str", required=True, doc="Name of this restore's staging and snapshot "
                        "(lowercase letters, digits, _)."),
        "state": Arg("str", default="restored", choices=("restored", "checked", "reverted"),
                     doc="restored: restore; checked: only choose the backup (fails if none is valid); "
                     "reverted: rename the snapshot back."),
        "force": Arg("bool", default=False, doc="Restore even when verify_table holds min_rows rows."),
        "host": Arg("str", default="127.0.0.1", doc="The PostgreSQL server, or its socket dir."),
        "port": Arg("int", default=5432, doc="Its port."),
        "user": Arg("str", default="postgres", doc="The role to connect as (owner of the database)."),
        "maintenance_db": Arg("str", default="postgres", doc="Database to connect to for renames."),
        "password_file": Arg("path", doc="A file on the host holding the password (PGPASSWORD)."),
        "bin_dir": Arg("path", default="", doc="Directory of psql and pg_restore; '' uses PATH."),
    }

    problem = staticmethod(_problem)
    probe = staticmethod(_probe)
    parse = staticmethod(_parse)
    restore = staticmethod(_restore_plan)
    revert = staticmethod(_revert_plan)
