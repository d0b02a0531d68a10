"""The ``fetch`` module: copy a file from the host to the controller.

Services layer. The path probe checks that ``src`` is a readable regular file
and takes its sha256; the plan is one ``Fetch`` step, which the executor
performs over the connection. The host is never changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.modules.base import Arg, Change, Fact, Fetch, Module, flag
from runner.modules.pathfact import PathInfo, Probe, describe, path_fact


class FetchModule(Module):
    """Copy a file from the host to the controller (logs, configs, diagnostics).

    Without ``flat`` the file lands in ``dest/<inventory hostname>/<src>``, so
    the same task on many hosts keeps one copy per host; with ``flat`` it lands
    at ``dest`` itself (a ``dest`` ending in ``/`` gets the file's name).
    """

    name = "fetch"
    summary = "Copy a file from the host to the controller"
    args = {
        "src": Arg("path", required=True, doc="The file on the host (not a directory)."),
        "dest": Arg("path", required=True, doc="Where it goes on the controller."),
        "flat": Arg("bool", default=False, doc="Store at dest itself instead of dest/<host>/<src>."),
        "fail_on_missing": Arg(
            "bool", default=True, doc="Fail when src does not exist; otherwise report it and go on."
        ),
    }

    def facts(self, args: Mapping[str, Any]) -> Mapping[str, Fact]:
        return {"path": path_fact(str(args["src"]), Probe(checksum="sha256", follow=True))}

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        a = self.resolved(args)
        info: PathInfo = facts["path"]
        src, dest = str(a["src"]), str(a["dest"])
        if info.error:
            return Change(changed=False, failed=f"cannot inspect {src}: {info.error}")
        if not info.exists:
            message = f"the remote file {src} does not exist"
            if flag(a["fail_on_missing"]):
                return Change(changed=False, failed=message)
            return Change(changed=False, data={"file": src, "msg": message}, summary=message)
        if info.kind != "file":
            return Change(changed=False, failed=f"{src} is {describe(info)}; fetch copies regular files only")
        if not info.readable:
            return Change(changed=False, failed=f"{src} is not readable by the remote user")
        flat = flag(a["flat"])
        if flat and dest.endswith("/"):
            dest += src.rstrip("/").rsplit("/", 1)[-1]
        data = {"file": src, "dest": dest, "remote_checksum": info.checksum, "size": info.size}
        shown = dest if flat else f"{dest.rstrip('/')}/<host>/{src.lstrip('/')}"
        return Change(
            changed=False, steps=(Fetch(src, dest, flat=flat),), data=data, summary=f"fetch {src} to {shown}"
        )
