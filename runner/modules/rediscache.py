"""The ``redis_cache`` module: check a Redis cache against its source files, flush it, undo the flush.

Services layer. Everything goes through ``redis-cli`` on the host. Keys are
walked with SCAN, one bounded step per EVAL (the server never blocks on the
whole keyspace, and key names never pass through the shell); a flush by
pattern UNLINKs each key, first copying it (DUMP/RESTORE) into
``remedy:snapshot:<name>:<key>`` with a TTL when ``snapshot`` is given, so
that ``state: restored`` can put the keys back. FLUSHDB and FLUSHALL exist
only as explicit choices. A password is read on the host from
``password_file`` (into ``REDISCLI_AUTH``), never put on a command line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runner.modules.base import Arg, Change, Command, Fact, Module, Outcome, command_data, quote
from runner.results import CommandResult, Diff

NAMESPACE = "remedy:snapshot:"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")

#: One SCAN step: ARGV cursor, pattern, count. Returns cursor, then key, sha1 (or "-") pairs.
CHECK_LUA = (
    'local r=redis.call("SCAN",ARGV[1],"MATCH",ARGV[2],"COUNT",ARGV[3]) local out={r[1]} '
    'for _,k in ipairs(r[2]) do if string.sub(k,1,16)~="remedy:snapshot:" then '
    'local h="-" if redis.call("TYPE",k)["ok"]=="string" then h=redis.sha1hex(redis.call("GET",k)) end '
    'table.insert(out,k) table.insert(out,h) end end return out'
)
#: One SCAN step of a flush: ARGV cursor, pattern, count, snapshot prefix ("" = none), ttl ms, ttl hash.
FLUSH_LUA = (
    'local r=redis.call("SCAN",ARGV[1],"MATCH",ARGV[2],"COUNT",ARGV[3]) local n=0 '
    'for _,k in ipairs(r[2]) do if string.sub(k,1,16)~="remedy:snapshot:" then '
    'if ARGV[4]~="" then local d=redis.call("DUMP",k) if d then '
    'redis.call("HSET",ARGV[6],k,redis.call("PTTL",k)) '
    'redis.call("RESTORE",ARGV[4]..k,ARGV[5],d,"REPLACE") end end '
    'n=n+redis.call("UNLINK",k) end end '
    'if ARGV[4]~="" and n>0 then redis.call("PEXPIRE",ARGV[6],ARGV[5]) end '
    'return {r[1],tostring(n)}'
)
#: One SCAN step of a restore: ARGV cursor, snapshot pattern, count, snapshot prefix, ttl hash.
RESTORE_LUA = (
    'local r=redis.call("SCAN",ARGV[1],"MATCH",ARGV[2],"COUNT",ARGV[3]) local n=0 '
    'for _,s in ipairs(r[2]) do local k=string.sub(s,#ARGV[4]+1) local d=redis.call("DUMP",s) '
    'if d then local t=tonumber(redis.call("HGET",ARGV[5],k) or "-1") if t<0 then t=0 end '
    'redis.call("RESTORE",k,t,d,"REPLACE") redis.call("UNLINK",s) n=n+1 end end '
    'return {r[1],tostring(n)}'
)


@dataclass(frozen=True)
class RedisFacts:
    keys: tuple[tuple[str, str], ...] = ()  # (key, sha1 of a string value or "-")
    files: Mapping[str, str] | None = None  # relative path -> sha1 (state checked with source_dir)
    count: int = 0  # keys in scope (flushed), snapshot keys (restored)
    error: str = ""


class RedisCacheModule(Module):
    """Check, flush or restore a Redis cache, by key pattern (SCAN + UNLINK) or a whole db.

    ``state: checked`` only reads: with ``source_dir`` every string key under
    ``pattern`` is compared (by sha1) with the file ``source_dir/<key without
    key_prefix>``; the data lists ``stale`` keys (differ) and ``orphans`` (no
    such file). ``state: flushed`` deletes the keys matching ``pattern`` with
    SCAN + UNLINK, or the whole ``db`` with ``flush_db`` (FLUSHDB), or every
    db with ``flush_all`` (FLUSHALL; never implied). With ``snapshot`` a
    pattern flush first copies each key to ``remedy:snapshot:<snapshot>:<key>``
    (expiring after ``snapshot_ttl`` seconds); ``state: restored`` deletes the
    keys matching ``pattern`` again and puts the copies back.
    """

    name = "redis_cache"
    summary = "Check a Redis cache against its source files, flush it by pattern or db, undo a flush"
    args = {
        "pattern": Arg("str", doc="The key pattern (SCAN MATCH syntax), e.g. coze:cache:*."),
        "state": Arg("str", default="checked", choices=("checked", "flushed", "restored"),
                     doc="checked: only compare; flushed: delete; restored: undo a flush from its snapshot."),
        "flush_db": Arg("bool", default=False, doc="Flush the whole db (FLUSHDB) instead of a pattern."),
        "flush_all": Arg("bool", default=False, doc="Flush every db of the server (FLUSHALL); only if set."),
        "host": Arg("str", default="127.0.0.1", doc="The Redis server, as seen from the host."),
        "port": Arg("int", default=6379, doc="Its port."),
        "db": Arg("int", default=0, doc="The database number."),
        "password_file": Arg("path", doc="A file on the host holding the password (REDISCLI_AUTH)."),
        "cli": Arg("str", default="redis-cli", doc="The redis-cli program on the host."),
        "source_dir": Arg("path", doc="With state checked: the files the cache holds copies of."),
        "key_prefix": Arg("str", default="", doc="The part of a key before the file's relative path."),
        "snapshot": Arg("str", doc="Name of the copy kept by a pattern flush (letters, digits, . _ -)."),
        "snapshot_ttl": Arg("int", default=86400, doc="Seconds the snapshot copies live."),
        "batch": Arg("int", default=500, doc="Keys per SCAN step."),
    }

    def reads_only(self, args: Mapping[str, Any]) -> bool:
        return args.get("state") in (None, "checked")

    def facts(self, args: Mapping[str, Any]) -> Mapping[str, Fact]:
        a = self.resolved(args)
        if _problem(a):
            return {"redis": Fact(":", lambda r: RedisFacts())}
        return {"redis": Fact(_probe(a), _parse)}

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        a = self.resolved(args)
        problem = _problem(a)
        f: RedisFacts = facts["redis"]
        if problem or f.error:
            return Change(changed=False, failed=problem or f.error)
        where = f"db {a['db']} of {a['host']}:{a['port']}"
        if a["state"] == "checked":
            data = _check_data(a, f, where)
            return Change(changed=False, data=data, summary=data["summary"])
        if a["state"] == "restored":
            return _restore_plan(a, f, where)
        return _flush_plan(a, f, where)

    def outcome(self, args: Mapping[str, Any], facts: Mapping[str, Any], change: Change,
                results: Sequence[CommandResult]) -> Outcome:
        base = super().outcome(args, facts, change, results)
        if base.failed or not results:
            return base
        done = re.findall(r"^(?:unlinked|restored)=(\d+)$", results[-1].stdout, re.M)
        count = int(done[-1]) if done else None
        data = {**command_data(results[-1]), "count": count}
        return Outcome(changed=change.changed if count is None else count > 0, data=data)


def _problem(a: Mapping[str, Any]) -> str:
    scopes = [bool(a["pattern"]), bool(a["flush_db"]), bool(a["flush_all"])]
    if a["state"] != "flushed" and (a["flush_db"] or a["flush_all"]):
        return "flush_db and flush_all go with state flushed"
    if sum(scopes) != 1 and (a["state"] == "flushed"):
        return "give exactly one of pattern, flush_db, flush_all"
    if a["state"] != "flushed" and not a["pattern"]:
        return f"state {a['state']} needs pattern"
    if a["snapshot"] is not None and not _NAME.match(str(a["snapshot"])):
        return f"snapshot {a['snapshot']!r}: use letters, digits, '.', '_' and '-'"
    if a["state"] == "restored" and not a["snapshot"]:
        return "state restored needs snapshot"
    if a["snapshot"] and not a["pattern"]:
        return "a snapshot is kept only by a pattern flush (not by flush_db or flush_all)"
    if a["pattern"] and str(a["pattern"]).startswith("remedy:snapshot:"):
        return "the pattern must not reach into remedy's snapshots"
    return ""


def _client(a: Mapping[str, Any]) -> list[str]:
    auth = (f'REDISCLI_AUTH=$(cat {quote(a["password_file"])}) || exit 1; export REDISCLI_AUTH'
            if a["password_file"] else "unset REDISCLI_AUTH")
    return [
        auth,
        f"rc() {{ {quote(a['cli'])} --no-auth-warning -h {quote(a['host'])} -p {int(a['port'])} "
        f'-n {int(a["db"])} "$@"; }}',
        f"if ! command -v {quote(a['cli'])} >/dev/null 2>&1; then echo 'error={a['cli']} is not "
        "installed on the host'; exit 0; fi",
        'ping=$(rc PING 2>&1)',
        'if [ "$ping" != PONG ]; then echo "error=cannot reach Redis: $ping"; exit 0; fi',
    ]


def _scan_loop(script: str, args: str, *, emit: str) -> list[str]:
    """A sh loop of EVAL steps; each step's first line is the next cursor."""
    return [
        f"script={quote(script)}",
        "cursor=0",
        "while :; do",
        f'  out=$(rc EVAL "$script" 0 "$cursor" {args} 2>&1) || {{ echo "error=$out"; exit 1; }}',
        '  case $out in ERR*|WRONGTYPE*|NOSCRIPT*) echo "error=$out"; exit 1;; esac',
        "  cursor=$(printf '%s\\n' \"$out\" | head -n 1)",
        f"  {emit}",
        '  [ "$cursor" = 0 ] && break',
        "done",
    ]


def _probe(a: Mapping[str, Any]) -> str:
    lines = _client(a)
    pattern, batch = quote(a["pattern"] or "*"), int(a["batch"])
    if a["state"] == "checked":
        lines += _scan_loop(CHECK_LUA, f"{pattern} {batch}", emit="printf '%s\\n' \"$out\" | sed 1d")
        if a["source_dir"]:
            lines += [f"cd {quote(a['source_dir'])} 2>/dev/null && find . -type f -exec sha1sum {{}} + "
                      "| sed 's/^/file /'"]
    elif a["state"] == "restored":
        lines.append(f"echo count=$(rc --scan --pattern {quote(_prefix(a) + '*')} | wc -l)")
    elif a["pattern"]:
        lines.append(f"echo count=$(rc --scan --pattern {pattern} | grep -vc '^remedy:snapshot:')")
    elif a["flush_db"]:
        lines.append("echo count=$(rc DBSIZE)")
    else:
        lines.append("echo count=$(rc INFO keyspace | sed -n 's/^db[0-9]*:keys=\\([0-9]*\\).*/\\1/p' "
                     "| { t=0; while read -r n; do t=$((t+n)); done; echo $t; })")
    lines.append("echo end=1")
    return "\n".join(lines)


def _parse(result: CommandResult) -> RedisFacts:
    lines = result.stdout.splitlines()
    errors = [line[6:] for line in lines if line.startswith("error=")]
    if errors or "end=1" not in lines:
        detail = errors[0] if errors else (result.tail("stderr", 3) or f"exit code {result.rc}")
        return RedisFacts(error=f"the Redis probe failed: {detail}")
    files: dict[str, str] = {}
    count = 0
    body = []
    for line in lines:
        if line.startswith("file "):
            digest, _, name = line[5:].partition("  ")
            files[name[2:] if name.startswith("./") else name] = digest
        elif line.startswith("count="):
            count = int(line[6:] or 0)
        elif line != "end=1":
            body.append(line)
    keys = tuple(zip(body[0::2], body[1::2], strict=False))
    return RedisFacts(keys=keys, files=files, count=count)


def _check_data(a: Mapping[str, Any], f: RedisFacts, where: str) -> dict[str, Any]:
    prefix = str(a["key_prefix"] or "")
    stale, orphans = [], []
    if a["source_dir"]:
        files = f.files or {}
        for key, digest in f.keys:
            name = key[len(prefix):] if key.startswith(prefix) else key
            if name not in files:
                orphans.append(key)
            elif digest != files[name]:
                stale.append(key)
    bad = sorted(stale + orphans)
    summary = (f"{len(f.keys)} keys matching {a['pattern']!r} in {where}"
               + (f": {len(stale)} stale, {len(orphans)} without a source file" if bad else
                  (", all equal to their source files" if a["source_dir"] else "")))
    return {"keys": len(f.keys), "stale": sorted(stale), "orphans": sorted(orphans), "ok": not bad,
            "summary": summary}


def _prefix(a: Mapping[str, Any]) -> str:
    return f"{NAMESPACE}{a['snapshot']}:"


def _flush_plan(a: Mapping[str, Any], f: RedisFacts, where: str) -> Change:
    if not f.count:
        return Change(changed=False, summary=f"no keys to flush in {where}")
    lines = _client(a)
    if a["pattern"]:
        snap = _prefix(a) if a["snapshot"] else ""
        ttl = int(a["snapshot_ttl"]) * 1000
        lines += ["total=0", *_scan_loop(
            FLUSH_LUA, f"{quote(a['pattern'])} {int(a['batch'])} {quote(snap)} {ttl} {quote(snap[:-1])}",
            emit="total=$((total + $(printf '%s\\n' \"$out\" | sed -n 2p)))"), 'echo "unlinked=$total"']
        what = f"{f.count} keys matching {a['pattern']!r} in {where}"
        kept = f"; copies kept {a['snapshot_ttl']} s as {snap}*" if snap else ""
    else:
        verb = "FLUSHDB" if a["flush_db"] else "FLUSHALL"
        lines += [f'out=$(rc {verb} 2>&1); [ "$out" = OK ] || {{ echo "$out" >&2; exit 1; }}',
                  f"echo unlinked={f.count}"]
        what = f"all {f.count} keys of {where}" if a["flush_db"] else \
            f"all {f.count} keys of every db of {a['host']}:{a['port']} (FLUSHALL)"
        kept = ""
    return Change(
        changed=True,
        steps=(Command("\n".join(lines)),),
        diffs=(Diff(f"redis {where}", f"{what}\n", "flushed\n"),),
        summary=f"unlink {what}{kept}",
    )


def _restore_plan(a: Mapping[str, Any], f: RedisFacts, where: str) -> Change:
    snap = _prefix(a)
    if not f.count:
        return Change(changed=False, summary=f"no snapshot {snap}* in {where}: nothing to restore")
    lines = [*_client(a), *_scan_loop(FLUSH_LUA, f"{quote(a['pattern'])} {int(a['batch'])} '' 0 ''",
                                      emit=":")]
    lines += ["total=0", *_scan_loop(
        RESTORE_LUA, f"{quote(snap + '*')} {int(a['batch'])} {quote(snap)} {quote(snap[:-1])}",
        emit="total=$((total + $(printf '%s\\n' \"$out\" | sed -n 2p)))"),
        f"rc UNLINK {quote(snap[:-1])} >/dev/null", 'echo "restored=$total"']
    return Change(
        changed=True,
        steps=(Command("\n".join(lines)),),
        diffs=(Diff(f"redis {where}", f"keys matching {a['pattern']!r} as they are now\n",
                    f"the {f.count} keys saved in {snap}*\n"),),
        summary=f"restore {f.count} keys of {where} from {snap}*",
    )
