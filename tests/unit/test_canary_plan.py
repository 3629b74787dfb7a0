"""The canary planner: achievable shares, the step timeline, safe order on rollback."""

import copy

import pytest

from deployer.errors import InvalidInput
from deployer.health.verifier import selector_of
from deployer.model import (
    ApplyDeployment,
    AppRef,
    AppState,
    AwaitRollout,
    DeleteDeployment,
    Gate,
    ScaleDeployment,
    SetServiceAffinity,
    SetServiceSelector,
    Target,
    UndoRollout,
    UpdateDeployment,
    VerifyTraffic,
)
from deployer.strategy import Options
from deployer.validation import parse_image
from deployer.weights import bounded_split, shift
from strategies.canary import CanaryStrategy, split
from tests.unit.fakes import deployment


def service(affinity="ClientIP", selector=None):
    return {"metadata": {"name": "hello"},
            "spec": {"selector": selector or {"app": "hello"}, "sessionAffinity": affinity,
                     "clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}}


def state(svc=None, dep=None, others=None, autoscalers: dict | None = {}) -> AppState:  # noqa: B006
    dep = dep or deployment(revision=2)
    return AppState(AppRef("t", "hello"), dep, "hello",
                    parse_image("hello:v1"), int(dep["spec"]["replicas"]), 2, (),
                    version="1.0.0", service=svc if svc is not None else service(),
                    others=others or {}, autoscalers=autoscalers)


AUTOSCALED = {"hello": "hello-hpa"}  # a HorizontalPodAutoscaler sizes hello


TARGET = Target(parse_image("hello:v2"), "2.0.0", None, "ana")


@pytest.mark.parametrize(("stable", "percent", "pods", "share"), [
    (3, 20, 1, 0.25),   # 20 % of 3 is not possible: 1 of 4 pods is 25 %
    (3, 10, 1, 0.25),   # at least one canary pod
    (3, 50, 3, 0.50),
    (10, 15, 2, 2 / 12),
    (4, 20, 1, 0.20),
])
def test_split_picks_the_closest_achievable_share(stable, percent, pods, share):
    assert split(stable, percent) == (pods, pytest.approx(share))


@pytest.mark.parametrize(("replicas", "percent", "expected"), [
    (8, 50, (4, 4, 0.5)),
    (8, 90, (7, 1, 0.875)),
    (3, 25, (1, 2, 1 / 3)),
    (3, 50, (1, 2, 1 / 3)),     # 1 or 2 of 3 are equally near: fewer canary pods
    (3, 99, (2, 1, 2 / 3)),     # a stable pod stays until promotion
    (20, 5, (1, 19, 0.05)),
    (1, 50, (1, 1, 0.5)),       # one replica: its canary beside it
])
def test_a_canary_that_takes_stable_pods_keeps_the_replica_count(replicas, percent, expected):
    assert bounded_split(replicas, percent) == pytest.approx(expected)


@pytest.mark.parametrize(("limit", "floor", "grow", "shrink", "moves"), [
    (9, 8, (0, 4), (8, 4), [("grow", 1), ("shrink", 7), ("grow", 2), ("shrink", 6),
                            ("grow", 3), ("shrink", 5), ("grow", 4), ("shrink", 4)]),
    (10, 6, (0, 4), (8, 4), [("grow", 2), ("shrink", 4), ("grow", 4)]),  # maxUnavailable 2
    (3, 2, (0, 1), (3, 2), [("shrink", 2), ("grow", 1)]),  # no surge: a pod goes first
])
def test_pods_move_within_the_budget_each_new_one_ready_first(limit, floor, grow, shrink,
                                                              moves):
    assert shift(limit, floor, grow, shrink) == moves


def test_a_budget_that_allows_no_move_is_an_error():
    with pytest.raises(ValueError, match="no pod can be added"):
        shift(3, 3, (0, 1), (3, 2))


def test_with_an_autoscaler_the_canary_runs_beside_stable_sized_by_weight():
    plan = CanaryStrategy().plan(state(autoscalers=AUTOSCALED), TARGET,
                                 Options({"steps": (25, 50, 100), "clients": 40, "interval": 10}))
    kinds = [type(s) for s in plan.steps]
    assert kinds == [ApplyDeployment, AwaitRollout, VerifyTraffic,
                     ApplyDeployment, AwaitRollout, VerifyTraffic,
                     UpdateDeployment, AwaitRollout, ScaleDeployment, DeleteDeployment]
    first, second = plan.steps[0], plan.steps[3]
    assert first.body["spec"]["replicas"] == 1 and second.body["spec"]["replicas"] == 3
    assert plan.steps[2].share == 0.25 and plan.steps[5].share == 0.5
    # fresh clients per step: affinity keeps earlier clients where they were
    assert plan.steps[2].fresh_clients == (0, 20) and plan.steps[5].fresh_clients == (20, 40)
    assert any("25% requested -> 1 canary + 3 stable pods = 25%" in n for n in plan.notes)
    assert any("minimum duration: 20s" in n for n in plan.notes)
    # the weight travels with the steps, so a resized stable Deployment keeps it
    assert (first.weight, first.ratio_of, plan.steps[2].weight) == (25, "hello", 25)
    assert (second.weight, plan.steps[5].weight) == (50, 50)
    # the canary leaves the Service's endpoints before it is deleted, on both paths
    assert plan.steps[-1].service == "hello" and plan.rollback[-1].service == "hello"
    assert any("sized by the HorizontalPodAutoscaler hello-hpa" in n for n in plan.notes)


def peak(plan, start) -> int:
    return max(sum(r.values()) for r in [start, *plan.replica_timeline(start)])


def test_the_canary_takes_its_pods_from_stable_within_replicas_plus_surge():
    # 8 replicas, steps 50,90: 4 + 4, then 7 + 1, never more than 8 + maxSurge (1) pods
    dep = deployment(revision=2, replicas=8)
    plan = CanaryStrategy().plan(state(dep=dep), TARGET,
                                 Options({"steps": (50, 90, 100), "clients": 40}))
    start = {"hello": 8}
    assert peak(plan, start) == 9
    timeline = plan.replica_timeline(start)
    shares = [(timeline[i]["hello-canary"], timeline[i]["hello"], s.share)
              for i, s in enumerate(plan.steps) if isinstance(s, VerifyTraffic)]
    assert shares == [(4, 4, 0.5), (7, 1, 0.875)]
    assert timeline[-1] == {"hello": 8}
    # every canary pod is Ready (awaited) before a stable pod goes
    for i, step in enumerate(plan.steps):
        if isinstance(step, ScaleDeployment) and step.deployment == "hello" and \
                timeline[i]["hello"] < (timeline[i - 1] if i else start)["hello"]:
            assert isinstance(plan.steps[i - 1], AwaitRollout), plan.steps[i - 1]
    assert any("7 canary + 1 stable pods = 88%" in n for n in plan.notes)
    # a rollback brings stable back to its size before the canary goes
    kinds = [type(s) for s in plan.rollback]
    assert kinds == [UndoRollout, ScaleDeployment, AwaitRollout, ScaleDeployment,
                     DeleteDeployment]
    assert plan.rollback[1] == ScaleDeployment("hello", 8)


@pytest.mark.parametrize(("replicas", "options", "most"), [
    (8, {"max_surge": 2}, 10),          # --max-surge 2
    (8, {"max_surge": "25%"}, 10),
    (50, {"steps": (95, 100)}, 51),     # 95 % of 50: 47 + 3, not 500 pods
    (1, {}, 2),                         # one replica: its canary beside it
])
def test_the_pod_budget_follows_max_surge_and_size(replicas, options, most):
    dep = deployment(revision=2, replicas=replicas)
    plan = CanaryStrategy().plan(state(dep=dep), TARGET, Options({"steps": (50, 100),
                                                                 **options}))
    assert peak(plan, {"hello": replicas}) == most


def test_no_surge_and_no_unavailable_pod_leaves_no_way_to_move_a_pod():
    dep = deployment(revision=2, replicas=3)
    with pytest.raises(InvalidInput, match="cannot take pods from the stable side"):
        CanaryStrategy().plan(state(dep=dep), TARGET, Options({"max_surge": 0}))


def test_without_leave_to_read_autoscalers_the_plan_says_it_assumes_none():
    plan = CanaryStrategy().plan(state(autoscalers=None), TARGET, Options())
    assert any("could not be read" in n for n in plan.notes)
    assert not any(isinstance(s, ApplyDeployment) and s.ratio_of for s in plan.steps)


def test_canary_pods_are_labelled_and_selected_apart_from_stable():
    plan = CanaryStrategy().plan(state(), TARGET, Options({"steps": (50,)}))
    body = plan.steps[0].body
    assert body["metadata"]["name"] == "hello-canary"
    assert body["spec"]["selector"]["matchLabels"] == {"app": "hello", "track": "canary"}
    labels = body["spec"]["template"]["metadata"]["labels"]
    assert labels == {"app": "hello", "track": "canary", "version": "2.0.0"}
    assert body["spec"]["template"]["spec"]["containers"][0]["image"] == "hello:v2"


def test_rollback_restores_stable_before_removing_the_canary():
    plan = CanaryStrategy().plan(state(), TARGET, Options({"steps": (50,)}))
    kinds = [type(s) for s in plan.rollback]
    assert kinds == [UndoRollout, ScaleDeployment, AwaitRollout, ScaleDeployment,
                     DeleteDeployment]
    assert plan.rollback[1:3] == (ScaleDeployment("hello", 3), AwaitRollout("hello", "1.0.0"))


def test_affinity_is_set_for_the_run_and_restored():
    plan = CanaryStrategy().plan(state(service(affinity="None")), TARGET,
                                 Options({"steps": (50,)}))
    assert plan.steps[0] == SetServiceAffinity("hello", "ClientIP")
    assert plan.steps[-1] == SetServiceAffinity("hello", "None")
    assert plan.rollback[-1] == SetServiceAffinity("hello", "None")


def test_until_gate_stops_before_promotion():
    plan = CanaryStrategy().plan(state(), TARGET, Options({"steps": (25,), "until_gate": True}))
    gate = next(i for i, s in enumerate(plan.steps) if isinstance(s, Gate))
    assert isinstance(plan.steps[gate + 1], UpdateDeployment)


def test_an_app_only_selector_gets_a_canary_told_apart_by_its_track():
    dep = deployment(revision=2)
    dep["spec"]["selector"]["matchLabels"] = {"app": "hello"}
    dep["spec"]["template"]["metadata"]["labels"] = {"app": "hello"}
    plan = CanaryStrategy().plan(state(dep=dep), TARGET, Options())
    apply = next(s for s in plan.steps if isinstance(s, ApplyDeployment))
    assert apply.body["spec"]["selector"]["matchLabels"] == {"app": "hello", "track": "canary"}
    # the stable side's pods, as deployer lists them, leave the canary's out
    assert selector_of(dep) == "app=hello,track!=canary"
    assert selector_of(apply.body) == "app=hello,track=canary"


def test_stable_pods_labelled_like_a_canary_are_refused():
    dep = deployment(revision=2)
    dep["spec"]["selector"]["matchLabels"] = {"app": "hello"}
    dep["spec"]["template"]["metadata"]["labels"] = {"app": "hello", "track": "canary"}
    with pytest.raises(InvalidInput, match="labelled track: canary"):
        CanaryStrategy().plan(state(dep=dep), TARGET, Options())


def test_a_service_narrowed_to_the_stable_side_is_widened_for_the_run_and_narrowed_back():
    narrowed = {"app": "hello", "track": "stable"}
    plan = CanaryStrategy().plan(state(service(selector=narrowed)), TARGET, Options())
    assert plan.steps[0] == SetServiceSelector("hello", {"app": "hello"})
    assert plan.steps[-1] == SetServiceSelector("hello", narrowed)
    assert plan.rollback[-1] == SetServiceSelector("hello", narrowed)
    assert isinstance(plan.rollback[-2], DeleteDeployment)  # once the canary left the Service


def test_a_narrowed_service_is_not_widened_onto_other_running_pods():
    green = deployment("hello-green", "hello:v3")
    green["spec"]["template"]["metadata"]["labels"] = {"app": "hello", "track": "green"}
    with pytest.raises(InvalidInput, match="hello-green also runs pods it would then route to"):
        CanaryStrategy().plan(state(service(selector={"app": "hello", "track": "stable"}),
                                    others={"hello-green": green}), TARGET, Options())


def test_a_service_that_shares_no_label_with_the_canary_is_refused():
    with pytest.raises(InvalidInput, match="no label of it is shared by both"):
        CanaryStrategy().plan(state(service(selector={"track": "stable"})), TARGET, Options())


def test_after_a_blue_green_the_live_green_side_is_the_stable_one():
    green = deployment("hello-green", "hello:v2", revision=1)
    green["spec"]["selector"]["matchLabels"] = {"app": "hello", "track": "green"}
    green["spec"]["template"]["metadata"]["labels"] = {"app": "hello", "track": "green"}
    blue = deployment(replicas=0, revision=2)
    live = AppState(AppRef("t", "hello"), blue, "hello", parse_image("hello:v1"), 0, 2, (),
                    service=service(selector={"app": "hello", "track": "green"}),
                    others={"hello-green": green}, versions={"hello-green": "2.0.0"})
    plan = CanaryStrategy().plan(live, Target(parse_image("hello:v3"), "3.0.0"), Options())
    assert plan.steps[0] == SetServiceSelector("hello", {"app": "hello"})
    apply = next(s for s in plan.steps if isinstance(s, ApplyDeployment))
    assert ScaleDeployment("hello-green", 2, service="hello") in plan.steps  # gives a pod
    assert apply.body["metadata"]["annotations"]["deployer.dev/canary-of"] == "hello-green"
    assert next(s for s in plan.steps if isinstance(s, UpdateDeployment)).deployment == \
        "hello-green"
    assert plan.rollback[0] == UndoRollout("hello-green", 1, "deployer canary of hello:v3 "
                                                             "rolled back")
    assert any("routes to hello-green" in n for n in plan.notes)


def test_steps_must_include_one_below_100():
    with pytest.raises(InvalidInput, match="below 100"):
        CanaryStrategy().plan(state(), TARGET, Options({"steps": (100,)}))


def test_is_current_only_without_a_canary_and_on_the_target_image():
    s = CanaryStrategy()
    on_v2 = deployment(image="hello:v2")
    assert s.is_current(state(dep=on_v2), TARGET)
    assert not s.is_current(state(dep=on_v2, others={"hello-canary": copy.deepcopy(on_v2)}),
                            TARGET)
    assert not s.is_current(state(), TARGET)


def test_a_weight_the_replica_ratio_cannot_come_near_is_a_warning():
    target = Target(parse_image("hello:v2"), "2.0.0")
    plan = CanaryStrategy().plan(state(), target, Options({"steps": (10, 100), "clients": 40}))
    assert any("10% is out of reach with 3 pods: it runs at 33%" in w
               for w in plan.warnings)
    assert plan.to_json()["warnings"] == list(plan.warnings)
    plan = CanaryStrategy().plan(state(autoscalers=AUTOSCALED), target,
                                 Options({"steps": (25, 50, 100), "clients": 40}))
    assert any("20 clients cannot tell a 25% share from none" in w for w in plan.warnings)
    assert not any("out of reach" in w for w in plan.warnings)


def test_the_lessons_version_scheme_gets_a_canary_selected_by_its_own_version():
    dep = deployment(revision=2)
    dep["spec"]["selector"]["matchLabels"] = {"app": "hello", "version": "1.0.0"}
    dep["spec"]["template"]["metadata"]["labels"] = {"app": "hello", "version": "1.0.0"}
    svc = service(selector={"app": "hello", "version": "1.0.0"})
    plan = CanaryStrategy().plan(state(svc, dep), Target(parse_image("hello:v2"), "2.0.0"),
                                 Options())
    widen = plan.steps[0]
    assert widen == SetServiceSelector("hello", {"app": "hello"})
    apply = next(s for s in plan.steps if isinstance(s, ApplyDeployment))
    assert apply.body["spec"]["selector"]["matchLabels"] == {
        "app": "hello", "version": "2.0.0", "track": "canary"}
    assert apply.body["spec"]["template"]["metadata"]["labels"] == {
        "app": "hello", "version": "2.0.0", "track": "canary"}
    assert plan.steps[-1] == SetServiceSelector("hello", {"app": "hello", "version": "1.0.0"})
    assert any("still labelled version=1.0.0" in w for w in plan.warnings)
