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
    assert isinstance(plan.rollback[0], UndoRollout)
    assert plan.rollback[-1] == restore


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
