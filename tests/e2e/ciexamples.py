"""The CI examples of ``examples/ci/``, run on this machine as their CI systems run them.

``run_github`` runs a GitHub Actions workflow: its jobs in ``needs`` order,
each in a fresh copy of the checkout, the ``run:`` steps with GitHub's
``shell: bash`` (``bash --noprofile --norc -eo pipefail``) and the env of
the workflow, the job and the step; the ``actions/*`` steps it uses are
emulated (checkout and setup-python have nothing to do, upload-artifact and
download-artifact copy files), and ``${{ }}`` expressions are evaluated for
the contexts the example uses. ``run_gitlab`` runs a GitLab CI pipeline:
``workflow:rules``, its jobs in stage order with their ``rules``, each
job's ``before_script`` and ``script`` as one bash script with ``set -eo
pipefail``, File variables as files, artifacts passed to later jobs, manual
jobs only when named. A key, an action or an expression the emulation does
not know fails the test: an example cannot grow a feature the suite does not run.

``remedy`` in the jobs is the checkout under test (a wrapper first on PATH).
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.conftest import REPO

GITHUB_STEP_KEYS = {"name", "id", "uses", "with", "run", "env", "if"}
GITHUB_JOB_KEYS = {"runs-on", "needs", "if", "outputs", "environment", "steps", "env", "strategy"}
GITLAB_JOB_KEYS = {"stage", "script", "before_script", "needs", "rules", "environment", "resource_group",
                   "artifacts", "variables", "image", "when", "allow_failure", "parallel"}


@dataclass
class Job:
    """One job's outcome: ``success``, ``failed``, ``skipped`` or ``manual`` (not started)."""

    name: str
    status: str
    workdir: Path | None = None
    log: str = ""
    summary: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    artifacts: Path | None = None


def job_env(extra: Mapping[str, str], bin_dir: Path) -> dict[str, str]:
    """The machine's environment without CI and remedy settings, ``remedy`` from the checkout, ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CI", "GITHUB_", "GITLAB_", "REMEDY_", "RUNNER_"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return {**env, **extra}


def remedy_wrapper(directory: Path) -> Path:
    """A ``remedy`` program that runs the checkout under test; returns its directory."""
    directory.mkdir(parents=True, exist_ok=True)
    wrapper = directory / "remedy"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m runner "$@"\n')
    wrapper.chmod(0o755)
    return directory


def _bash(script: str, argv: list[str], cwd: Path, env: Mapping[str, str], work: Path) -> tuple[int, str]:
    path = work / f"script-{len(list(work.glob('script-*')))}.sh"
    path.write_text(script)
    done = subprocess.run([*argv, str(path)], cwd=cwd, env=dict(env), capture_output=True, text=True,
                          timeout=900, check=False)
    return done.returncode, done.stdout + done.stderr


# --- expressions -------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(\$\w+|'[^']*'|\"[^\"]*\"|\|\||&&|==|!=|[A-Za-z_][\w.-]*\(\)|[A-Za-z_][\w.-]*)")


def evaluate(text: str, lookup: Callable[[str], Any]) -> Any:
    """``a || b``, ``a && b``, ``a == b``, ``a != b`` over strings, ``name()`` and names (``lookup``).

    Raises:
        AssertionError: anything else.
    """
    tokens = []
    position = 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        assert match, f"expression the emulation does not know: {text!r} at {text[position:]!r}"
        tokens.append(match[1])
        position = match.end()
    state: list[Any] = [tokens, 0]
    value = _operation(state, lookup, ("||", "&&"))
    assert state[1] == len(tokens), f"cannot read {text!r}"
    return value


def _operation(state: list[Any], lookup: Callable[[str], Any], operators: tuple[str, ...]) -> Any:
    """``||`` (the first true value), then ``&&`` (the first false one), then a comparison."""
    if not operators:
        return _compare(state, lookup)
    value = _operation(state, lookup, operators[1:])
    while state[1] < len(state[0]) and state[0][state[1]] == operators[0]:
        state[1] += 1
        right = _operation(state, lookup, operators[1:])
        value = (value or right) if operators[0] == "||" else (value and right)
    return value


def _compare(state: list[Any], lookup: Callable[[str], Any]) -> Any:
    tokens, index = state
    value = _atom(tokens[index], lookup)
    state[1] += 1
    if state[1] < len(tokens) and tokens[state[1]] in ("==", "!="):
        operator, right = tokens[state[1]], _atom(tokens[state[1] + 1], lookup)
        state[1] += 2
        return (value == right) == (operator == "==")
    return value


def _atom(token: str, lookup: Callable[[str], Any]) -> Any:
    if token[0] in "'\"":
        return token[1:-1]
    assert token not in ("||", "&&", "==", "!="), f"operator {token!r} where a value belongs"
    return lookup(token)


# --- GitHub Actions ----------------------------------------------------------------------


@dataclass
class GitHub:
    """A workflow run: its file, checkout, secrets, repository variables and scratch dir."""

    workflow: dict[str, Any]
    checkout: Path
    secrets: Mapping[str, str]
    variables: Mapping[str, str]
    work: Path
    jobs: dict[str, Job] = field(default_factory=dict)
    artifacts: dict[str, Path] = field(default_factory=dict)
    matrix: dict[str, str] = field(default_factory=dict)  # the running job's matrix and strategy context

    def lookup(self, name: str, steps: Mapping[str, Job], failed: bool) -> Any:
        functions = {"always()": True, "success()": not failed, "failure()": failed}
        if name in functions:
            return functions[name]
        if name in self.matrix:
            return self.matrix[name]
        parts = name.split(".")
        if parts[0] in ("secrets", "vars") and len(parts) == 2:
            return (self.secrets if parts[0] == "secrets" else self.variables).get(parts[1], "")
        if parts[0] in ("steps", "needs") and len(parts) == 4 and parts[2] == "outputs":
            source = steps if parts[0] == "steps" else self.jobs
            return source[parts[1]].outputs.get(parts[3], "") if parts[1] in source else ""
        raise AssertionError(f"context the emulation does not know: {name}")

    def holds(self, condition: Any, steps: Mapping[str, Job], *, failed: bool) -> bool:
        """Whether an ``if:`` holds (none: only while nothing failed, as GitHub's ``success()``)."""
        if condition is None:
            return not failed
        return bool(evaluate(str(condition), lambda name: self.lookup(name, steps, failed)))

    def expand(self, value: Any, steps: Mapping[str, Job] | None = None) -> str:
        """``value`` with each ``${{ expression }}`` replaced by its value."""
        def one(match: re.Match[str]) -> str:
            return str(evaluate(match[1], lambda name: self.lookup(name, steps or {}, False)))

        return re.sub(r"\$\{\{(.*?)\}\}", one, str(value))

    def run(self) -> dict[str, Job]:
        env = {k: self.expand(v) for k, v in (self.workflow.get("env") or {}).items()}
        pending = dict(self.workflow["jobs"])
        while pending:
            name = next(n for n, j in pending.items() if all(d in self.jobs for d in _listed(j.get("needs"))))
            job = pending.pop(name)
            known(job, GITHUB_JOB_KEYS, f"job {name}")
            failed = any(self.jobs[d].status != "success" for d in _listed(job.get("needs")))
            if not self.holds(job.get("if"), {}, failed=failed):
                self.jobs[name] = Job(name, "skipped")
                continue
            runs = []
            for context in _matrix(job.get("strategy")):
                self.matrix = context
                instance = name + "".join(f" ({v})" for k, v in context.items() if k.startswith("matrix."))
                runs.append(self.run_job(instance, job, {**env, **{k: self.expand(v) for k, v in
                                                                   (job.get("env") or {}).items()}}))
                self.jobs[instance] = runs[-1]
            self.matrix = {}
            self.jobs[name] = runs[0] if len(runs) == 1 else Job(
                name, "success" if all(r.status == "success" for r in runs) else "failed")
        return self.jobs

    def run_job(self, name: str, job: Mapping[str, Any], env: Mapping[str, str]) -> Job:
        workdir = self.work / _dirname(name) / "workspace"
        temp = self.work / _dirname(name) / "temp"
        temp.mkdir(parents=True)
        result = Job(name, "success", workdir)
        steps: dict[str, Job] = {}
        shell = self.workflow.get("defaults", {}).get("run", {}).get("shell")
        assert shell == "bash", "the workflow must say defaults: run: shell: bash"
        for index, step in enumerate(job["steps"]):
            known(step, GITHUB_STEP_KEYS, f"step {index} of {name}")
            if not self.holds(step.get("if"), steps, failed=result.status != "success"):
                continue
            outcome = self.run_step(step, index, workdir, temp, {**env, **{
                k: self.expand(v, steps) for k, v in (step.get("env") or {}).items()}})
            result.log += outcome.log
            result.summary += outcome.summary
            if "id" in step:
                steps[step["id"]] = outcome
            if outcome.status != "success":
                result.status = "failed"
        result.outputs = {k: self.expand(v, steps) for k, v in (job.get("outputs") or {}).items()}
        return result

    def run_step(self, step: Mapping[str, Any], index: int, workdir: Path, temp: Path,
                 env: Mapping[str, str]) -> Job:
        if "uses" in step:
            return self.use(step, workdir)
        files = {name: temp / f"{name}-{index}" for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY")}
        for path in files.values():
            path.touch()
        variables = {**env, **{k: str(v) for k, v in files.items()}, "RUNNER_TEMP": str(temp),
                     "GITHUB_WORKSPACE": str(workdir), "GITHUB_ACTIONS": "true", "CI": "true"}
        code, log = _bash(step["run"], ["bash", "--noprofile", "--norc", "-eo", "pipefail"], workdir,
                          job_env(variables, self.work / "bin"), temp)
        outputs = dict(line.split("=", 1) for line in files["GITHUB_OUTPUT"].read_text().splitlines() if line)
        return Job(step.get("name", step["run"][:40]), "success" if code == 0 else "failed", workdir,
                   log + f"[exit {code}]\n", files["GITHUB_STEP_SUMMARY"].read_text(), outputs)

    def use(self, step: Mapping[str, Any], workdir: Path) -> Job:
        action = step["uses"].split("@")[0]
        options = {k: self.expand(v) for k, v in (step.get("with") or {}).items()}
        if action == "actions/checkout":
            shutil.copytree(self.checkout, workdir)
        elif action == "actions/setup-python":
            pass  # this machine's Python runs the jobs
        elif action == "actions/upload-artifact":
            store = self.artifacts.setdefault(options["name"], self.work / "artifacts" / options["name"])
            for item in str(options["path"]).split():
                for found in sorted(workdir.glob(item)):
                    store.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(found, store / found.name)
        elif action == "actions/download-artifact" and "pattern" in options:  # each in PATH/<its name>
            assert set(options) <= {"pattern", "path"}, f"download-artifact options: {sorted(options)}"
            for name in sorted(n for n in self.artifacts if fnmatch.fnmatchcase(n, options["pattern"])):
                shutil.copytree(self.artifacts[name], workdir / options.get("path", ".") / name)
        elif action == "actions/download-artifact":
            shutil.copytree(self.artifacts[options["name"]], workdir, dirs_exist_ok=True)
        else:
            raise AssertionError(f"action the emulation does not know: {step['uses']}")
        return Job(action, "success", workdir)


def _matrix(strategy: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """The contexts of a job's runs: one per value of its matrix (one key), else one, empty."""
    if not strategy:
        return [{}]
    assert set(strategy) <= {"matrix", "fail-fast"} and strategy.get("fail-fast") is False, strategy
    ((key, values),) = strategy["matrix"].items()
    return [{f"matrix.{key}": str(value), "strategy.job-index": str(index),
             "strategy.job-total": str(len(values))} for index, value in enumerate(values)]


def _dirname(job: str) -> str:
    return job.replace("/", "-of-").replace(" ", "-")


def known(mapping: Mapping[str, Any], keys: set[str], what: str) -> None:
    """Every key of ``mapping`` is one the emulation runs."""
    assert set(mapping) <= keys, f"{what}: keys the emulation does not know: {sorted(set(mapping) - keys)}"


def _listed(value: Any) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def run_github(path: Path, checkout: Path, *, secrets: Mapping[str, str], variables: Mapping[str, str],
               work: Path) -> dict[str, Job]:
    """Run the workflow at ``path`` as GitHub would, every job approved; returns the jobs by name."""
    remedy_wrapper(work / "bin")
    return GitHub(yaml.safe_load(path.read_text()), checkout, secrets, variables, work).run()


# --- GitLab CI ---------------------------------------------------------------------------


@dataclass
class GitLab:
    """A pipeline run: its file, checkout, CI/CD variables (File ones as paths) and scratch dir."""

    pipeline: dict[str, Any]
    checkout: Path
    variables: dict[str, str]
    work: Path
    manual: tuple[str, ...]
    jobs: dict[str, Job] = field(default_factory=dict)

    def when(self, rules: list[Mapping[str, Any]] | None, variables: Mapping[str, str]) -> str:
        """``on_success``, ``manual`` or ``never``: the first rule whose ``if`` holds."""
        if rules is None:
            return "on_success"
        for rule in rules:
            assert set(rule) <= {"if", "when", "allow_failure"}, f"rule keys: {set(rule)}"
            if evaluate(str(rule["if"]), lambda n: self._variable(n, variables)):
                return str(rule.get("when", "on_success"))
        return "never"

    @staticmethod
    def _variable(name: str, variables: Mapping[str, str]) -> str:
        assert name.startswith("$"), f"rules read only variables, not {name!r}"
        return variables.get(name[1:], "")

    def run(self) -> dict[str, Job]:
        """Run (or go on with) the pipeline up to its end or a manual job nobody started."""
        workflow = self.pipeline.get("workflow", {})
        if self.when(workflow.get("rules"), self.variables) == "never":
            return {}
        names = [n for n, j in self.pipeline.items() if isinstance(j, dict) and "script" in j]
        stages = self.pipeline["stages"]
        for name in sorted(names, key=lambda n: stages.index(self.pipeline[n]["stage"])):
            if any(j.status != "manual" for j in self.runs_of(name)):
                continue
            job = self.pipeline[name]
            known(job, GITLAB_JOB_KEYS, f"job {name}")
            when = self.when(job.get("rules"), self.variables)
            failed = any(j.status != "success" for j in self.jobs.values() if j.name != name)
            if when == "never" or failed and job.get("when") != "always":
                self.jobs[name] = Job(name, "skipped")
            elif when == "manual" and name not in self.manual:
                self.jobs[name] = Job(name, "manual")  # the pipeline waits for a person to start it
                break
            else:
                for instance, node in _parallel(name, job.get("parallel")):
                    self.jobs[instance] = self.run_job(instance, job, node)
        return self.jobs

    def runs_of(self, name: str) -> list[Job]:
        """The job ``name``'s runs: itself, or each of its ``parallel`` copies."""
        return [j for n, j in self.jobs.items() if n == name or n.startswith(f"{name} ")]

    def start(self, name: str) -> dict[str, Job]:
        """A person starts the manual job ``name``; the pipeline goes on."""
        assert self.jobs[name].status == "manual", f"{name} is not waiting to be started"
        self.manual = (*self.manual, name)
        return self.run()

    def run_job(self, name: str, job: Mapping[str, Any], node: Mapping[str, str]) -> Job:
        workdir = self.work / _dirname(name) / "project"
        shutil.copytree(self.checkout, workdir)
        for need in job.get("needs") or [j for j in self.jobs if self.jobs[j].artifacts]:
            for run in self.runs_of(need["job"] if isinstance(need, dict) else need):
                source = run.artifacts
                if source is not None and (not isinstance(need, dict) or need.get("artifacts", True)):
                    shutil.copytree(source, workdir, dirs_exist_ok=True)
        before = job.get("before_script", self.pipeline.get("default", {}).get("before_script", []))
        script = "\n".join([*before, *job["script"]]) + "\n"
        variables = {**{k: str(v) for k, v in (self.pipeline.get("variables") or {}).items()},
                     **{k: str(v) for k, v in (job.get("variables") or {}).items()}, **self.variables,
                     "CI_PROJECT_DIR": str(workdir), "CI_JOB_NAME": name, **node}
        code, log = _bash(script, ["bash", "--noprofile", "--norc", "-eo", "pipefail"], workdir,
                          job_env(variables, self.work / "bin"), self.work / _dirname(name))
        result = Job(name, "success" if code == 0 else "failed", workdir, log + f"[exit {code}]\n")
        artifacts = job.get("artifacts") or {}
        if artifacts and (code == 0 or artifacts.get("when") == "always"):
            result.artifacts = self.work / _dirname(name) / "artifacts"
            result.artifacts.mkdir()
            for item in artifacts.get("paths", []):
                for found in sorted(workdir.glob(item)):
                    shutil.copy2(found, result.artifacts / found.name)
        return result


def _parallel(name: str, count: Any) -> list[tuple[str, dict[str, str]]]:
    """A job's runs: ``parallel: N`` makes N, named "NAME K/N", with CI_NODE_INDEX and CI_NODE_TOTAL."""
    if count is None:
        return [(name, {})]
    assert isinstance(count, int) and 1 <= count <= 200, f"parallel: {count!r} (a number from 1 to 200)"
    return [(f"{name} {k}/{count}", {"CI_NODE_INDEX": str(k), "CI_NODE_TOTAL": str(count)})
            for k in range(1, count + 1)]


def run_gitlab(path: Path, checkout: Path, *, variables: Mapping[str, str | None], files: Mapping[str, Path],
               work: Path) -> GitLab:
    """Run the pipeline at ``path`` as GitLab would for a push to the default branch ``main``.

    ``variables`` are the project's CI/CD variables (and predefined ones to
    set, e.g. for a merge-request pipeline; None unsets one); ``files`` its
    File variables, each given to the jobs as the path of a copy. The pipeline
    runs up to a manual job: ``start`` it to go on.
    """
    remedy_wrapper(work / "bin")
    given: dict[str, str | None] = {"CI": "true", "GITLAB_CI": "true", "CI_PIPELINE_SOURCE": "push",
                                    "CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main", **variables}
    for name, source in files.items():
        copy = work / "file-variables" / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, copy)
        given[name] = str(copy)
    present = {k: v for k, v in given.items() if v is not None}  # None: a variable this pipeline lacks
    pipeline = GitLab(yaml.safe_load(path.read_text()), checkout, present, work, ())
    pipeline.run()
    return pipeline
