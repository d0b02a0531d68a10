"""The ``uri`` module: make an HTTP request from the host and check its status.

Services layer. The plan is one sh script that runs curl on the host (wget
when curl is missing) and prints the body followed by a ``::status`` line
(code, seconds, content type); ``outcome`` parses it into Ansible's
registered fields (status, content, json, elapsed) and fails on a status
outside ``status_code``. A request body goes through stdin, never argv.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from runner.modules.base import Arg, Change, Command, Module, Outcome, flag, quote
from runner.results import CommandResult

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
_URL = re.compile(r"^https?://[^\s]+$")
_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_MARK = "\n::status "


class UriModule(Module):
    """Send an HTTP request from the host (curl, else wget) and check the status code.

    A GET, HEAD or OPTIONS request only reads; other methods are predicted as
    "will run, effect unknown" and reported changed. Put credentials in
    ``headers`` and mark the task ``no_log``.
    """

    name = "uri"
    summary = "Send an HTTP request from the host and check its status code"
    args = {
        "url": Arg("str", required=True, doc="The http:// or https:// URL."),
        "method": Arg("str", default="GET", choices=METHODS, doc="The HTTP method."),
        "body": Arg("any", doc="The request body: text, or a mapping/list with body_format."),
        "body_format": Arg(
            "str",
            default="raw",
            choices=("raw", "json", "form-urlencoded"),
            doc="How a mapping body is encoded; json also sets Content-Type.",
        ),
        "headers": Arg("dict", default={}, doc="Request headers, name: value."),
        "status_code": Arg(
            "list", elements="int", default=[200], doc="The status codes that count as success."
        ),
        "return_content": Arg("bool", default=False, doc="Register the body as content."),
        "timeout": Arg("int", default=30, doc="Seconds the whole request may take."),
        "validate_certs": Arg("bool", default=True, doc="Verify the server's TLS certificate."),
        "follow_redirects": Arg("bool", default=True, doc="Follow 3xx redirects."),
    }

    def reads_only(self, args: Mapping[str, Any]) -> bool:
        return str(args.get("method") or "GET").upper() in SAFE_METHODS

    def plan(self, args: Mapping[str, Any], facts: Mapping[str, Any]) -> Change:
        a = self.resolved(args)
        method = str(a["method"]).upper()
        try:
            headers, body = _request(a)
            codes = _codes(a["status_code"])
            timeout = int(a["timeout"])
        except ValueError as exc:
            return Change(changed=False, failed=str(exc))
        if not _URL.match(str(a["url"])):
            return Change(changed=False, failed=f"url must be an http:// or https:// URL, not {a['url']!r}")
        script = "\n".join(
            [
                f"url={quote(a['url'])}",
                "if command -v curl >/dev/null 2>&1; then",
                "  " + _curl(a, method, headers, timeout, has_body=body is not None),
                "elif command -v wget >/dev/null 2>&1; then",
                *_wget(a, method, headers, timeout, has_body=body is not None),
                "else echo 'neither curl nor wget is installed on the host' >&2; exit 127; fi",
            ]
        )
        safe = method in SAFE_METHODS
        return Change(
            changed=not safe,
            predictable=safe,
            steps=(Command(script, stdin=body),),
            data={"url": a["url"], "method": method, "status_code": codes},
            summary=f"{method} {a['url']}",
        )

    def outcome(
        self,
        args: Mapping[str, Any],
        facts: Mapping[str, Any],
        change: Change,
        results: Sequence[CommandResult],
    ) -> Outcome:
        data: dict[str, Any] = {k: v for k, v in change.data.items() if k != "status_code"}
        changed = not self.reads_only(args)
        if not results:
            return Outcome(changed=False, data=data)
        result = results[-1]
        codes = list(change.data.get("status_code", [200]))
        data.update(parse_response(result, return_content=flag(args.get("return_content"))))
        status = data["status"]
        if status not in codes:
            reason = data.get("msg", "")
            message = f"Status code was {status} and not {codes}: {reason}"
            return Outcome(changed=changed, failed=message, data={**data, "msg": message})
        return Outcome(changed=changed, data=data)


def parse_response(result: CommandResult, *, return_content: bool) -> dict[str, Any]:
    """status (-1 when no response), elapsed, content_type, msg, and content/json."""
    text = result.stdout
    at = text.rfind(_MARK[1:])
    if at < 0 or (at > 0 and text[at - 1] != "\n"):
        return {
            "status": -1,
            "elapsed": int(result.duration),
            "msg": f"Request failed: {result.tail('stderr', 3) or f'exit {result.rc}'}",
        }
    body = text[: max(at - 1, 0)]
    fields = text[at + len(_MARK) - 1 :].strip().split(" ", 2)
    code = int(fields[0]) if fields and fields[0].isdigit() else 0
    seconds = float(fields[1]) if len(fields) > 1 and re.fullmatch(r"[\d.]+", fields[1]) else 0.0
    data: dict[str, Any] = {
        "status": code if code else -1,
        "elapsed": int(seconds) if seconds else int(result.duration),
        "content_type": fields[2].strip() if len(fields) > 2 else "",
    }
    if code and result.rc == 0:
        data["msg"] = f"OK ({len(body.encode('utf-8', 'surrogateescape'))} bytes)"
    else:
        data["msg"] = f"Request failed: {result.tail('stderr', 3) or f'exit {result.rc}'}"
    if return_content:
        data["content"] = body
    if "json" in data["content_type"] or body.lstrip()[:1] in ("{", "["):
        try:
            data["json"] = json.loads(body)
        except ValueError:
            pass
    return data


def _request(a: Mapping[str, Any]) -> tuple[list[tuple[str, str]], bytes | None]:
    """The headers and the encoded body.

    Raises:
        ValueError: a header or the body cannot be sent as given.
    """
    headers = [(str(k), str(v)) for k, v in dict(a["headers"] or {}).items()]
    for name, value in headers:
        if not _HEADER.match(name) or "\n" in value or "\r" in value:
            raise ValueError(f"invalid header {name!r}: names are tokens, values one line")
    body = a["body"]
    if body is None:
        return headers, None
    names = {name.lower() for name, _ in headers}
    if a["body_format"] == "json":
        if "content-type" not in names:
            headers.append(("Content-Type", "application/json"))
        text = body if isinstance(body, str) else json.dumps(body)
    elif a["body_format"] == "form-urlencoded":
        if "content-type" not in names:
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
        if not isinstance(body, Mapping | list | str):
            raise ValueError("a form-urlencoded body is a mapping or a list of pairs")
        text = body if isinstance(body, str) else urlencode(body, doseq=True)
    elif isinstance(body, str):
        text = body
    else:
        raise ValueError("a mapping or list body needs body_format: json or form-urlencoded")
    return headers, text.encode("utf-8")


def _codes(value: Any) -> list[int]:
    items = value if isinstance(value, list | tuple) else [value]
    try:
        return [int(str(v).strip()) for v in items]
    except ValueError:
        raise ValueError(f"status_code must be a list of numbers, not {value!r}") from None


def _curl(
    a: Mapping[str, Any], method: str, headers: list[tuple[str, str]], timeout: int, *, has_body: bool
) -> str:
    words = ["curl", "-sS", "--max-time", str(timeout)]
    if method == "HEAD":
        words.append("--head")
    elif method != "GET":
        words += ["-X", method]
    if not flag(a["validate_certs"]):
        words.append("-k")
    if flag(a["follow_redirects"]):
        words.append("-L")
    for name, value in headers:
        words += ["-H", quote(f"{name}: {value}")]
    if has_body:
        words += ["--data-binary", "@-"]
    words += ["-w", quote("\\n::status %{http_code} %{time_total} %{content_type}\\n")]
    return " ".join(words) + ' --url "$url"'


def _wget(
    a: Mapping[str, Any], method: str, headers: list[tuple[str, str]], timeout: int, *, has_body: bool
) -> list[str]:
    words = ["wget", "-S", "-O", "-", "-T", str(timeout)]
    if not flag(a["validate_certs"]):
        words.append("--no-check-certificate")
    for name, value in headers:
        words.append(quote(f"--header={name}: {value}"))
    if method == "HEAD":
        words.append("--spider")
    elif method == "POST":
        words.append('--post-file="$b"' if has_body else "--post-data=")
    elif method != "GET":
        words.append(f"--method={method}")
        if has_body:
            words.append('--body-file="$b"')
    # wget needs a seekable body file: stdin is copied to a private temp file first
    body = ['  b=$(mktemp) || exit 1; cat >"$b"'] if has_body else ["  b="]
    return [
        "  h=$(mktemp) || exit 1",
        *body,
        f'  {" ".join(words)} -- "$url" 2>"$h"; rc=$?',
        "  code=$(sed -n 's/^ *HTTP\\/[0-9.]* \\([0-9][0-9][0-9]\\).*/\\1/p' \"$h\" | tail -n 1)",
        "  ctype=$(sed -n 's/^ *[Cc]ontent-[Tt]ype: *//p' \"$h\" | tail -n 1 | tr -d '\\r')",
        '  printf \'\\n::status %s 0 %s\\n\' "${code:-000}" "$ctype"',
        '  if [ -z "$code" ]; then cat "$h" >&2; rm -f "$h" ${b:+"$b"}; exit $rc; fi',
        '  rm -f "$h" ${b:+"$b"}',
    ]
