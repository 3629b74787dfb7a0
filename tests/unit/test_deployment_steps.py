"""The step handlers that change or watch Deployments (deployer/engine/deployments.py)."""

from __future__ import annotations

from typing import Any

import pytest

from deployer.engine.deployments import clean_strategy, same_template, strategy_matches
from deployer.engine.outage import RETRY_PAUSE
from deployer.engine.services import KUBE_PROXY_SYNC
from deployer.errors import ClusterUnreachable, Conflict, StepFailed
from deployer.health.verifier import VerifyOptions
from deployer.lock import Lock
from deployer.model import (
    CHANGE_CAUSE_ANNOTATION,
    ApplyDeployment,
    AwaitRollout,
    DeleteDeployment,
    ScaleDeployment,
    SetRolloutStrategy,
    UndoRollout,
    UpdateDeployment,
)
from tests.unit.fakes import FakeGateway, deployment, pod, replicaset, service
from tests.unit.harness import Clock, Controller, err_text, make_engine, relabel

VERSIONS = {"hello:v1": "1.0.0", "hello:v2": "2.0.0"}


def note(engine) -> str | None:
    return engine.reporter.steps[-1].note


def spec(gw: FakeGateway, name: str = "hello") -> dict[str, Any]:
    return gw.deployments[name]["spec"]


# ------------------------------------------------------------------ update, strategy


def test_update_sets_image_strategy_and_change_cause_in_one_write():
    gw = FakeGateway(deployment())
    engine = make_engine(gw)
    step = UpdateDeployment("hello", "hello", "hello:v2", "deployer recreate to hello:v2",
                            strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}})
    engine.execute(step)
    assert len(gw.deployment_writes()) == 1
    assert gw.image() == "hello:v2"
    assert spec(gw)["strategy"] == {"type": "Recreate"}  # no rollingUpdate beside Recreate
    assert gw.deployments["hello"]["metadata"]["annotations"][CHANGE_CAUSE_ANNOTATION] == \
        "deployer recreate to hello:v2"
    engine.execute(step)
    assert note(engine) == "already set; nothing to change"
    assert len(gw.deployment_writes()) == 1


def test_update_with_the_same_image_but_another_strategy_writes():
    gw = FakeGateway(deployment(image="hello:v2"))
    engine = make_engine(gw)
    engine.execute(UpdateDeployment("hello", "hello", "hello:v2", "c",
                                    strategy={"type": "Recreate", "rollingUpdate": None}))
    assert spec(gw)["strategy"] == {"type": "Recreate"}
    assert note(engine) is None
    assert len(gw.deployment_writes()) == 1


def test_update_sets_the_pods_version_label_in_the_same_write_as_the_image():
    gw = FakeGateway(deployment())
    engine = make_engine(gw)
    step = UpdateDeployment("hello", "hello", "hello:v2", "c", labels={"version": "2.0.0"})
    engine.execute(step)
    assert len(gw.deployment_writes()) == 1
    assert spec(gw)["template"]["metadata"]["labels"] == {
        "app": "hello", "track": "stable", "version": "2.0.0"}
    engine.execute(step)
    assert note(engine) == "already set; nothing to change"
    assert len(gw.deployment_writes()) == 1


def test_a_step_on_a_deployment_that_is_gone_fails():
    engine = make_engine(FakeGateway())
    with pytest.raises(StepFailed, match="deployment hello no longer exists"):
        engine.execute(UpdateDeployment("hello", "hello", "hello:v2", "c"))
    assert engine.reporter.steps[-1].result == "failed"


def test_set_rollout_strategy_writes_once():
    gw = FakeGateway(deployment())
    engine = make_engine(gw)
    step = SetRolloutStrategy("hello", {"type": "Recreate"})
    engine.execute(step)
    assert spec(gw)["strategy"] == {"type": "Recreate"}
    assert gw.image() == "hello:v1"
    engine.execute(step)
    assert note(engine) == "already set"
    assert len(gw.deployment_writes()) == 1


def test_strategies_compare_by_type_and_by_value_as_text():
    rolling = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert strategy_matches(rolling, {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "1"}})
    assert strategy_matches({}, {"rollingUpdate": {}})  # RollingUpdate is the default
    assert not strategy_matches(rolling, {"type": "Recreate"})
    assert not strategy_matches(rolling, {"type": "RollingUpdate",
                                          "rollingUpdate": {"maxSurge": 2}})
    assert clean_strategy({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}) == \
        {"type": "Recreate"}


def test_templates_compare_without_their_pod_template_hash():
    a = {"metadata": {"labels": {"app": "x", "pod-template-hash": "abc"}}, "spec": {"c": 1}}
    assert same_template(a, {"metadata": {"labels": {"app": "x"}}, "spec": {"c": 1}})
    assert not same_template(a, {"metadata": {"labels": {"app": "x"}}, "spec": {"c": 2}})
    assert a["metadata"]["labels"]["pod-template-hash"] == "abc"  # inputs left as they were


# ------------------------------------------------------------------ undo


def undo_cluster() -> FakeGateway:
    dep = deployment(image="hello:v2", revision=2)
    gw = FakeGateway(dep)
    gw.replicasets = [replicaset(dep, 1, "aaa", "hello:v1"), replicaset(dep, 2, "bbb"),
                      # another Deployment's ReplicaSet with the same labels and revision
                      replicaset(dep, 1, "zzz", "evil:v0", owner_uid="uid-other")]
    return gw


def test_undo_restores_the_template_of_the_revision_owned_by_the_deployment():
    gw = undo_cluster()
    engine = make_engine(gw)
    engine.execute(UndoRollout("hello", 1, "deployer rollback to revision 1"))
    template = spec(gw)["template"]
    assert template["spec"]["containers"][0]["image"] == "hello:v1"
    assert "pod-template-hash" not in template["metadata"]["labels"]
    assert gw.deployments["hello"]["metadata"]["annotations"][CHANGE_CAUSE_ANNOTATION] == \
        "deployer rollback to revision 1"
    engine.execute(UndoRollout("hello", 1, "again"))
    assert note(engine) == "already at that revision"
    assert len(gw.deployment_writes()) == 1


def test_undo_to_a_pruned_revision_fails_and_writes_nothing():
    gw = undo_cluster()
    with pytest.raises(StepFailed, match=r"revision 5 of hello no longer exists "
                                         r"\(revisionHistoryLimit may have pruned it\)"):
        make_engine(gw).execute(UndoRollout("hello", 5, "c"))
    assert gw.writes == []


# ------------------------------------------------------------------ apply, scale


MINE = {"deployer.dev/app": "hello"}


def canary(replicas: int = 1, image: str = "hello:v2") -> dict[str, Any]:
    """The body a canary step carries (as planned: no resourceVersion, no status)."""
    body = deployment("hello-canary", image, replicas=replicas)
    body["metadata"]["annotations"] = dict(MINE)
    del body["metadata"]["resourceVersion"]
    del body["status"]
    return body


def existing_canary(replicas: int, image: str) -> dict[str, Any]:
    """The canary as the cluster holds it once deployer made it."""
    dep = deployment("hello-canary", image, replicas=replicas)
    dep["metadata"]["annotations"] = dict(MINE)
    return dep


def test_apply_creates_a_missing_deployment():
    gw = FakeGateway(deployment())
    engine = make_engine(gw)
    engine.execute(ApplyDeployment(canary()))
    assert note(engine) == "created"
    assert [(verb, kind) for verb, kind, _ in gw.writes] == [("create", "deployment")]
    assert spec(gw, "hello-canary")["replicas"] == 1


def test_apply_brings_its_own_deployment_to_the_planned_size_and_template():
    gw = FakeGateway(deployment(), existing_canary(3, "hello:v1"))
    engine = make_engine(gw)
    engine.execute(ApplyDeployment(canary(replicas=1)))
    assert spec(gw, "hello-canary")["replicas"] == 1
    assert gw.image("hello-canary") == "hello:v2"
    engine.execute(ApplyDeployment(canary(replicas=1)))
    assert note(engine) == "already as planned"
    assert len(gw.deployment_writes()) == 1


def test_apply_refuses_to_take_over_a_deployment_it_did_not_make():
    other = existing_canary(1, "hello:v2")
    other["metadata"]["annotations"] = {"deployer.dev/app": "someone-else"}
    gw = FakeGateway(deployment(), other)
    with pytest.raises(StepFailed, match="hello-canary exists and was not made by deployer "
                                         "for this app; refusing to take it over"):
        make_engine(gw).execute(ApplyDeployment(canary()))
    assert gw.writes == []


def test_apply_adopts_a_deployment_its_own_replayed_create_made():
    class Replaying(FakeGateway):
        """The create reached the API server, but its answer was lost and the retry
        conflicted with it."""

        def create_deployment(self, body):
            super().create_deployment(body)
            raise Conflict("deployment hello-canary already exists")

    gw = Replaying(deployment())
    engine = make_engine(gw)
    engine.execute(ApplyDeployment(canary()))
    assert note(engine) == "already as planned"
    assert "hello-canary" in gw.deployments
    assert gw.deployment_writes() == []


def test_scale_writes_the_size_once_and_a_missing_one_may_be_absent():
    gw = FakeGateway(deployment())
    engine = make_engine(gw)
    engine.execute(ScaleDeployment("hello", 5))
    assert spec(gw)["replicas"] == 5
    engine.execute(ScaleDeployment("hello", 5))
    assert note(engine) == "already at that size"
    engine.execute(ScaleDeployment("hello-green", 0, missing_ok=True))
    assert note(engine) == "not present"
    assert len(gw.deployment_writes()) == 1
    with pytest.raises(StepFailed, match="hello-green no longer exists"):
        engine.execute(ScaleDeployment("hello-green", 0))


# ------------------------------------------------------------------ delete


def blue_green() -> tuple[FakeGateway, Controller, Clock]:
    gw = FakeGateway(relabel(deployment("hello-blue"), app="hello", color="blue"),
                     relabel(deployment("hello-green", "hello:v2"), app="hello", color="green"))
    gw.services["hello"] = service("hello", {"app": "hello", "color": "green"})
    clock = Clock()
    controller = Controller(gw, VERSIONS, clock=clock)
    controller.tick()
    return gw, controller, clock


def test_delete_scales_to_zero_waits_for_the_pods_and_the_endpoints_then_deletes():
    gw, controller, clock = blue_green()
    gw.services["hello"]["spec"]["selector"] = {"app": "hello"}  # both colours behind it
    controller.tick()
    blue_ips = {p["status"]["podIP"] for p in controller.pods_of("hello-blue")}
    assert blue_ips <= gw.endpoint_addresses("hello")

    # the kubelet takes two looks to stop blue's pods; the endpoints follow two looks later
    ticks = 0
    controller.paused.add("hello-blue")

    def tick() -> None:
        nonlocal ticks
        ticks += 1
        if ticks > 2:
            controller.paused.discard("hello-blue")
        controller.endpoints_frozen = ticks <= 4
        Controller.tick(controller)

    gw.advance = clock.on_sleep = tick
    endpoints_at_delete: list[set[str]] = []
    sleeps_at_delete: list[float] = []
    delete = gw.delete_deployment

    def recording_delete(name: str) -> None:
        endpoints_at_delete.append(gw.endpoint_addresses("hello"))
        sleeps_at_delete.extend(clock.sleeps)
        delete(name)

    gw.delete_deployment = recording_delete  # type: ignore[method-assign]
    engine = make_engine(gw, clock)
    engine.execute(DeleteDeployment("hello-blue", "hello"))

    assert [(verb, kind, body["metadata"]["name"]) for verb, kind, body in gw.writes] == [
        ("replace", "deployment", "hello-blue"), ("delete", "deployment", "hello-blue")]
    assert gw.writes[0][2]["spec"]["replicas"] == 0
    assert "hello-blue" not in gw.deployments
    assert endpoints_at_delete and not blue_ips & endpoints_at_delete[0]
    text = err_text(engine)
    assert "3 pods of hello-blue still running" in text
    assert "3 terminating pods still endpoints of service hello" in text
    assert sleeps_at_delete[-1] == KUBE_PROXY_SYNC  # kube-proxy got its moment first
    assert engine.reporter.steps[-1].result == "done"


def test_delete_of_a_deployment_already_gone_does_nothing():
    gw, _, _ = blue_green()
    engine = make_engine(gw)
    engine.execute(DeleteDeployment("hello-yellow"))
    assert note(engine) == "already gone"
    assert gw.writes == []


def test_delete_fails_when_the_pods_do_not_stop_and_deletes_nothing():
    gw, controller, clock = blue_green()
    controller.paused.add("hello-blue")  # scaled to 0, but its pods keep running
    controller.step = 10.0
    engine = make_engine(gw, clock)
    with pytest.raises(StepFailed, match="3 pods of hello-blue did not stop"):
        engine.execute(DeleteDeployment("hello-blue"))
    assert "hello-blue" in gw.deployments
    assert [verb for verb, _, _ in gw.writes] == ["replace"]
    assert "3 pods of hello-blue still running" in err_text(engine)


def test_delete_fails_when_the_deployment_is_never_removed():
    class Finalized(FakeGateway):
        """A finalizer holds the deleted Deployment back."""

        def delete_deployment(self, name):
            self.writes.append(("delete", "deployment", {"metadata": {"name": name}}))

    gw = Finalized(deployment("hello-blue", replicas=0))
    clock = Clock()
    engine = make_engine(gw, clock)
    with pytest.raises(StepFailed, match="deployment hello-blue was not deleted"):
        engine.execute(DeleteDeployment("hello-blue"))
    assert "deployment hello-blue is being deleted" in err_text(engine)
    assert clock() > 1000 + 120  # it waited the whole stop budget


# ------------------------------------------------------------------ await_rollout


def rolling(**pod_state: Any) -> tuple[FakeGateway, Controller, Clock]:
    gw = FakeGateway(deployment())
    clock = Clock()
    controller = Controller(gw, VERSIONS, clock=clock)
    controller.tick()
    gw.deployments["hello"]["spec"]["template"]["spec"]["containers"][0]["image"] = "hello:v2"
    gw.deployments["hello"]["metadata"]["generation"] = 2
    if pod_state:
        controller.pod_state["hello:v2"] = pod_state
    return gw, controller, clock


def test_await_rollout_verifies_every_new_pod_answers_the_version():
    gw, controller, clock = rolling()
    engine = make_engine(gw, clock)
    engine.execute(AwaitRollout("hello", "2.0.0"))
    assert engine.verified_version == "2.0.0"
    assert note(engine) == "3 pods answer 2.0.0 (3 samples each)"
    assert engine.reporter.checks["rollout"].message == "deployment hello successfully rolled out"
    assert "0 of 3 pods verified as 2.0.0" in err_text(engine)


def test_await_rollout_with_http_checks_off_does_not_claim_a_verified_version():
    gw, _, clock = rolling()
    engine = make_engine(gw, clock, verify=VerifyOptions(http_mode="off"))
    engine.execute(AwaitRollout("hello", "2.0.0"))
    assert engine.verified_version is None
    assert note(engine) == "deployment hello successfully rolled out"


def test_a_pod_failure_fails_the_rollout_with_its_events_and_logs():
    gw, controller, clock = rolling(waiting="ImagePullBackOff",
                                    message='Back-off pulling image "hello:v2"', ready=False)
    original = controller.make_pod

    def make_pod(*args):
        p = original(*args)
        gw.events[p["metadata"]["name"]] = [
            {"reason": "Failed", "message": "Failed to pull image \"hello:v2\": not found "}]
        gw.logs[p["metadata"]["name"]] = ["no logs: never started"]
        return p

    controller.make_pod = make_pod
    engine = make_engine(gw, clock)
    with pytest.raises(StepFailed, match=r"ImagePullBackOff \(image hello:v2\)") as exc:
        engine.execute(AwaitRollout("hello", "2.0.0"))
    assert exc.value.evaluation is not None and not exc.value.timed_out
    failures = engine.reporter.failures
    assert len(failures) == 3
    assert failures[0].events == ('Failed: Failed to pull image "hello:v2": not found',)
    assert failures[0].logs == ("no logs: never started",)
    assert engine.verified_version is None


def test_pods_that_never_become_ready_fail_at_the_progress_deadline_naming_the_probe():
    gw, controller, clock = rolling(ready=False)
    controller.step = 5.0
    original = controller.make_pod

    def make_pod(*args):
        p = original(*args)
        p["status"]["conditions"][0]["reason"] = "ContainersNotReady"
        gw.events[p["metadata"]["name"]] = [
            {"reason": "Unhealthy",
             "message": "Readiness probe failed: HTTP probe failed with statuscode: 503"}]
        return p

    controller.make_pod = make_pod
    engine = make_engine(gw, clock, progress_deadline=30)
    with pytest.raises(StepFailed) as exc:
        engine.execute(AwaitRollout("hello", "2.0.0"))
    assert exc.value.message == (
        "hello did not become healthy within 30s: 0 of 3 updated replicas are available; "
        "Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 503")
    assert not exc.value.timed_out  # the progress deadline, not the run's --timeout
    assert [(f.reason, f.message) for f in engine.reporter.failures] == \
        [("NotReady", "never became Ready")] * 3


def test_the_deployments_own_progress_deadline_applies_by_default():
    gw, controller, clock = rolling()
    controller.paused.add("hello")
    controller.step = 7.0
    gw.deployments["hello"]["spec"]["progressDeadlineSeconds"] = 60
    engine = make_engine(gw, clock)
    with pytest.raises(StepFailed, match="within 60s: waiting for the controller"):
        engine.execute(AwaitRollout("hello", "2.0.0"))
    assert 1060 <= clock() <= 1070


def test_the_runs_timeout_ends_the_wait_as_timed_out():
    gw, controller, clock = rolling()
    controller.paused.add("hello")
    controller.step = 4.0
    engine = make_engine(gw, clock, timeout=20)
    with pytest.raises(StepFailed, match="hello did not become healthy within the run's "
                                         "--timeout: waiting for the controller to observe "
                                         "hello") as exc:
        engine.execute(AwaitRollout("hello", "2.0.0"))
    assert exc.value.timed_out
    assert engine.reporter.failures == []


def test_downtime_is_measured_from_the_first_moment_no_pod_is_available():
    gw = FakeGateway(deployment(generation=2, observed=1))
    clock = Clock()
    script = iter([{"observedGeneration": 2, "updatedReplicas": 0, "availableReplicas": 0},
                   {"updatedReplicas": 3, "availableReplicas": 0},
                   {"availableReplicas": 1},
                   {"availableReplicas": 3}])

    def advance():  # a Recreate rollout: old pods gone, then new ones come up
        clock.tick(4.0)
        gw.deployments["hello"]["status"].update(next(script, {}))

    gw.advance = advance
    gw.feed_tick = lambda seconds: None  # time moves only as the script says
    engine = make_engine(gw, clock)
    engine.execute(AwaitRollout("hello", None, measure_downtime=True))
    assert engine.ctx.results.downtime == 8.0
    assert engine.verified_version is None


def test_downtime_of_a_rejected_release_runs_on_until_its_rollback_brings_pods_back():
    gw = FakeGateway(deployment(generation=2, observed=2))
    clock = Clock()
    gw.deployments["hello"]["status"].update({"updatedReplicas": 0, "availableReplicas": 0})
    gw.feed_tick = lambda seconds: None  # time moves only as advance says
    engine = make_engine(gw, clock, progress_deadline=5)
    ticks = iter(range(100))

    def advance():  # no pod available for 5 ticks of 2 s, through the failure
        clock.tick(2.0)
        if next(ticks) >= 4:
            gw.deployments["hello"]["status"].update({"updatedReplicas": 3,
                                                      "availableReplicas": 3})

    gw.advance = advance
    with pytest.raises(StepFailed):
        engine.execute(AwaitRollout("hello", None, measure_downtime=True))
    assert engine.ctx.results.downtime is None, "not over: no pod is available yet"
    engine.execute(AwaitRollout("hello", None, measure_downtime=True))
    assert engine.ctx.results.downtime == 10.0, "measured from the first wait's start"


def test_a_deployment_deleted_during_the_rollout_fails_it():
    gw, controller, clock = rolling()
    controller.paused.add("hello")

    def advance():
        gw.deployments.pop("hello", None)

    gw.advance = advance
    with pytest.raises(StepFailed, match="deployment hello was deleted during the run"):
        make_engine(gw, clock).execute(AwaitRollout("hello", "2.0.0", measure_downtime=True))


class Unanswering(FakeGateway):
    """An API server that does not answer Deployment reads ``failing`` times in a row."""

    failing = 0

    def get_deployment(self, name):
        if self.failing:
            self.failing -= 1
            raise ClusterUnreachable("connection refused")
        return super().get_deployment(name)


def test_await_rollout_rides_out_a_short_api_outage():
    gw = Unanswering(deployment())
    clock = Clock()
    Controller(gw, VERSIONS, clock=clock).tick()
    gw.failing = 0

    original = gw.get_deployment
    calls = {"n": 0}

    def get_deployment(name):
        calls["n"] += 1
        if calls["n"] == 2:  # just after the step's first read
            gw.failing = 5
        return original(name)

    gw.get_deployment = get_deployment
    engine = make_engine(gw, clock)
    engine.execute(AwaitRollout("hello", "1.0.0"))
    assert engine.verified_version == "1.0.0"
    assert clock.sleeps[:5] == [RETRY_PAUSE] * 5
    assert "the API server does not answer (8s so far); waiting up to 90s" in err_text(engine)


def test_await_rollout_gives_up_once_the_outage_outlasts_its_budget():
    gw = Unanswering(deployment())
    clock = Clock()
    engine = make_engine(gw, clock, outage_budget=10)
    original = gw.get_deployment
    first = {"done": False}

    def get_deployment(name):
        if first["done"]:
            gw.failing = 1
        first["done"] = True
        return original(name)

    gw.get_deployment = get_deployment
    with pytest.raises(ClusterUnreachable, match="connection refused"):
        engine.execute(AwaitRollout("hello", "1.0.0"))
    assert clock.sleeps == [RETRY_PAUSE] * 6  # 0, 2, ... 10 s tolerated, 12 s is too long
    assert engine.reporter.steps[-1].result == "error"


def test_a_lock_that_cannot_be_checked_for_a_moment_is_ridden_out_too():
    class LeaseOutage(FakeGateway):
        lease_failing = 0

        def get_lease(self, name):
            if self.lease_failing:
                self.lease_failing -= 1
                raise ClusterUnreachable("lease read timed out")
            return super().get_lease(name)

        def replace_lease(self, body):  # a renewal writes without reading first
            if self.lease_failing:
                self.lease_failing -= 1
                raise ClusterUnreachable("lease write timed out")
            return super().replace_lease(body)

    gw = LeaseOutage(deployment(generation=2, observed=1))
    clock = Clock()
    wall = [1_900_000_000.0]
    lock = Lock(gw, "hello", "run-1", "deploy", clock=lambda: wall[0])
    lock.acquire()

    def advance():  # the controller catches up, and meanwhile our lease is due a look
        gw.deployments["hello"]["status"]["observedGeneration"] = 2
        wall[0] += 31
        gw.lease_failing = 1

    gw.advance = advance
    try:
        engine = make_engine(gw, clock, lock=lock)
        engine.execute(AwaitRollout("hello", None))
    finally:
        lock.release()
    assert note(engine) == "deployment hello successfully rolled out"
    assert RETRY_PAUSE in clock.sleeps


def test_an_outage_longer_than_the_lease_is_ridden_out_within_the_budget():
    """While the API server is away the lease can neither be renewed nor checked; the
    wait goes on (nothing is written meanwhile) until the outage budget is spent."""

    class Down(FakeGateway):
        failing = 0

        def get_deployment(self, name):
            if self.failing:
                return self._fail()
            return super().get_deployment(name)

        def get_lease(self, name):
            if self.failing:
                return self._fail()
            return super().get_lease(name)

        def _fail(self):
            self.failing -= 1
            wall[0] += 10  # the lease runs out while the API server is away
            raise ClusterUnreachable("connection refused")

    gw = Down(deployment(generation=2, observed=1))
    clock = Clock()
    wall = [1_900_000_000.0]
    lock = Lock(gw, "hello", "run-1", "deploy", clock=lambda: wall[0])
    lock._start_renewing = lambda: None  # renewals are driven by the test
    lock.acquire()

    def advance():  # the API server goes away once the wait has begun, then comes back
        gw.advance = lambda: None
        gw.failing = 8
        gw.deployments["hello"]["status"]["observedGeneration"] = 2

    gw.advance = advance
    engine = make_engine(gw, clock, lock=lock)
    engine.execute(AwaitRollout("hello", None))
    assert note(engine) == "deployment hello successfully rolled out"
    assert wall[0] - 1_900_000_000.0 >= 31, "the outage outlasted the lease"
    assert clock.sleeps.count(RETRY_PAUSE) >= 3


def test_pods_taken_from_a_serving_side_have_left_its_service_when_the_scale_ends():
    gw, controller, clock = blue_green()
    gw.services["hello"]["spec"]["selector"] = {"app": "hello"}
    controller.tick()
    before = {p["status"]["podIP"] for p in controller.pods_of("hello-blue")}
    ticks = 0

    def tick() -> None:  # the endpoints follow two looks after the pods stop
        nonlocal ticks
        ticks += 1
        controller.endpoints_frozen = ticks <= 2
        Controller.tick(controller)

    gw.advance = clock.on_sleep = tick
    engine = make_engine(gw, clock)
    engine.execute(ScaleDeployment("hello-blue", 1, service="hello"))

    kept = {p["status"]["podIP"] for p in controller.pods_of("hello-blue")}
    assert len(kept) == 1 and kept <= before
    assert gw.endpoint_addresses("hello") & before == kept
    assert "terminating pods still endpoints of service hello" in err_text(engine)
    assert clock.sleeps[-1] == KUBE_PROXY_SYNC


def test_a_scale_up_or_a_scale_without_a_service_does_not_wait():
    gw, controller, clock = blue_green()
    engine = make_engine(gw, clock)
    engine.execute(ScaleDeployment("hello-blue", 1))
    engine.execute(ScaleDeployment("hello-blue", 3, service="hello"))
    assert clock.sleeps == []


def test_a_recreate_ends_when_the_service_routes_to_the_new_pods_and_so_does_its_downtime():
    gw = FakeGateway(deployment(generation=2, observed=1))
    gw.services["hello"] = service("hello", {"app": "hello"})
    clock = Clock()
    new = [{**pod(f"hello-new-{i}"), "metadata": {"name": f"hello-new-{i}", "labels": {
        "app": "hello", "track": "stable"}}} for i in range(3)]
    for i, p in enumerate(new):
        p["status"]["podIP"] = f"10.1.0.{i + 1}"
    at: dict[str, float] = {}

    def step(name: str, change) -> Any:
        return lambda: (at.__setitem__(name, clock.now), change())

    script = iter([  # old pods gone; the new ones Ready; the Service gets one, then both
        step("down", lambda: gw.deployments["hello"]["status"].update(
            {"observedGeneration": 2, "updatedReplicas": 0, "availableReplicas": 0})),
        step("available", lambda: (gw.deployments["hello"]["status"].update(
            {"updatedReplicas": 3, "replicas": 3, "availableReplicas": 3}),
            gw.pods.extend(new))),
        step("routed", lambda: gw.endpoints.__setitem__("hello", {"10.1.0.1"})),
        step("all", lambda: gw.endpoints.__setitem__("hello", {"10.1.0.1", "10.1.0.2",
                                                              "10.1.0.3"})),
    ])

    def advance():
        clock.tick(4.0)
        next(script, lambda: None)()

    gw.advance = advance
    gw.feed_tick = lambda seconds: None  # time moves only as the script says
    engine = make_engine(gw, clock)
    engine.execute(AwaitRollout("hello", None, measure_downtime=True, service="hello"))
    assert (engine.reporter.steps[-1].note or "").endswith("; service hello routes to them")
    assert len(gw.endpoint_addresses("hello")) == 3, "waited until it routes to all three"
    # not over when the pods were available: the Service had none of them yet
    assert engine.ctx.results.downtime == at["routed"] - at["down"] > \
        at["available"] - at["down"]
    assert clock.sleeps[-1] == KUBE_PROXY_SYNC, "and kube-proxy is given its sync"


def test_a_recreate_of_a_deployment_scaled_to_0_does_not_wait_for_endpoints():
    gw = FakeGateway(deployment(replicas=0, generation=2, observed=1))
    gw.services["hello"] = service("hello", {"app": "hello"})
    clock = Clock()

    def advance():
        clock.tick(1.0)
        gw.deployments["hello"]["status"].update({"observedGeneration": 2})

    gw.advance = advance
    gw.feed_tick = lambda seconds: None
    engine = make_engine(gw, clock)
    engine.execute(AwaitRollout("hello", None, measure_downtime=True, service="hello"))
    assert engine.reporter.steps[-1].result == "done"
    assert clock() - 1000.0 < 10, "not the 60 s endpoints budget"
