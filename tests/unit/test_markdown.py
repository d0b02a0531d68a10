"""``--format markdown``: plan and run summaries for CI job summaries and merge-request notes."""

from __future__ import annotations

from runner.output.markdown import render_markdown
from runner.results import Diff, Fault, FaultState, HostResult, Run, Status, TaskResult


def result(host: str, name: str, status: Status, **fields: object) -> TaskResult:
    return TaskResult(host=host, task=f"book:{name}", name=name, status=status, **fields)  # type: ignore[arg-type]


def plan(*hosts: HostResult) -> Run:
    return Run(run_id="r1", hosts=hosts, check=True)


def test_a_plan_names_the_hosts_with_changes_and_what_each_task_would_do() -> None:
    web = HostResult("web01", (
        result("web01", "probe", Status.OK, phase="diagnose"),
        result("web01", "free the port", Status.OK, predicted="change", message="stop pid 42"),
        result("web01", "restart", Status.OK, predicted="unknown", phase="handlers"),
        result("web01", "write config", Status.OK, predicted="no_change"),
    ), Status.OK, faults=(Fault("port_conflict", FaultState.FOUND), Fault("cache_flush", FaultState.HEALTHY)))
    probe = result("web02", "probe", Status.HEALTHY, phase="diagnose")
    healthy = HostResult("web02", (probe,), Status.HEALTHY,
                         faults=(Fault("cache_flush", FaultState.HEALTHY),))
    text = render_markdown(plan(web, healthy))
    assert text.startswith("### remedy plan: changes pending on 1 of 2 hosts\n")
    assert "| web01 | ok | 1 will change, 1 effect unknown | port\\_conflict: found |" in text
    assert "| web02 | healthy | 0 will change | - |" in text
    assert "| free the port | will change | stop pid 42 |" in text
    assert "| restart | will run, effect unknown |" in text
    assert "write config" not in text and "#### web02" not in text


def test_a_plan_without_changes_says_so() -> None:
    host = HostResult("web01", (result("web01", "probe", Status.HEALTHY, phase="diagnose"),), Status.HEALTHY)
    assert render_markdown(plan(host)).startswith("### remedy plan: no changes on 1 hosts\n")


def test_a_failed_plan_leads_with_its_exit_code_and_shows_the_failure() -> None:
    host = HostResult("db01", (result("db01", "connect", Status.UNREACHABLE, message="auth failed"),),
                      Status.UNREACHABLE)
    text = render_markdown(plan(host))
    assert text.startswith("### remedy plan: exit 3 (unreachable host)\n")
    assert "| connect | unreachable | auth failed |" in text


def test_text_from_hosts_can_break_neither_the_table_nor_become_markup() -> None:
    message = "a|b <script>alert(1)</script> `x` *y* [l](http://x) \\ new\nline"
    host = HostResult("web01", (result("web01", "t|1", Status.FAILED, message=message),), Status.FAILED)
    row = next(line for line in render_markdown(Run("r", (host,))).splitlines() if line.startswith("| t\\|"))
    assert row == ("| t\\|1 | failed | a\\|b &lt;script&gt;alert(1)&lt;/script&gt; \\`x\\` \\*y\\* "
                   "\\[l\\](http://x) \\\\ new line |")


def test_a_diff_is_folded_in_a_fence_longer_than_any_backtick_run_in_it() -> None:
    diff = Diff("/etc/<a>.md", "old\n", "```\n</details>\n````\n")
    host = HostResult("web01", (result("web01", "write", Status.CHANGED, changed=True, diffs=(diff,)),),
                      Status.CHANGED)
    text = render_markdown(Run("r", (host,)))
    assert "<details><summary>diff of /etc/&lt;a&gt;.md (write)</summary>" in text
    assert "\n`````diff\n" in text and "\n+````\n`````\n" in text
    assert text.startswith("### remedy run: exit 0 (ok), 1 of 1 hosts changed\n")
