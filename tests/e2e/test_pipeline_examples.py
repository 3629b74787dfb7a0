"""The pipeline files users copy (examples/github-actions, examples/gitlab-ci) cannot drift
from the CLI: every deployer command line in them runs on the lab, with --dry-run, as the
pipeline would run it (CI set, its variables filled in). promote and abort need a run
paused at the gate, so the canary runs once for real up to it first."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from junitparser import JUnitXml, Skipped

from tests.e2e.deployer_cli import Background, deployer, run_printed

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / "examples" / "github-actions" / "deploy.yml"
GITLAB = ROOT / "examples" / "gitlab-ci" / ".gitlab-ci.yml"
TOLERATED = re.compile(r"\s*\|\|\s*test \$\? -eq (\d+)\s*$")


def command_lines() -> list[tuple[str, str]]:
    """(file, line) for every deployer command in the two pipelines."""
    scripts: list[tuple[str, str]] = []
    github = yaml.safe_load(GITHUB.read_text())
    for job in github["jobs"].values():
        scripts += [(GITHUB.name, step["run"]) for step in job["steps"] if "run" in step]
    gitlab = yaml.safe_load(GITLAB.read_text())
    for job in gitlab.values():
        if isinstance(job, dict) and "script" in job:
            scripts += [(GITLAB.name, line) for line in job["script"]]
    return [(f, line.strip()) for f, text in scripts for line in text.splitlines()
            if line.strip().startswith("deployer ")]


def as_run_here(line: str, namespace: str, junit: Path) -> str:
    """The line with the pipeline's variables filled in for the lab, and the exit code it
    tolerates dropped (the test checks the code itself)."""
    line = TOLERATED.sub("", line)
    values = {"${{ inputs.image }}": "v2", '"$IMAGE"': "v2", '"$APP"': "hello",
              '"$NAMESPACE"': namespace, '"$CONTEXT"': "deployer-lab",
              "$CI_PIPELINE_ID": "1", "canary.xml": str(junit)}
    for name, value in values.items():
        line = line.replace(name, value)
    assert "$" not in line, f"a variable the test does not know: {line}"
    return line


def test_every_deployer_command_of_the_pipeline_files_runs_as_written(namespace, deploy_hello,
                                                                      tmp_path):
    deploy_hello(namespace, replicas=4)
    lines = command_lines()
    verbs = {next(w for w in shlex.split(line) if w in ("canary", "promote", "abort"))
             for _, line in lines}
    assert verbs == {"canary", "promote", "abort"}, lines  # both files, every verb
    junit = tmp_path / "canary.xml"
    canaries = [(f, as_run_here(line, namespace, junit)) for f, line in lines
                if " canary " in line]

    for source, line in canaries:  # as written, without changing anything
        result = run_printed(f"{line} --dry-run")
        assert result.code == 0, (source, line, result)
        assert "dry run: nothing was changed" in result.stdout, result
    gate = run_printed(canaries[0][1], timeout=240)  # for real, up to the gate
    assert gate.code == 5, gate
    (suite,) = list(JUnitXml.fromfile(str(junit)))
    release = next(c for c in suite if c.name == "release")
    assert isinstance(release.result[0], Skipped)  # paused: neither passed nor failed
    for source, line in lines:
        if " canary " in line:
            continue
        result = run_printed(f"{as_run_here(line, namespace, junit)} --dry-run")
        assert result.code == 0, (source, line, result)
        assert "dry run: nothing was changed" in result.stdout, result

    # Another job waits for the release without polling itself: the approval's promote
    # runs, and status --wait-for promoted returns when it is done.
    assert deployer(namespace, "status", "--app", "hello", "--wait-for", "paused").code == 0
    promote = Background(namespace, "promote", "--app", "hello")
    waited = deployer(namespace, "-o", "json", "status", "--app", "hello", "--wait-for",
                      "promoted", "--timeout", "4m")
    assert promote.wait().code == 0
    assert waited.code == 0, waited
    assert "ended promoted" in waited.stderr
    assert {d["name"]: d["image"] for d in waited.report["deployments"]} == {
        "hello": "hello:v2"}
