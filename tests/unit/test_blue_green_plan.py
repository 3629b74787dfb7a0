"""The blue-green planner: which side is live comes from the Service selector."""

import pytest

from deployer.errors import InvalidInput
from deployer.model import (
    ApplyDeployment,
    AppRef,
    AppState,
    AwaitRollout,
    KeepOld,
    ScaleDeployment,
    SetServiceSelector,
    Target,
    UpdateDeployment,
    VerifyTraffic,
)
from deployer.strategy import Options
from deployer.validation import parse_image
from strategies.blue_green import BlueGreenStrategy, green_body
from tests.unit.fakes import deployment

STABLE = {"app": "hello", "track": "stable"}
GREEN = {"app": "hello", "track": "green"}
TARGET = Target(parse_image("hello:v2"), "2.0.0", None, "ana")


def state(selector, others=None, versions=None) -> AppState:
    svc = {"metadata": {"name": "hello"}, "spec": {"selector": selector}}
    return AppState(AppRef("t", "hello"), deployment(revision=1), "hello",
                    parse_image("hello:v1"), 3, 1, (), version="1.0.0", service=svc,
                    others=others or {}, versions=versions or {"hello": "1.0.0"})


def test_first_run_narrows_the_selector_then_verifies_green_before_the_switch():
    plan = BlueGreenStrategy().plan(state({"app": "hello"}), TARGET, Options({"keep_old": 60}))
    kinds = [type(s) for s in plan.steps]
    assert kinds == [SetServiceSelector, ApplyDeployment, AwaitRollout, SetServiceSelector,
                     VerifyTraffic, KeepOld, ScaleDeployment]
    assert plan.steps[0].selector == STABLE
    switch = plan.steps[3]
    assert switch.selector == GREEN and switch.require_ready == "hello-green"
    assert plan.steps[2] == AwaitRollout("hello-green", "2.0.0")
    assert plan.steps[4].share == 1.0
    assert plan.steps[-1] == ScaleDeployment("hello", 0)


def test_rollback_scales_the_old_side_up_and_waits_before_switching_back():
    plan = BlueGreenStrategy().plan(state(STABLE), TARGET, Options())
    assert plan.rollback[0] == ScaleDeployment("hello", 3)
    assert plan.rollback[1] == AwaitRollout("hello", "1.0.0")
    assert plan.rollback[2] == SetServiceSelector("hello", STABLE, require_ready="hello")


def test_when_green_is_live_the_blue_deployment_becomes_the_new_side():
    green = green_body(deployment(revision=1), "hello", "hello:v2", 3, "2.0.0")
    green["status"] = {"replicas": 3}
    plan = BlueGreenStrategy().plan(state(GREEN, others={"hello-green": green},
                                          versions={"hello-green": "2.0.0"}),
                                    Target(parse_image("hello:v3"), "3.0.0"), Options())
    assert plan.steps[0] == UpdateDeployment("hello", "hello", "hello:v3",
                                             plan.steps[0].change_cause)
    assert plan.steps[1] == ScaleDeployment("hello", 3)
    switch = next(s for s in plan.steps if isinstance(s, SetServiceSelector))
    assert switch.selector == STABLE
    assert plan.rollback[1] == AwaitRollout("hello-green", "2.0.0")


def test_preview_replicas_start_small_then_scale_up_before_the_switch():
    plan = BlueGreenStrategy().plan(state(STABLE), TARGET, Options({"preview_replicas": 1}))
    assert plan.steps[0].body["spec"]["replicas"] == 1
    assert plan.steps[2] == ScaleDeployment("hello-green", 3)
    assert isinstance(plan.steps[3], AwaitRollout)


def test_keep_old_zero_scales_down_at_once():
    plan = BlueGreenStrategy().plan(state(STABLE), TARGET, Options({"keep_old": 0}))
    assert not any(isinstance(s, KeepOld) for s in plan.steps)


def test_a_selector_that_is_neither_side_is_refused():
    with pytest.raises(InvalidInput, match="neither side"):
        BlueGreenStrategy().plan(state({"app": "other"}), TARGET, Options())


def test_green_live_without_green_deployment_is_refused():
    with pytest.raises(InvalidInput, match="does not exist"):
        BlueGreenStrategy().plan(state(GREEN), TARGET, Options())


def test_a_failed_first_run_puts_back_the_service_it_narrowed_once_green_stopped():
    plan = BlueGreenStrategy().plan(state({"app": "hello"}), TARGET, Options())
    assert plan.rollback[-2] == ScaleDeployment("hello-green", 0, missing_ok=True)
    assert plan.rollback[-1] == SetServiceSelector("hello", {"app": "hello"},
                                                   after_gone="hello-green")
    narrowed = BlueGreenStrategy().plan(state(STABLE), TARGET, Options())
    assert not any(isinstance(s, SetServiceSelector) and s.after_gone
                   for s in narrowed.rollback), "nothing to put back"


def test_a_service_on_the_app_label_only_routes_to_the_side_that_runs_pods():
    green = green_body(deployment(revision=1), "hello", "hello:v2", 3, "2.0.0")
    blue_down = deployment(replicas=0, revision=1)
    svc = {"metadata": {"name": "hello"}, "spec": {"selector": {"app": "hello"}}}
    down = AppState(AppRef("t", "hello"), blue_down, "hello", parse_image("hello:v1"), 0, 1,
                    (), service=svc, others={"hello-green": green},
                    versions={"hello-green": "2.0.0"})
    live, _, new, _ = BlueGreenStrategy().sides(down)
    assert (live["metadata"]["name"], new["metadata"]["name"]) == ("hello-green", "hello")
    both = AppState(AppRef("t", "hello"), deployment(revision=1), "hello",
                    parse_image("hello:v1"), 3, 1, (), service=svc,
                    others={"hello-green": green})
    with pytest.raises(InvalidInput, match="both hello and hello-green run pods"):
        BlueGreenStrategy().sides(both)
