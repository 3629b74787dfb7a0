"""restart: kubectl rollout restart, verified like a release and undone on failure."""

from __future__ import annotations

import json

from deployer import cli
from deployer.engine.deployments import RESTARTED_AT
from deployer.model import (
    CHANGE_CAUSE_ANNOTATION,
    AwaitRollout,
    RestartDeployment,
    Target,
    UndoRollout,
)
from deployer.strategy import Options
from deployer.validation import parse_reference
from strategies.restart import RestartStrategy
from tests.report_schema import checked
from tests.unit.fakes import FakeGateway, deployment
from tests.unit.harness import make_engine
from tests.unit.test_strategies_analysis import state as state_of


def test_the_restart_step_sets_restarted_at_once_and_is_idempotent():
    gw = FakeGateway(deployment())
    engine = make_engine(gw)
    step = RestartDeployment("hello", "2026-12-07T04:00:00Z", "deployer restart")
    engine.execute(step)
    dep = gw.deployments["hello"]
    assert dep["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == \
        "2026-12-07T04:00:00Z"
    assert dep["metadata"]["annotations"][CHANGE_CAUSE_ANNOTATION] == "deployer restart"
    assert gw.image() == "hello:v1"  # the same image
    engine.execute(step)  # a resumed run writes it again: nothing changes
    assert len(gw.deployment_writes()) == 1


def test_the_plan_restarts_verifies_the_version_now_and_undoes_on_failure():
    state = state_of()
    target = Target(parse_reference(str(state.image)), state.version, "why", "me")
    plan = RestartStrategy().plan(state, target, Options({"restarted_at": "T"}))
    assert [type(s) for s in plan.steps] == [RestartDeployment, AwaitRollout]
    assert plan.steps[1].expected_version == state.version
    assert isinstance(plan.rollback[0], UndoRollout)
    assert plan.rollback[0].to_revision == state.revision
    assert plan.done.startswith("every pod of hello was restarted")


def test_restart_dry_run_plans_it_on_the_image_running_now(cli_cluster, capsys):
    code = cli.run(["-o", "json", "restart", "--app", "hello", "--expect-version", "1.0.0",
                    "--dry-run"])
    report = checked(json.loads(capsys.readouterr().out))
    assert code == 0 and report["strategy"] == "restart"
    assert report["fromImage"] == report["toImage"] == "hello:v1"
    assert [s["type"] for s in report["plan"]["steps"]] == ["RestartDeployment",
                                                            "AwaitRollout"]
    assert cli_cluster.writes == []
