"""The ``config_file`` module: judge a service's config, restore a good one, keep good copies, undo.

Services layer. The config probe (``configprobe``) reads the files and what
the service's own checker says of each; ``configcheck`` judges them (YAML
syntax with line and column, required keys, types, paths that exist). The
plans are pure: ``checked`` only reads; ``restored`` picks the newest valid
last known good copy, the rendered template or the packaged default and
writes it as ``copy`` does (temp file, validated by the checker, renamed),
keeping the replaced file as evidence first; ``saved`` keeps a copy of a
verified config and prunes the oldest; ``reverted`` puts the evidence back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import yaml

from runner.modules.attributes import Wanted
from runner.modules.base import Arg, Change, Command, Fact, Module, flag, parent_dir, quote
from runner.modules.configcheck import (
    CANNOT_RUN,
    SECRET_KEYS,
    Schema,
    judge,
    judge_text,
    load_yaml,
    make_schema,
    secret_values,
    verdict_summary,
)
from runner.modules.configprobe import NEWEST_LIMIT, ConfigFiles, ConfigText, Request, probe_fact
from runner.modules.content import Write, content_probe, write_plan
from runner.modules.pathfact import PathInfo, describe
from runner.results import Diff

SOURCES = ("last_good", "template", "default")


def copy_command(src: str, dest: str, *, attributes: bool) -> str:
    """Copy ``src`` over ``dest`` atomically (a private temp file beside ``dest``, then a rename).

    ``attributes``: the copy gets ``src``'s mode, owner and times (``cp -p``);
    otherwise it is a new file of mode 0600.
    """
    return (f"t=$(umask 077; mktemp {quote(parent_dir(dest))}/.remedy-config.XXXXXXXX) || exit 1\n"
            f"if cp {'-p ' if attributes else ''}-- {quote(src)} \"$t\" && mv -f -- \"$t\" {quote(dest)}; "
            'then :; else rm -f -- "$t"; exit 1; fi')


class ConfigFileModule(Module):
    """Judge a config file, or restore, keep or put back a good one.

    ``state: checked`` only reads: its data says whether ``path`` is ``ok``,
    every problem (``summary``; a YAML error names its ``line`` and
    ``column``), and whether it ``exists``. A checker that cannot run (exit
    126 or 127), an unreadable or too large file fail the task: they are not
    a verdict on the config. ``state: restored`` writes the newest good
    ``source`` that passes every check over ``path``, after copying the
    replaced file to ``evidence``; ``state: saved`` copies a config to
    ``backup_dir/name`` unless the newest copy already equals it, and keeps
    the newest ``keep`` copies; ``state: reverted`` puts ``evidence`` back
    (or removes a ``path`` that did not exist before: ``existed: false``).
    """

    name = "config_file"
    summary = "Judge a service's config, restore a known good one, keep verified copies, put one back"
    args = {
        "path": Arg("path", required=True, doc="The config file."),
        "state": Arg("str", default="checked", choices=("checked", "restored", "saved", "reverted"),
                     doc="checked: only judge; restored: write a good one; saved: keep a copy of it; "
                         "reverted: put the evidence back."),
        "check": Arg("str", doc="The service's own checker, %s standing for the file; it must only read. "
                                "Exit 0 means valid. Default: the built-in checks only."),
        "required": Arg("list", doc="Top-level keys the config must have."),
        "types": Arg("dict", doc="Top-level key -> type: str, int, bool, port, path (absolute), dir or "
                                 "file (absolute, and it exists on the host)."),
        "source": Arg("str", default="last_good", choices=SOURCES,
                      doc="restored: the newest valid copy in backup_dir, the template, or default."),
        "backup_dir": Arg("path", doc="The directory of the known good copies (last_good, saved)."),
        "pattern": Arg("str", default="*", doc="Glob of the copies in backup_dir (newest by mtime first)."),
        "default": Arg("path", doc="The packaged default config on the host (source default)."),
        "template": Arg("template_file", doc="A template beside the playbook, rendered (source template)."),
        "evidence": Arg("path", doc="Where the replaced file is kept (restored), put back from (reverted)."),
        "name": Arg("str", doc="saved: the file name of the new copy in backup_dir."),
        "keep": Arg("int", default=5, doc="saved: how many copies backup_dir keeps (the newest)."),
        "existed": Arg("bool", default=True, doc="reverted: whether path existed before it was restored."),
        "secret_keys": Arg("list", default=list(SECRET_KEYS),
                           doc="Globs of keys (any depth, any case) whose values found in the files are "
                               "masked in every output, as registered secrets are."),
        "mode": Arg("mode", doc="Mode of a config that is created (an existing one keeps its own)."),
        "owner": Arg("str", doc="Owner of a config that is created."),
        "group": Arg("str", doc="Group of a config that is created."),
    }

    def reads_only(self, args: Mapping[str, Any]) -> bool:
        return args.get("state") in (None, "checked")

    def facts(self, args: Mapping[str, Any]) -> Mapping[str, Fact]:
        a = self.resolved(args)
        path, schema = str(a["path"]), make_schema(a["required"], a["types"])
        keys = schema.path_keys if isinstance(schema, Schema) else ()
        judged = Request(check=a["check"] or None, keys=keys)
        if a["state"] == "checked":
            return {"config": probe_fact(replace(judged, files=(path,)))}
        if a["state"] == "saved":
            return {"config": probe_fact(Request((path,), content=False)),
                    "copies": probe_fact(Request(directory=str(a["backup_dir"]), pattern=str(a["pattern"]),
                                                 newest=1, content=False))}
        if a["state"] == "reverted":
            return {"dest": content_probe(path), "evidence": content_probe(str(a["evidence"] or path))}
        return {"dest": content_probe(path), "sources": _source_fact(a, judged, schema)}

    def secrets(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> tuple[str, ...]:
        a = self.resolved(args)
        texts = [str(a["template"] or "")]
        for fact in facts.values():
            if isinstance(fact, ConfigFiles):
                texts += [f.text for f in fact.files if f.text]
            elif isinstance(fact, PathInfo) and fact.content:
                texts.append(fact.content)
        patterns = [str(p) for p in a["secret_keys"] or ()]
        return tuple(sorted(set().union(*(secret_values(t, patterns) for t in texts))))

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        a = self.resolved(args)
        schema = make_schema(a["required"], a["types"])
        problem = schema if isinstance(schema, str) else _problem(a)
        if problem:
            return Change(changed=False, failed=problem)
        assert isinstance(schema, Schema)
        if a["state"] == "checked":
            return _checked(a, facts["config"], schema)
        if a["state"] == "saved":
            return _saved(a, facts["config"], facts["copies"])
        if a["state"] == "reverted":
            return _reverted(a, facts["dest"], facts["evidence"])
        return _restored(a, facts["dest"], facts["sources"], schema)


def _problem(a: Mapping[str, Any]) -> str:
    check = a["check"]
    if check and "%s" not in str(check):
        return f"check must contain %s (the file's path): {check!r}"
    needs = {"restored": ("evidence",), "saved": ("backup_dir", "name"), "reverted": ("evidence",)}
    needs_source = {"last_good": "backup_dir", "default": "default", "template": "template"}
    wanted = needs.get(a["state"], ()) + ((needs_source[a["source"]],) if a["state"] == "restored" else ())
    missing = [name for name in wanted if not a[name]]
    if missing:
        return f"state {a['state']}{' from ' + a['source'] if a['state'] == 'restored' else ''} " \
               f"needs {' and '.join(missing)}"
    if a["name"] and ("/" in str(a["name"]) or str(a["name"]) in (".", "..")):
        return f"name must be a file name, not {a['name']!r}"
    return "" if int(a["keep"]) >= 1 else f"keep must be 1 or more, not {a['keep']}"


def _source_fact(a: Mapping[str, Any], judged: Request, schema: Schema | str) -> Fact:
    if a["source"] == "default":
        return probe_fact(replace(judged, files=(str(a["default"]),)))
    if a["source"] == "last_good":
        return probe_fact(replace(judged, directory=str(a["backup_dir"]), pattern=str(a["pattern"])))
    try:  # the template's own path values: the plan judges the text, with its reason
        data = load_yaml(str(a["template"] or ""))
    except (yaml.YAMLError, ValueError):
        data = None
    keys = schema.path_keys if isinstance(schema, Schema) and isinstance(data, dict) else ()
    values = tuple((k, str(data[k])) for k in keys if isinstance(data.get(k), str))
    return probe_fact(Request(values=values))


# --- checked ----------------------------------------------------------------------------


def _checked(a: Mapping[str, Any], files: ConfigFiles, schema: Schema) -> Change:
    path = str(a["path"])
    config = files.file(path)
    if files.error or config is None:
        return Change(changed=False, failed=files.error or f"the probe did not describe {path}")
    verdict = judge(config, schema, checker=bool(a["check"]))
    summary = verdict_summary(path, verdict)
    if verdict.error:
        return Change(changed=False, failed=summary)
    data = {"ok": verdict.ok, "exists": config.state != "absent", "summary": summary,
            "problems": list(verdict.problems), "line": verdict.line, "column": verdict.column,
            "sha256": config.sha256}
    return Change(changed=False, data=data, summary=summary)


# --- restored ---------------------------------------------------------------------------


def _restored(a: Mapping[str, Any], dest: PathInfo, sources: ConfigFiles, schema: Schema) -> Change:
    if sources.error:
        return Change(changed=False, failed=sources.error)
    chosen, what, skipped = _choose(a, sources, schema)
    if chosen is None:
        return Change(changed=False, failed=what, data={"skipped": skipped})
    wanted = Wanted() if dest.exists else Wanted(a["mode"], a["owner"], a["group"])
    write = Write(chosen.encode("utf-8", "surrogateescape"), wanted, validate=a["check"] or None)
    change = write_plan(dest, write)
    data = {**change.data, "source": what, "skipped": skipped}
    if change.failed or not change.changed:
        return Change(changed=False, failed=change.failed, data=data, summary=change.summary)
    steps = change.steps
    kept = ""
    if dest.exists and dest.kind == "file":
        evidence = str(a["evidence"])
        keep = (f"if [ -e {quote(evidence)} ]; then echo {quote(f'{evidence} exists already')} >&2; "
                f"exit 1; fi\n{copy_command(dest.path, evidence, attributes=True)}")
        steps = (Command(keep), *steps)
        kept = f"; the replaced file is kept as {evidence}"
    note = f" ({len(skipped)} newer skipped: {'; '.join(skipped)})" if skipped else ""
    return Change(changed=True, steps=steps, diffs=change.diffs, data=data,
                  summary=f"{'replace' if dest.exists else 'create'} {dest.path} with {what}{note}{kept}")


def _choose(a: Mapping[str, Any], sources: ConfigFiles,
            schema: Schema) -> tuple[str | None, str, list[str]]:
    """The content to write, what it is, and why newer candidates were skipped."""
    if a["source"] == "template":
        text = str(a["template"])
        verdict = judge_text(text, schema, sources.values)
        if not verdict.ok:
            return None, verdict_summary("the rendered template", verdict), []
        return text, "the rendered template", []
    skipped: list[str] = []
    for candidate in sources.files:
        verdict = judge(candidate, schema, checker=bool(a["check"]))
        if verdict.ok:
            assert candidate.text is not None
            return candidate.text, _what(a, candidate), skipped
        if verdict.error and candidate.check_rc in CANNOT_RUN:
            return None, verdict_summary(candidate.path, verdict), skipped
        skipped.append(verdict_summary(candidate.path, verdict))
    return None, _none_valid(a, sources, skipped), skipped


def _what(a: Mapping[str, Any], candidate: ConfigText) -> str:
    if a["source"] == "default":
        return f"the packaged default {candidate.path}"
    return f"the last known good copy {candidate.path}"


def _none_valid(a: Mapping[str, Any], sources: ConfigFiles, skipped: list[str]) -> str:
    reasons = f": {'; '.join(skipped)}" if skipped else ""
    if a["source"] == "default":
        return f"the packaged default {a['default']} does not pass the checks{reasons}"
    where = f"{a['backup_dir']}/{a['pattern']}"
    if sources.directory != "directory":
        return f"no last known good copy: {a['backup_dir']} is not a directory"
    more = len(sources.entries) - len(sources.files)
    older = f" ({more} older not read: at most {NEWEST_LIMIT} are)" if more > 0 else ""
    if not sources.files:
        return f"no last known good copy: nothing matches {where}"
    return f"no last known good copy in {where} passes the checks{older}{reasons}"


# --- saved ------------------------------------------------------------------------------


def _saved(a: Mapping[str, Any], config: ConfigFiles, copies: ConfigFiles) -> Change:
    path, directory = str(a["path"]), str(a["backup_dir"]).rstrip("/") or "/"
    current = config.file(path)
    if config.error or copies.error or current is None or current.state != "file":
        state = current.state if current is not None else "nothing"
        failed = config.error or copies.error or f"{path} is {state}: nothing to keep"
        return Change(changed=False, failed=failed)
    if copies.directory not in ("directory", "absent"):
        return Change(changed=False, failed=f"{directory} is not a directory")
    target = f"{directory}/{a['name']}"
    newest = copies.files[0] if copies.files else None
    fresh = newest is None or newest.sha256 != current.sha256
    names = [p for _, p in copies.entries]
    after = ([target] if fresh else []) + [p for p in names if p != target]
    pruned = after[int(a["keep"]):]
    steps: list[Command] = []
    if copies.directory == "absent":
        steps.append(Command(f"(umask 077 && mkdir -p -- {quote(directory)})"))
    if fresh:
        steps.append(Command(copy_command(path, target, attributes=False)))
    if pruned:
        steps.append(Command("rm -f -- " + " ".join(quote(p) for p in pruned)))
    if not steps:
        return Change(changed=False, summary=f"{newest.path if newest else directory} already holds {path}")
    kept = [p for p in after if p not in pruned]
    diff = Diff(directory, "".join(f"{p}\n" for p in names), "".join(f"{p}\n" for p in kept))
    saved = f"keep {path} as {target}" if fresh else f"{names[0]} already holds {path}"
    removed = f"; remove the {len(pruned)} oldest (keep {a['keep']})" if pruned else ""
    return Change(changed=True, steps=tuple(steps), diffs=(diff,), summary=saved + removed)


# --- reverted ---------------------------------------------------------------------------


def _reverted(a: Mapping[str, Any], dest: PathInfo, evidence: PathInfo) -> Change:
    for info in (dest, evidence):
        if info.error:
            return Change(changed=False, failed=f"cannot inspect {info.path}: {info.error}")
    if dest.kind in ("link", "directory", "other"):
        return Change(changed=False, failed=f"{dest.path} is {describe(dest)}: not putting a file there")
    if evidence.kind == "file":
        if dest.kind == "file" and dest.checksum == evidence.checksum:
            return Change(changed=False, summary=f"{dest.path} already equals {evidence.path}")
        copy = copy_command(evidence.path, dest.path, attributes=True)
        return Change(changed=True, steps=(Command(copy),),
                      diffs=(Diff(dest.path, _text(dest), _text(evidence)),),
                      summary=f"put {dest.path} back from {evidence.path} (which stays as evidence)")
    if not flag(a["existed"]):
        if not dest.exists:
            return Change(changed=False, summary=f"{dest.path} is absent, as it was")
        return Change(changed=True, steps=(Command(f"rm -f -- {quote(dest.path)}"),),
                      diffs=(Diff(dest.path, _text(dest), ""),),
                      summary=f"remove {dest.path} (it did not exist before)")
    what = describe(evidence) if evidence.exists else "missing"
    return Change(changed=False, failed=f"cannot put {dest.path} back: its copy {evidence.path} is {what}")


def _text(info: PathInfo) -> str:
    if not info.exists:
        return ""
    if info.content is not None:
        return info.content
    return f"(not shown: {info.size} bytes, sha256 {info.checksum})\n"
