"""The CI examples of ``examples/ci/`` run as written against the lab: plan, approve, apply.

The checkout the pipelines see holds the lab's inventory without its SSH
key and known_hosts variables: those come from the CI secrets (File
variables in GitLab), set to the lab's key and known_hosts, so that a
pipeline works only through the variables its README documents. The GitHub
workflow and the GitLab pipeline run in the emulations of ``ciexamples``;
the GitLab pipeline also runs in the real runner gitlab-ci-local, shell
executor with isolated jobs, the manual apply job started by name.
"""

from __future__ import annotations

import http.server
import json
import re
import secrets
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.ciexamples import GitLab, job_env, remedy_wrapper, run_github, run_gitlab
from tests.e2e.conftest import REPO, LabHandle
from tests.support.prerequisites import require

EXAMPLES = REPO / "examples" / "ci"
WORKFLOW = EXAMPLES / "github-workflow.yml"
PIPELINE = EXAMPLES / "gitlab-ci.yml"
SLICED_WORKFLOW = EXAMPLES / "github-workflow-sliced.yml"
SLICED_PIPELINE = EXAMPLES / "gitlab-ci-sliced.yml"
FAULT = ("host02", "permission_config")  # the fault the pipelines find and fix
PLAYBOOKS = "permission_error"  # the playbook variable: one playbook keeps the runs short


@pytest.fixture
def checkout(lab: LabHandle, tmp_path: Path) -> Path:
    """A repository with the lab's inventory as ``inventory/hosts.ini``, minus key and known_hosts."""
    text = (lab.dir / "inventory.ini").read_text()
    stripped = re.sub(r" (ansible_ssh_private_key_file|remedy_known_hosts)=\S+", "", text)
    assert stripped != text and "client_ed25519" not in stripped
    repo = tmp_path / "repo"
    (repo / "inventory").mkdir(parents=True)
    (repo / "inventory" / "hosts.ini").write_text(stripped)
    return repo


@pytest.fixture
def plan_key() -> str:
    return secrets.token_hex(32)


def ssh_files(lab: LabHandle) -> dict[str, Path]:
    return {"REMEDY_SSH_KEY": lab.dir / "ssh" / "client_ed25519",
            "REMEDY_KNOWN_HOSTS": lab.dir / "ssh" / "known_hosts"}


def explain(jobs: dict[str, Any]) -> str:
    return "\n".join(f"--- {name}: {job.status}\n{job.log[-4000:]}" for name, job in jobs.items())


def check_applied(lab: LabHandle, plan: Path, result: Path, junit: Path, plan_key: str) -> None:
    """The plan was signed and found the fault; the apply fixed exactly it."""
    saved = json.loads(plan.read_text())
    assert saved["seal"]["hmac_sha256"] and plan_key not in plan.read_text()
    assert saved["inputs"]["playbooks"][0].endswith("permission_error.yml")
    document = json.loads(result.read_text())
    assert {h["host"]: h["status"] for h in document["hosts"]} == {
        "host01": "healthy", "host02": "changed", "host03": "healthy"}
    assert "<testsuite name=\"host02\"" in junit.read_text()
    assert lab.health(FAULT[0])[0] == 200


def test_the_github_workflow_plans_and_applies_the_approved_plan_on_the_lab(
        lab: LabHandle, broken: Callable[[str, str], None], checkout: Path, tmp_path: Path,
        plan_key: str) -> None:
    broken(*FAULT)
    secret = {name: path.read_text() for name, path in ssh_files(lab).items()}
    run = {"secrets": {**secret, "REMEDY_PLAN_KEY": plan_key}, "variables": {"REMEDY_PLAYBOOKS": PLAYBOOKS}}
    jobs = run_github(WORKFLOW, checkout, work=tmp_path / "run1", **run)
    statuses = [(n, j.status) for n, j in jobs.items()]
    assert statuses == [("plan", "success"), ("apply", "success")], explain(jobs)
    assert jobs["plan"].outputs == {"changes": "true"}
    assert jobs["plan"].summary.startswith("### remedy plan: changes pending on 1 of 3 hosts\n")
    assert "| host02 | changed | 2 will change | permission\\_error: found |" in jobs["plan"].summary
    assert jobs["apply"].summary.startswith("### remedy run: exit 0 (ok), 1 of 3 hosts changed\n")
    artifacts = tmp_path / "run1" / "artifacts"
    assert sorted(p.name for p in (artifacts / "remedy-plan").iterdir()) == [
        "plan-junit.xml", "plan.json", "plan.md", "remedy-audit.jsonl"]
    apply = artifacts / "remedy-apply"
    check_applied(lab, artifacts / "remedy-plan" / "plan.json", apply / "result.json",
                  apply / "apply-junit.xml", plan_key)
    assert '"event": "plan_apply"' in (apply / "remedy-audit.jsonl").read_text()
    again = run_github(WORKFLOW, checkout, work=tmp_path / "run2", **run)  # healthy now: nothing to approve
    assert [(n, j.status) for n, j in again.items()] == [("plan", "success"), ("apply", "skipped")]
    assert again["plan"].outputs == {"changes": "false"}
    assert again["plan"].summary.startswith("### remedy plan: no changes on 3 hosts\n")


def awaiting_approval(lab: LabHandle, broken: Callable[[str, str], None], checkout: Path, work: Path,
                      plan_key: str) -> GitLab:
    """The GitLab pipeline run on a push to main with host02's fault, up to its manual apply job."""
    broken(*FAULT)
    variables: dict[str, str | None] = {"REMEDY_PLAN_KEY": plan_key, "REMEDY_PLAYBOOKS": PLAYBOOKS}
    pipeline = run_gitlab(PIPELINE, checkout, variables=variables, files=ssh_files(lab), work=work)
    assert [(n, j.status) for n, j in pipeline.jobs.items()] == [
        ("remedy-plan", "success"), ("remedy-apply", "manual")], explain(pipeline.jobs)
    return pipeline


def test_the_gitlab_pipeline_plans_and_applies_when_a_person_starts_the_apply_job(
        lab: LabHandle, broken: Callable[[str, str], None], checkout: Path, tmp_path: Path,
        plan_key: str) -> None:
    pipeline = awaiting_approval(lab, broken, checkout, tmp_path, plan_key)
    jobs = pipeline.jobs
    assert "Changes pending; review plan.md, then start remedy-apply." in jobs["remedy-plan"].log
    assert lab.health(FAULT[0])[0] != 200  # nothing is applied before a person starts the job
    pipeline.start("remedy-apply")
    assert [j.status for j in jobs.values()] == ["success", "success"], explain(jobs)
    assert "the plan was made in " in jobs["remedy-apply"].log  # another job's checkout
    apply = jobs["remedy-apply"].artifacts
    assert apply is not None and jobs["remedy-plan"].artifacts is not None
    check_applied(lab, jobs["remedy-plan"].artifacts / "plan.json", apply / "result.json",
                  apply / "apply-junit.xml", plan_key)


def test_an_apply_started_after_the_fault_was_fixed_by_hand_is_refused_naming_the_host(
        lab: LabHandle, broken: Callable[[str, str], None], checkout: Path, tmp_path: Path,
        plan_key: str) -> None:
    pipeline = awaiting_approval(lab, broken, checkout, tmp_path, plan_key)
    lab.cli("reset", FAULT[0])  # someone fixed host02 by hand while the plan waited for approval
    jobs = pipeline.start("remedy-apply")
    assert jobs["remedy-apply"].status == "failed", explain(jobs)
    assert ("stale: 1 of 3 hosts are no longer as planned\n"
            "  host02 no longer has the fault: 2 planned changes are moot; make a new plan\n[exit 4]\n"
            ) in jobs["remedy-apply"].log, explain(jobs)
    artifacts = jobs["remedy-apply"].artifacts
    assert artifacts is not None and not (artifacts / "result.json").exists()  # no host was changed
    assert "plan_apply" not in (artifacts / "remedy-audit.jsonl").read_text()


class _Notes(http.server.BaseHTTPRequestHandler):
    """A merge-request notes endpoint that records what is posted."""

    posted: list[tuple[str, str, dict[str, Any]]] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.posted.append((self.path, str(self.headers.get("PRIVATE-TOKEN")), body))
        self.send_response(201)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def notes() -> Iterator[tuple[str, list[tuple[str, str, dict[str, Any]]]]]:
    """The API URL of a notes endpoint on 127.0.0.1, and the notes it received."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Notes)
    _Notes.posted = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v4", _Notes.posted
    finally:
        server.shutdown()
        server.server_close()


def test_a_merge_request_pipeline_posts_the_plan_as_a_note_and_offers_no_apply(
        lab: LabHandle, checkout: Path, tmp_path: Path, plan_key: str, notes: Any) -> None:
    url, posted = notes
    variables: dict[str, str | None] = {
        "REMEDY_PLAN_KEY": plan_key, "REMEDY_PLAYBOOKS": PLAYBOOKS, "REMEDY_NOTE_TOKEN": "note-token",
        "CI_PIPELINE_SOURCE": "merge_request_event", "CI_COMMIT_BRANCH": None, "CI_MERGE_REQUEST_IID": "7",
        "CI_PROJECT_ID": "42", "CI_API_V4_URL": url}
    jobs = run_gitlab(PIPELINE, checkout, variables=variables, files=ssh_files(lab), work=tmp_path).jobs
    assert [(n, j.status) for n, j in jobs.items()] == [("remedy-plan", "success"),
                                                        ("remedy-apply", "skipped")], explain(jobs)
    plan_md = (jobs["remedy-plan"].workdir or tmp_path) / "plan.md"
    assert [(path, body) for path, _, body in posted] == [
        ("/api/v4/projects/42/merge_requests/7/notes", {"body": plan_md.read_text()})]
    assert posted[0][1] == "note-token"
    assert plan_md.read_text().startswith("### remedy plan: no changes on 3 hosts\n")


@pytest.mark.parametrize("example", ["github", "gitlab"])
def test_an_example_that_drifts_from_the_command_line_fails(
        lab: LabHandle, checkout: Path, tmp_path: Path, example: str) -> None:
    source = WORKFLOW if example == "github" else PIPELINE
    drifted = tmp_path / source.name
    drifted.write_text(source.read_text().replace("--detailed-exitcode", "--detailed-exit-codes"))
    if example == "github":
        secret = {name: path.read_text() for name, path in ssh_files(lab).items()}
        jobs = run_github(drifted, checkout, secrets=secret, variables={}, work=tmp_path / "run")
        assert jobs["plan"].status == "failed" and jobs["apply"].status == "skipped"
    else:
        jobs = run_gitlab(drifted, checkout, variables={}, files=ssh_files(lab), work=tmp_path / "run").jobs
        assert jobs["remedy-plan"].status == "failed" and jobs["remedy-apply"].status == "skipped"
    plan = next(iter(jobs.values()))
    assert "unrecognized arguments: --detailed-exit-codes" in plan.log and "[exit 4]" in plan.log


def gitlab_ci_local(lab: LabHandle, pipeline: Path, checkout: Path, tmp_path: Path,
                    variables: dict[str, str], *options: str) -> str:
    """Run ``pipeline`` in gitlab-ci-local (shell executor, isolated jobs) with the lab's SSH files as
    File variables; returns its log, once it passed."""
    runner = shutil.which("gitlab-ci-local")
    require(runner is not None, "gitlab-ci-local not found (npm install -g gitlab-ci-local@4.60.0)")
    require(shutil.which("rsync") is not None, "rsync not found (gitlab-ci-local's shell isolation needs it)")
    shutil.copy2(pipeline, checkout / ".gitlab-ci.yml")
    (checkout / ".gitignore").write_text(".gitlab-ci-local/\n.gitlab-ci-local-variables.yml\n")
    files = {k: str(v) for k, v in ssh_files(lab).items()}  # a file path: a File variable
    (checkout / ".gitlab-ci-local-variables.yml").write_text(json.dumps({**files, **variables}))
    git = ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.invalid"]
    for argv in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "inventory"]):
        subprocess.run([*git, *argv], cwd=checkout, check=True, capture_output=True)
    env = job_env({"HOME": str(tmp_path / "home")}, remedy_wrapper(tmp_path / "bin"))
    done = subprocess.run([str(runner), "--shell-isolation", "--force-shell-executor", *options,
                           "--no-color", "--no-artifacts-to-source"],
                          cwd=checkout, env=env, capture_output=True, text=True, timeout=900, check=False)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-6000:]
    return log


def test_the_gitlab_pipeline_runs_in_gitlab_ci_local_plan_then_the_manual_apply(
        lab: LabHandle, broken: Callable[[str, str], None], checkout: Path, tmp_path: Path,
        plan_key: str) -> None:
    broken(*FAULT)
    log = gitlab_ci_local(lab, PIPELINE, checkout, tmp_path, {"REMEDY_PLAN_KEY": plan_key,
                                                               "REMEDY_PLAYBOOKS": PLAYBOOKS},
                          "--manual", "remedy-apply")
    assert re.search(r"PASS\s+remedy-plan", log) and re.search(r"PASS\s+remedy-apply", log), log[-6000:]
    assert "Changes pending; review plan.md, then start remedy-apply." in log
    assert "the plan was made in " in log  # the apply job's own checkout
    artifacts = checkout / ".gitlab-ci-local" / "artifacts"
    check_applied(lab, artifacts / "remedy-plan" / "plan.json", artifacts / "remedy-apply" / "result.json",
                  artifacts / "remedy-apply" / "apply-junit.xml", plan_key)


def check_merged(lab: LabHandle, result: Path, junit: Path) -> None:
    """The three slices' results merged: every host once, the fault fixed (slice 3 holds no host)."""
    document = json.loads(result.read_text())
    assert {h["host"]: h["status"] for h in document["hosts"]} == {
        "host01": "healthy", "host02": "changed", "host03": "healthy"}
    assert len(document["hosts"]) == 3 and document["exit_code"] == 0
    assert [(s["index"], s["exit_code"]) for s in document["slice"]["merged"]] == [(1, 0), (2, 0), (3, 0)]
    suites = re.findall(r'<testsuite name="(host\d+)"', junit.read_text())
    assert sorted(suites) == ["host01", "host02", "host03"]
    assert lab.health(FAULT[0])[0] == 200


def test_the_sliced_github_workflow_runs_a_slice_per_matrix_job_and_merges_them(
        lab: LabHandle, broken: Callable[[str, str], None], checkout: Path, tmp_path: Path) -> None:
    broken(*FAULT)
    secret = {name: path.read_text() for name, path in ssh_files(lab).items()}
    jobs = run_github(SLICED_WORKFLOW, checkout, secrets=secret, variables={"REMEDY_PLAYBOOKS": PLAYBOOKS},
                      work=tmp_path)
    assert [(n, j.status) for n, j in jobs.items()] == [
        ("run (1)", "success"), ("run (2)", "success"), ("run (3)", "success"), ("run", "success"),
        ("merge", "success")], explain(jobs)
    assert "slice 3/3: exit 0" in jobs["run (3)"].log
    assert jobs["merge"].summary.startswith("### remedy run: exit 0 (ok), 1 of 3 hosts changed\n")
    merged = tmp_path / "artifacts" / "remedy-result"
    check_merged(lab, merged / "result.json", merged / "remedy-junit.xml")


def test_the_sliced_gitlab_pipeline_runs_parallel_slices_and_merges_them(
        lab: LabHandle, broken: Callable[[str, str], None], checkout: Path, tmp_path: Path) -> None:
    broken(*FAULT)
    pipeline = run_gitlab(SLICED_PIPELINE, checkout, variables={"REMEDY_PLAYBOOKS": PLAYBOOKS},
                          files=ssh_files(lab), work=tmp_path)
    jobs = pipeline.jobs
    assert [(n, j.status) for n, j in jobs.items()] == [
        ("remedy-run 1/3", "success"), ("remedy-run 2/3", "success"), ("remedy-run 3/3", "success"),
        ("remedy-merge", "success")], explain(jobs)
    artifacts = jobs["remedy-merge"].artifacts
    assert artifacts is not None
    check_merged(lab, artifacts / "result.json", artifacts / "remedy-junit.xml")


def test_the_sliced_gitlab_pipeline_runs_in_gitlab_ci_local(
        lab: LabHandle, broken: Callable[[str, str], None], checkout: Path, tmp_path: Path) -> None:
    broken(*FAULT)
    log = gitlab_ci_local(lab, SLICED_PIPELINE, checkout, tmp_path, {"REMEDY_PLAYBOOKS": PLAYBOOKS})
    assert re.search(r"PASS\s+remedy-merge", log), log[-6000:]
    artifacts = checkout / ".gitlab-ci-local" / "artifacts" / "remedy-merge"
    check_merged(lab, artifacts / "result.json", artifacts / "remedy-junit.xml")
