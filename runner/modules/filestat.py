"""The ``stat`` module: register what a path is, Ansible-shaped, without changing it.

Services layer. One path probe; the plan only shapes the ``stat`` dictionary
that ``register`` stores (exists, mode as "0644", uid, gid, pw_name, gr_name,
size, isdir, isreg, islnk, mtime, checksum, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.modules.base import Arg, Change, Fact, Module, flag
from runner.modules.pathfact import CHECKSUMS, PathInfo, Probe, path_fact

_TYPES = {
    "isreg": 0o100000,
    "isdir": 0o040000,
    "islnk": 0o120000,
    "ischr": 0o020000,
    "isblk": 0o060000,
    "isfifo": 0o010000,
    "issock": 0o140000,
}
_BITS = {
    "isuid": 0o4000,
    "isgid": 0o2000,
    "rusr": 0o400,
    "wusr": 0o200,
    "xusr": 0o100,
    "rgrp": 0o040,
    "wgrp": 0o020,
    "xgrp": 0o010,
    "roth": 0o004,
    "woth": 0o002,
    "xoth": 0o001,
}


class StatModule(Module):
    """Register facts about a path: ``result.stat.exists``, ``.mode``, ``.checksum``, ...

    With ``follow`` a symbolic link is described by its target. ``checksum``
    is the sha256 of a regular file unless ``checksum_algorithm`` says otherwise.
    """

    name = "stat"
    summary = "Register what a path is (existence, kind, mode, owner, size, checksum)"
    read_only = True
    args = {
        "path": Arg("path", required=True, aliases=("dest", "name"), doc="The path to describe."),
        "follow": Arg("bool", default=False, doc="Describe a symbolic link's target instead."),
        "get_checksum": Arg("bool", default=True, doc="Include the checksum of a regular file."),
        "checksum_algorithm": Arg(
            "str",
            default="sha256",
            choices=CHECKSUMS,
            aliases=("checksum", "checksum_algo"),
            doc="The checksum's algorithm (<algorithm>sum on the host).",
        ),
    }

    def facts(self, args: Mapping[str, Any]) -> Mapping[str, Fact]:
        a = self.resolved(args)
        algorithm = str(a["checksum_algorithm"]) if flag(a["get_checksum"]) else ""
        return {"path": path_fact(str(a["path"]), Probe(checksum=algorithm, follow=flag(a["follow"])))}

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        info: PathInfo = facts["path"]
        if info.error:
            return Change(changed=False, failed=f"cannot inspect {info.path}: {info.error}")
        stat = stat_dict(info)
        shown = "absent" if not info.exists else f"{info.kind}, mode {stat['mode']}"
        return Change(changed=False, data={"stat": stat}, summary=f"{info.path}: {shown}")


def stat_dict(info: PathInfo) -> dict[str, Any]:
    """The Ansible-shaped ``stat`` dictionary of a probed path."""
    if not info.exists:
        return {"exists": False}
    raw = info.raw_mode or 0
    stat: dict[str, Any] = {
        "exists": True,
        "path": info.path,
        "mode": f"{raw & 0o7777:04o}",
        "uid": info.uid,
        "gid": info.gid,
        "pw_name": info.owner,
        "gr_name": info.group,
        "size": info.size,
        "mtime": info.mtime,
        "readable": info.readable,
        "writeable": info.writeable,
        "executable": info.executable,
    }
    stat.update({name: raw & 0o170000 == bits for name, bits in _TYPES.items()})
    stat.update({name: bool(raw & bit) for name, bit in _BITS.items()})
    if info.link_target is not None:
        stat["lnk_target"] = info.link_target
    if info.checksum is not None:
        stat["checksum"] = info.checksum
    return stat
