"""promote and abort --dry-run: the real command's checks and the steps it would run (the
rest of the recorded plan, or its rollback), and nothing written."""

from __future__ import annotations

import json

from deployer import cli
from deployer.exitcodes import ExitCode
from deployer.record import Journal, RunRecord
from tests.report_schema import checked

PLAN = {"schemaVersion": 1, "strategy": "canary", "steps": [
    {"type": "ScaleDeployment", "deployment": "hello-canary", "replicas": 1,
     "missing_ok": False, "service": None},
    {"type": "Gate", "label": "canary at 33%"},
    {"type": "UpdateDeployment", "deployment": "hello", "container": "hello",
     "image": "hello:v2", "change_cause": "promotion", "strategy": None, "labels": None},
    {"type": "DeleteDeployment", "deployment": "hello-canary", "service": "hello"}],
    "rollback": [{"type": "ScaleDeployment", "deployment": "hello-canary", "replicas": 0,
                  "missing_ok": True, "service": None}]}


def paused(gw) -> None:
    run = RunRecord("canary", "hello", "hello:v1", "hello:v2", "1.0.0", "2.0.0", 1,
                    phase="paused", position=2, plan=PLAN)
    Journal(gw, "hello", run).update()
    gw.writes.clear()


def report(capsys, *argv: str) -> tuple[int, dict]:
    code = cli.run(["-o", "json", *argv])
    return code, checked(json.loads(capsys.readouterr().out))


def test_promote_dry_run_shows_the_rest_of_the_plan_and_writes_nothing(cli_cluster, capsys):
    paused(cli_cluster)
    code, data = report(capsys, "promote", "--app", "hello", "--dry-run")
    assert code == ExitCode.OK and data["verdict"] == "planned"
    assert [s["type"] for s in data["plan"]["steps"]] == ["UpdateDeployment",
                                                          "DeleteDeployment"]
    assert data["toImage"] == "hello:v2"
    assert cli_cluster.writes == [] and not cli_cluster.leases


def test_abort_dry_run_shows_the_rollback_and_writes_nothing(cli_cluster, capsys):
    paused(cli_cluster)
    code, data = report(capsys, "abort", "--app", "hello", "--dry-run")
    assert code == ExitCode.OK
    assert [s["description"] for s in data["plan"]["steps"]] == ["scale hello-canary to 0"]
    assert cli_cluster.writes == [] and not cli_cluster.leases


def test_a_dry_run_with_nothing_to_promote_is_refused_as_the_real_one(cli_cluster, capsys):
    code, data = report(capsys, "promote", "--app", "hello", "--dry-run")
    assert code == ExitCode.INVALID and data["error"] == "no-run"
