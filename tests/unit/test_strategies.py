"""Strategies are pure planners: compare the plans they return."""

from deployer.model import (
    AppRef,
    AppState,
    AwaitRollout,
    SetRolloutStrategy,
    Target,
    UndoRollout,
    UpdateDeployment,
)
from deployer.strategy import Options, load
from deployer.validation import parse_image
from strategies.recreate import RecreateStrategy
from strategies.rolling import RollingStrategy
from tests.unit.fakes import deployment


def state(**kw) -> AppState:
    dep = deployment(revision=4, **kw)
    return AppState(AppRef("test", "hello"), dep, "hello", parse_image("hello:v1"), 3, 4, (),
                    version="1.0.0")


def target() -> Target:
    return Target(parse_image("hello:v2"), "2.0.0", "ticket 42", "ana")


def test_rolling_sets_image_verifies_and_undoes_to_the_current_revision():
    plan = RollingStrategy().plan(state(), target(), Options())
    update, wait = plan.steps
    assert update == UpdateDeployment("hello", "hello", "hello:v2",
                                      "deployer rolling update to hello:v2 by ana: ticket 42",
                                      None)
    assert wait == AwaitRollout("hello", "2.0.0")
    undo, verify_old = plan.rollback
    assert isinstance(undo, UndoRollout) and undo.to_revision == 4
    assert verify_old == AwaitRollout("hello", "1.0.0")


def test_rolling_carries_surge_settings_in_the_same_write():
    plan = RollingStrategy().plan(state(), target(), Options({"max_surge": "50%",
                                                             "max_unavailable": 0}))
    assert plan.steps[0].strategy == {"type": "RollingUpdate",
                                      "rollingUpdate": {"maxSurge": "50%", "maxUnavailable": 0}}


def test_recreate_switches_strategy_measures_downtime_and_restores_it():
    plan = RecreateStrategy().plan(state(), target(), Options())
    update, wait, restore = plan.steps
    assert update.strategy == {"type": "Recreate", "rollingUpdate": None}
    assert wait.measure_downtime
    assert restore == SetRolloutStrategy("hello", {"type": "RollingUpdate",
                                                   "rollingUpdate": {"maxSurge": 1,
                                                                     "maxUnavailable": 0}})
    # the rollback puts the user's strategy back first, so the old pods need not wait for
    # the rejected ones to be gone
    assert plan.rollback[0] == restore
    assert isinstance(plan.rollback[1], UndoRollout)
    assert isinstance(plan.rollback[2], AwaitRollout) and plan.rollback[2].measure_downtime


def test_recreate_on_an_app_already_using_recreate_changes_no_strategy():
    plan = RecreateStrategy().plan(state(strategy={"type": "Recreate"}), target(), Options())
    assert [type(s) for s in plan.steps] == [UpdateDeployment, AwaitRollout]
    assert plan.steps[0].strategy is None


def test_strategies_are_found_through_entry_points():
    assert isinstance(load("rolling"), RollingStrategy)
    assert isinstance(load("recreate"), RecreateStrategy)


def test_dry_run_plan_is_readable():
    lines = RollingStrategy().plan(state(), target(), Options()).describe()
    assert lines[0] == "1. set hello/hello image to hello:v2"
    assert "on failure:" in lines


def test_every_planned_step_is_declared_for_the_permission_preflight():
    from deployer.model import AppRef, AppState, Target
    from deployer.strategy import Options
    from deployer.validation import parse_image
    from strategies.blue_green import BlueGreenStrategy
    from strategies.canary import CanaryStrategy

    svc = {"metadata": {"name": "hello"},
           "spec": {"selector": {"app": "hello"}, "sessionAffinity": "None"}}
    s = AppState(AppRef("t", "hello"), deployment(revision=1), "hello", parse_image("hello:v1"),
                 3, 1, (), version="1.0.0", service=svc)
    t = Target(parse_image("hello:v2"), "2.0.0")
    options = Options({"steps": (25, 50), "until_gate": True, "keep_old": 5,
                       "preview_replicas": 1})
    for strategy in (RollingStrategy(), RecreateStrategy(), CanaryStrategy(),
                     BlueGreenStrategy()):
        plan = strategy.plan(s, t, options)
        kinds = {type(step) for step in (*plan.steps, *plan.rollback)}
        assert kinds <= set(strategy.steps), (strategy.name, kinds - set(strategy.steps))


def after_blue_green() -> AppState:
    """hello-green (v2, revision 1) is live, the app's own hello is scaled to 0."""
    green = deployment("hello-green", "hello:v2", revision=1)
    green["spec"]["selector"]["matchLabels"] = {"app": "hello", "track": "green"}
    green["spec"]["template"]["metadata"]["labels"] = {"app": "hello", "track": "green"}
    green["spec"]["template"]["spec"]["containers"][0]["name"] = "hello"
    service = {"metadata": {"name": "hello"},
               "spec": {"selector": {"app": "hello", "track": "green"}}}
    return AppState(AppRef("test", "hello"), deployment(replicas=0, revision=4), "hello",
                    parse_image("hello:v1"), 0, 4, (), service=service,
                    others={"hello-green": green}, versions={"hello-green": "2.0.0"})


def test_after_a_blue_green_the_live_side_is_what_the_app_is():
    live = after_blue_green().on_live_side()
    assert live.deployment_name == "hello-green"
    assert (str(live.image), live.replicas, live.revision, live.version) == (
        "hello:v2", 3, 1, "2.0.0")
    assert set(live.others) == {"hello"}
    pristine = state()
    assert pristine.on_live_side() is pristine


def test_rolling_and_recreate_after_a_blue_green_change_the_live_side():
    for strategy in (RollingStrategy(), RecreateStrategy()):
        plan = strategy.plan(after_blue_green(), target(), Options())
        assert plan.steps[0].deployment == "hello-green"
        undo = next(s for s in plan.rollback if isinstance(s, UndoRollout))
        assert undo == UndoRollout("hello-green", 1, undo.change_cause)
        assert {s.deployment for s in plan.rollback} == {"hello-green"}
        assert any("routes to hello-green" in n for n in plan.notes)
    v2 = Target(parse_image("hello:v2"), "2.0.0")
    assert RollingStrategy().is_current(after_blue_green(), v2), "users get v2 already"
    assert not RollingStrategy().is_current(after_blue_green(),
                                            Target(parse_image("hello:v1"), "1.0.0"))


def test_the_apps_own_sides_are_found_by_name_without_an_app_label_on_them():
    from deployer.snapshot import read_app
    from tests.unit.fakes import FakeGateway

    green = deployment("hello-green", "hello:v2")
    green["spec"]["template"]["spec"]["containers"][0]["name"] = "hello"
    gw = FakeGateway(deployment(), green)  # neither Deployment carries labels itself
    assert "labels" not in gw.deployments["hello-green"]["metadata"]
    state = read_app(gw, "hello", measure_version=False)
    assert set(state.others) == {"hello-green"}


def with_version_label(selector: bool = False, service: dict | None = None) -> AppState:
    dep = deployment(revision=4)
    dep["spec"]["template"]["metadata"]["labels"]["version"] = "1.0.0"
    if selector:
        dep["spec"]["selector"]["matchLabels"]["version"] = "1.0.0"
    svc = {"metadata": {"name": "hello"}, "spec": {"selector": service or {"app": "hello"}}}
    return AppState(AppRef("test", "hello"), dep, "hello", parse_image("hello:v1"), 3, 4, (),
                    version="1.0.0", service=svc)


def test_an_in_place_update_moves_the_pods_version_label_with_the_image():
    for strategy in (RollingStrategy(), RecreateStrategy()):
        plan = strategy.plan(with_version_label(), target(), Options())
        update = next(s for s in plan.steps if isinstance(s, UpdateDeployment))
        assert update.labels == {"version": "2.0.0"}
        assert "pods labelled version=2.0.0" in update.describe()
        assert not plan.warnings


def test_a_version_label_the_service_or_the_selector_holds_is_left_as_it_is():
    # the Service selecting version=1.0.0 would lose each pod the update relabels
    routed = RollingStrategy().plan(
        with_version_label(service={"app": "hello", "version": "1.0.0"}), target(), Options())
    assert routed.steps[0].labels is None
    # a selector cannot change: said as a warning in the plan
    selected = RollingStrategy().plan(with_version_label(selector=True), target(), Options())
    assert selected.steps[0].labels is None
    assert any("still labelled version=1.0.0" in w for w in selected.warnings)


def test_recreate_waits_for_the_service_that_routes_to_the_app_and_none_other():
    from dataclasses import replace

    from tests.unit.fakes import service

    routed = replace(state(), service=service("web", {"app": "hello"}))
    plan = RecreateStrategy().plan(routed, target(), Options())
    assert plan.steps[1] == AwaitRollout("hello", "2.0.0", measure_downtime=True,
                                         service="web")
    assert plan.rollback[-1] == AwaitRollout("hello", "1.0.0", measure_downtime=True,
                                             service="web")
    assert "until service web routes to them" in plan.steps[1].describe()
    elsewhere = replace(state(), service=service("web", {"app": "other"}))
    assert RecreateStrategy().plan(elsewhere, target(), Options()).steps[1].service is None
    assert RecreateStrategy().plan(state(), target(), Options()).steps[1].service is None
