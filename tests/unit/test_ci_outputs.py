"""What a CI job keeps: --report, --junit, GitHub's step summary and outputs."""

from __future__ import annotations

import json

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from deployer import cli
from deployer.ci_outputs import check_path, junit_xml, step_outputs, step_summary, write_all
from deployer.errors import InvalidInput
from tests.report_schema import checked

REJECTED = {
    "schemaVersion": 1, "kind": "result", "app": "shop/web", "strategy": "canary",
    "fromImage": "web:1", "toImage": "web:2", "fromVersion": "1.0.0",
    "expectedVersion": "2.0.0", "verdict": "rejected", "exitCode": 1,
    "message": "analysis failed: metric 'errors' Failed; rolled back, 1.0.0 is serving",
    "verifiedVersion": "1.0.0", "downtimeSeconds": None, "seconds": 42.5,
    "steps": [
        {"step": "apply web-canary", "kind": "apply-deployment", "result": "done",
         "seconds": 0.1, "startedAt": None, "finishedAt": None, "note": None},
        {"step": "verify traffic", "kind": "verify-traffic", "result": "failed",
         "seconds": 30.0, "startedAt": None, "finishedAt": None,
         "note": "analysis failed: metric 'errors' Failed"}],
    "checks": [{"check": "new-pods", "phase": "Successful", "message": "2 pods answer 2.0.0",
                "details": {}},
               {"check": "traffic-share", "phase": "Inconclusive", "message": "not measured",
                "details": {}}],
    "failedPods": [{"pod": "web-canary-1", "container": "web", "reason": "OOMKilled",
                    "message": "out of memory", "image": "web:2", "exitCode": 137,
                    "events": [], "logs": []}],
    "analyses": [{"step": "verify traffic", "startedAt": "2026-12-07T03:00:00Z",
                  "result": "Failed", "message": "metric 'errors' Failed",
                  "metrics": [{"name": "errors", "provider": "prometheus", "result": "Failed",
                               "message": "2 failed measurements > failureLimit 1",
                               "measurements": [
                                   {"at": "2026-12-07T03:00:10Z", "result": "Failed",
                                    "value": [0.2], "asked": "prometheus q",
                                    "message": "[0.2]: failureCondition holds"}]}]}],
    "notes": [], "warnings": [], "next": None, "otherCommands": [],
}


def cases(xml: str) -> dict[str, list]:
    suite = next(iter(JUnitXml.fromstring(xml)))
    return {f"{c.classname}/{c.name}": list(c.result) for c in suite}


def test_junit_has_the_release_each_step_check_and_metric_with_failures_said():
    found = cases(junit_xml(checked(REJECTED)))
    (release,) = found["deployer/release"]
    assert isinstance(release, Failure) and "rejected (exit 1)" in release.message
    assert "web-canary-1: OOMKilled: out of memory" in release.text  # the failed pods' reasons
    assert found["deployer.steps/apply web-canary"] == []
    (step,) = found["deployer.steps/verify traffic"]
    assert isinstance(step, Failure) and "metric 'errors'" in step.message
    assert found["deployer.checks/new-pods"] == []
    assert isinstance(found["deployer.checks/traffic-share"][0], Skipped)
    assert isinstance(found["deployer.analysis/errors"][0], Failure)


def test_junit_of_a_paused_run_skips_and_of_an_error_errs():
    paused = {**REJECTED, "verdict": "paused", "exitCode": 5, "failedPods": []}
    assert isinstance(cases(junit_xml(paused))["deployer/release"][0], Skipped)
    error = {"schemaVersion": 1, "kind": "error", "verdict": "error", "exitCode": 2,
             "error": "invalid-image", "message": "bad image", "hint": None}
    assert isinstance(cases(junit_xml(error))["deployer/release"][0], Error)
    ok = {**REJECTED, "verdict": "promoted", "exitCode": 0, "failedPods": []}
    assert cases(junit_xml(ok))["deployer/release"] == []


def test_github_outputs_and_summary():
    assert step_outputs(REJECTED) == "verdict=rejected\nexit-code=1\nversion=1.0.0\n"
    summary = step_summary(REJECTED)
    assert summary.startswith("### ❌ deployer canary shop/web: rejected (exit 1)")
    assert "| verify traffic | failed | 30.0 |" in summary
    assert "failed pod `web-canary-1`: OOMKilled" in summary


def test_files_are_written_and_github_files_appended(tmp_path):
    out, summary = tmp_path / "github_output", tmp_path / "summary.md"
    out.write_text("earlier=1\n")
    write_all(REJECTED, report_file=str(tmp_path / "r.json"), junit_file=str(tmp_path / "j.xml"),
              env={"GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary)})
    assert json.loads((tmp_path / "r.json").read_text()) == REJECTED
    assert "deployer/release" in cases((tmp_path / "j.xml").read_text())
    assert out.read_text() == "earlier=1\nverdict=rejected\nexit-code=1\nversion=1.0.0\n"
    assert "rejected" in summary.read_text()


def test_a_file_that_cannot_be_written_is_a_warning(tmp_path, capsys):
    (tmp_path / "ro").mkdir()
    write_all(REJECTED, report_file=str(tmp_path / "ro"))  # a folder: cannot be opened
    assert "warning: could not write" in capsys.readouterr().err


def test_paths_are_checked_before_anything_runs(tmp_path):
    assert check_path(str(tmp_path / "r.json"), "--report") == str(tmp_path / "r.json")
    with pytest.raises(InvalidInput, match="does not exist"):
        check_path(str(tmp_path / "nope" / "r.json"), "--report")
    with pytest.raises(InvalidInput, match="is a folder"):
        check_path(str(tmp_path), "--junit")


def test_the_cli_writes_them_in_text_mode_and_for_an_error(cli_cluster, tmp_path, capsys,
                                                          monkeypatch):
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))
    report, junit = tmp_path / "r.json", tmp_path / "j.xml"
    code = cli.run(["--report", str(report), "--junit", str(junit), "canary", "--app",
                    "hello", "--image", "v2", "--dry-run"])
    assert code == 0 and not capsys.readouterr().out.lstrip().startswith("{")
    assert checked(json.loads(report.read_text()))["verdict"] == "planned"
    assert "deployer/release" in cases(junit.read_text())
    code = cli.run(["rolling", "--app", "nope", "--image", "v2", "--report", str(report)])
    assert code == 2
    error = checked(json.loads(report.read_text()))
    assert (error["kind"], error["error"]) == ("error", "unknown-app")
    assert (tmp_path / "out").read_text().splitlines()[-3:] == [
        "verdict=error", "exit-code=2", "version="]
