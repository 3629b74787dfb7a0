"""Every JSON report follows schema/report.schema.json: one naming convention (camelCase),
a schemaVersion and a kind. The e2e tests hold every report they read from the lab to it
(tests/e2e/deployer_cli.py); these hold the reports made here, and the schema itself."""

from __future__ import annotations

import io
import json
import re

import pytest

from deployer import cli
from deployer.model import Measurement, Outcome, Phase, PodFailure, UpdateDeployment, Verdict
from deployer.report import REPORT_SCHEMA_VERSION, Reporter
from tests.report_schema import SCHEMA, checked, problems

CAMEL = re.compile(r"^[a-z][A-Za-z0-9]*$")


def json_report(capsys, *argv: str) -> dict:
    cli.run(["-o", "json", *argv])
    return json.loads(capsys.readouterr().out)


def test_a_dry_run_with_its_whole_plan_follows_the_schema(cli_cluster, capsys):
    report = checked(json_report(capsys, "canary", "--app", "hello", "--image", "v2",
                                 "--dry-run", "--probe", "/", "--max-error-rate", "5"))
    assert (report["schemaVersion"], report["kind"]) == (REPORT_SCHEMA_VERSION, "result")
    assert report["toImage"] == "hello:v2" and report["fromImage"] == "hello:v1"
    step = next(s for s in report["plan"]["steps"] if s["type"] == "VerifyTraffic")
    assert "newDeployment" in step and "freshClients" in step and "new_deployment" not in step


def test_status_history_and_errors_follow_the_schema(cli_cluster, capsys):
    status = checked(json_report(capsys, "status", "--app", "hello"))
    assert status["kind"] == "status"
    history = checked(json_report(capsys, "history", "--app", "hello"))
    assert history["kind"] == "history"
    error = checked(json_report(capsys, "rolling", "--app", "nope", "--image", "v2"))
    assert (error["kind"], error["exitCode"]) == ("error", 2)


def test_a_rejection_with_evidence_follows_the_schema():
    out = io.StringIO()
    reporter = Reporter(output="json", out=out, err=io.StringIO())
    reporter.fact(app="shop/web", strategy="rolling", from_image="web:1", to_image="web:2",
                  from_version="1.0.0", expected_version="2.0.0")
    record = reporter.step_started(UpdateDeployment("web", "web", "web:2", "why"))
    reporter.step_finished(record, "failed", "CrashLoopBackOff")
    reporter.measured([Measurement("pod-failures", Phase.FAILED, "web-1 crashes",
                                   {"pods": {"web-1": "CrashLoopBackOff"}})])
    reporter.failed_pods([PodFailure("web-1", "web", "CrashLoopBackOff", "back-off", "web:2",
                                     1, ("BackOff: restarting",), ("panic: nil",))])
    reporter.analysed({"step": "after the rollout: analyse web", "startedAt":
                       "2026-12-07T03:00:00Z", "result": "Failed", "message": "probe /",
                       "probe": {"path": "/", "maxErrorRate": 5.0, "result": "Failed",
                                 "message": "25%", "at": "2026-12-07T03:00:01Z",
                                 "new": {"pods": 2, "requests": 100, "errors": 25,
                                         "errorPercent": 25.0, "errorKinds": {"HTTP 500": 25}},
                                 "old": None}})
    reporter.result(Outcome(Verdict.REJECTED, 1, "web-1 crashes; rolled back"))
    report = checked(json.loads(out.getvalue()))
    assert report["failedPods"][0]["exitCode"] == 1


def test_the_schema_refuses_what_it_does_not_describe():
    good = {"schemaVersion": 1, "kind": "error", "verdict": "error", "exitCode": 2,
            "error": "invalid-image", "message": "bad", "hint": None}
    assert problems(good) == []
    assert problems({**good, "exit_code": 2})  # a snake_case name is not the schema's
    assert problems({**good, "schemaVersion": 2})
    assert problems({**good, "kind": "other"})
    with pytest.raises(AssertionError, match="exit_code"):
        checked({**good, "exit_code": 2})


def test_every_name_the_schema_defines_is_camel_case():
    def names(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "properties":
                    yield from value
                yield from names(value)
        elif isinstance(node, list):
            for value in node:
                yield from names(value)

    found = set(names(SCHEMA))
    assert found and not [n for n in found if not CAMEL.match(n)]
