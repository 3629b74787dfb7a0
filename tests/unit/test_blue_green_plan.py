"""The blue-green planner: which side is live comes from the Service selector."""

import pytest

from deployer.errors import InvalidInput
from deployer.model import (
    ApplyDeployment,
    AppRef,
    AppState,
    AwaitRollout,
    DeleteDeployment,
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


# The classic blue-green lesson's scheme: the version label in the Deployment's selector
# and in the Service's; the switch is a new value of that label.
V1 = {"app": "hello", "version": "1.0.0"}


def lesson(service=V1, blue=None, others=None, versions=None) -> AppState:
    dep = blue or deployment(revision=1)
    dep["metadata"]["labels"] = {"app": "hello", "team": "web"}
    dep["spec"]["selector"]["matchLabels"] = dict(V1)
    dep["spec"]["template"]["metadata"]["labels"] = {**V1, "track": "stable"}
    svc = {"metadata": {"name": "hello"}, "spec": {"selector": dict(service)}}
    return AppState(AppRef("t", "hello"), dep, "hello", parse_image("hello:v1"), 3, 1, (),
                    version="1.0.0", service=svc, others=others or {},
                    versions=versions or {"hello": "1.0.0"})


def test_the_lessons_scheme_switches_the_version_label_in_the_users_terms():
    plan = BlueGreenStrategy().plan(lesson(), TARGET, Options())
    apply = plan.steps[0]
    assert isinstance(apply, ApplyDeployment) and apply.name == "hello-green"
    assert apply.body["spec"]["selector"]["matchLabels"] == {"app": "hello",
                                                             "version": "2.0.0"}
    # only the version changes: the pods keep the user's track label
    assert apply.body["spec"]["template"]["metadata"]["labels"] == {
        "app": "hello", "version": "2.0.0", "track": "stable"}
    switch = next(s for s in plan.steps if isinstance(s, SetServiceSelector))
    assert switch.selector == {"app": "hello", "version": "2.0.0"}
    back = next(s for s in plan.rollback if isinstance(s, SetServiceSelector))
    assert back.selector == V1


def test_in_the_lessons_scheme_the_idle_own_deployment_is_made_again_for_the_next_version():
    blue = deployment(replicas=0, revision=1)
    first = BlueGreenStrategy().plan(lesson(), TARGET, Options()).steps[0].body
    green = {**first, "status": {"replicas": 3}}
    state = lesson({"app": "hello", "version": "2.0.0"}, blue=blue,
                   others={"hello-green": green}, versions={"hello-green": "2.0.0"})
    plan = BlueGreenStrategy().plan(state, Target(parse_image("hello:v3"), "3.0.0"),
                                    Options())
    assert plan.steps[0] == DeleteDeployment("hello")
    again = plan.steps[1]
    assert isinstance(again, ApplyDeployment) and again.name == "hello"
    assert again.body["spec"]["selector"]["matchLabels"] == {"app": "hello",
                                                             "version": "3.0.0"}
    assert again.body["spec"]["replicas"] == 3
    assert again.body["metadata"]["labels"] == {"app": "hello", "team": "web"}
    assert "deployer.dev/canary-of" not in (again.body["metadata"].get("annotations") or {})
    switch = next(s for s in plan.steps if isinstance(s, SetServiceSelector))
    assert switch.selector == {"app": "hello", "version": "3.0.0"}
    assert any("made again" in n for n in plan.notes)
    back = next(s for s in plan.rollback if isinstance(s, SetServiceSelector))
    assert back.selector == {"app": "hello", "version": "2.0.0"}


def test_a_service_on_the_app_label_is_narrowed_by_the_version_in_the_lessons_scheme():
    plan = BlueGreenStrategy().plan(lesson({"app": "hello"}), TARGET, Options())
    assert plan.steps[0] == SetServiceSelector("hello", V1, require_ready="hello")
    switch = [s for s in plan.steps if isinstance(s, SetServiceSelector)][1]
    assert switch.selector == {"app": "hello", "version": "2.0.0"}


def test_the_same_version_again_is_refused_in_the_lessons_scheme():
    with pytest.raises(InvalidInput, match="both sides of the blue-green would select"):
        BlueGreenStrategy().plan(lesson(), Target(parse_image("hello:v1b"), "1.0.0"),
                                 Options())


def test_a_service_selecting_a_version_label_outside_the_selector_is_switched_by_it():
    # The Deployment selects app,track; the pods also say their version, and the Service
    # selects on that: the switch changes the version, not the track.
    dep = deployment(revision=1)
    dep["spec"]["template"]["metadata"]["labels"]["version"] = "1.0.0"
    svc = {"metadata": {"name": "hello"}, "spec": {"selector": dict(V1)}}
    st = AppState(AppRef("t", "hello"), dep, "hello", parse_image("hello:v1"), 3, 1, (),
                  version="1.0.0", service=svc, versions={"hello": "1.0.0"})
    plan = BlueGreenStrategy().plan(st, TARGET, Options())
    body = plan.steps[0].body
    assert body["spec"]["template"]["metadata"]["labels"] == {
        "app": "hello", "track": "green", "version": "2.0.0"}
    switch = next(s for s in plan.steps if isinstance(s, SetServiceSelector))
    assert switch.selector == {"app": "hello", "version": "2.0.0"}
