"""The step handlers that change a Service (deployer/engine/services.py), and Hold."""

from __future__ import annotations

import pytest

from deployer.engine.services import ENDPOINTS_BUDGET, KUBE_PROXY_SYNC, SWITCH_READY_BUDGET
from deployer.errors import StepFailed, UnsafeState
from deployer.model import Hold, SetServiceAffinity, SetServiceSelector
from tests.unit.fakes import FakeGateway, deployment, service
from tests.unit.harness import Clock, Controller, err_text, make_engine, relabel

VERSIONS = {"hello:v1": "1.0.0", "hello:v2": "2.0.0"}
BLUE = {"app": "hello", "color": "blue"}
GREEN = {"app": "hello", "color": "green"}


def patches(gw: FakeGateway) -> list[dict]:
    return [body for verb, kind, body in gw.writes if (verb, kind) == ("patch", "service")]


# ------------------------------------------------------------------ affinity


def test_affinity_is_patched_with_the_resource_version_it_was_read_at():
    seen: list[str | None] = []

    class Recording(FakeGateway):
        def patch_service(self, name, patch, *, resource_version=None):
            seen.append(resource_version)
            return super().patch_service(name, patch, resource_version=resource_version)

    gw = Recording()
    gw.services["hello"] = service()
    engine = make_engine(gw)
    engine.execute(SetServiceAffinity("hello", "ClientIP"))
    assert patches(gw) == [{"spec": {"sessionAffinity": "ClientIP"}}]
    assert seen == ["1"]
    assert gw.services["hello"]["spec"]["sessionAffinity"] == "ClientIP"
    assert engine.reporter.steps[-1].note is None


def test_affinity_already_as_wanted_is_not_patched():
    gw = FakeGateway()
    gw.services["hello"] = service()  # no sessionAffinity field: the API's "None"
    gw.services["sticky"] = service("sticky", affinity="ClientIP")
    engine = make_engine(gw)
    engine.execute(SetServiceAffinity("hello", "None"))
    assert engine.reporter.steps[-1].note == "already set"
    engine.execute(SetServiceAffinity("sticky", "ClientIP"))
    assert engine.reporter.steps[-1].note == "already set"
    assert gw.writes == []


class Contended(FakeGateway):
    """Someone else writes the Service between each of deployer's reads and its patch."""

    def __init__(self, contended: int):
        super().__init__()
        self.contended = contended

    def get_service(self, name):
        svc = super().get_service(name)
        if svc is not None and self.contended:
            self.contended -= 1
            stored = self.services[name]["metadata"]
            stored["resourceVersion"] = str(int(stored["resourceVersion"]) + 1)
        return svc


def test_an_affinity_patch_that_conflicts_is_computed_again_and_retried():
    gw = Contended(contended=2)
    gw.services["hello"] = service()
    make_engine(gw).execute(SetServiceAffinity("hello", "ClientIP"))
    assert patches(gw) == [{"spec": {"sessionAffinity": "ClientIP"}}]
    assert gw.services["hello"]["spec"]["sessionAffinity"] == "ClientIP"


def test_an_affinity_patch_that_keeps_conflicting_is_unsafe():
    gw = Contended(contended=10**6)
    gw.services["hello"] = service()
    engine = make_engine(gw)
    with pytest.raises(UnsafeState, match="service hello kept changing while deployer tried "
                                          "to update it"):
        engine.execute(SetServiceAffinity("hello", "ClientIP"))
    assert patches(gw) == []
    assert engine.reporter.steps[-1].result == "error"


def test_a_step_on_a_service_that_is_gone_fails():
    with pytest.raises(StepFailed, match="service hello no longer exists"):
        make_engine(FakeGateway()).execute(SetServiceAffinity("hello", "ClientIP"))


# ------------------------------------------------------------------ selector


def blue_green(green_ready: bool = True) -> tuple[FakeGateway, Controller, Clock]:
    gw = FakeGateway(relabel(deployment("hello-blue"), **BLUE, release="r1"),
                     relabel(deployment("hello-green", "hello:v2", generation=2), **GREEN))
    gw.services["hello"] = service("hello", {**BLUE, "release": "r1"})
    clock = Clock()
    controller = Controller(gw, VERSIONS, clock=clock)
    if not green_ready:
        controller.pod_state["hello:v2"] = {"ready": False}
    return gw, controller, clock


def test_the_switch_waits_for_the_green_side_then_for_the_endpoints_to_follow():
    available_at_switch: list[int] = []

    class Watching(FakeGateway):
        def patch_service(self, name, patch, *, resource_version=None):
            available_at_switch.append(
                self.deployments["hello-green"]["status"]["availableReplicas"])
            return super().patch_service(name, patch, resource_version=resource_version)

    gw = Watching(relabel(deployment("hello-blue"), **BLUE, release="r1"),
                  relabel(deployment("hello-green", "hello:v2", generation=2, available=0),
                          **GREEN))
    gw.services["hello"] = service("hello", {**BLUE, "release": "r1"})
    clock = Clock()
    controller = Controller(gw, VERSIONS, clock=clock)
    controller.paused.add("hello-green")
    controller.tick()  # blue is serving; green's controller has not caught up yet
    assert len(gw.endpoint_addresses("hello")) == 3
    engine = make_engine(gw, clock)
    original = controller.tick

    def tick():
        if clock() >= 1002:
            controller.paused.discard("hello-green")
        original()

    gw.advance = clock.on_sleep = tick
    engine.execute(SetServiceSelector("hello", GREEN, require_ready="hello-green"))

    # one patch, and only once all of green was available; keys not in the new selector go
    assert patches(gw) == [{"spec": {"selector": {"release": None, "app": "hello",
                                                  "color": "green"}}}]
    assert available_at_switch == [3]
    assert gw.services["hello"]["spec"]["selector"] == GREEN
    green_ips = {p["status"]["podIP"] for p in controller.pods_of("hello-green")}
    assert gw.endpoint_addresses("hello") == green_ips
    assert engine.reporter.steps[-1].note == "endpoints are the 3 selected pods"
    assert clock.sleeps[-1] == KUBE_PROXY_SYNC
    assert "hello-green: 0 of 3 pods available" in err_text(engine)


def test_a_side_that_does_not_become_available_is_never_switched_to():
    gw, controller, clock = blue_green(green_ready=False)
    controller.tick()
    engine = make_engine(gw, clock)
    with pytest.raises(StepFailed) as exc:
        engine.execute(SetServiceSelector("hello", GREEN, require_ready="hello-green"))
    assert exc.value.message == ("refusing to switch service hello: hello-green has 0 of 3 "
                                 "pods available and rolled out")
    assert patches(gw) == []
    assert clock() > 1000 + SWITCH_READY_BUDGET


def test_a_side_with_no_replicas_is_never_switched_to():
    gw, controller, clock = blue_green()
    gw.deployments["hello-green"]["spec"]["replicas"] = 0
    controller.tick()
    with pytest.raises(StepFailed, match="hello-green has 0 of 0 pods available"):
        make_engine(gw, clock).execute(SetServiceSelector("hello", GREEN,
                                                          require_ready="hello-green"))
    assert patches(gw) == []


def test_switching_to_a_side_that_is_gone_fails():
    gw, controller, clock = blue_green()
    del gw.deployments["hello-green"]
    with pytest.raises(StepFailed, match="deployment hello-green no longer exists"):
        make_engine(gw, clock).execute(SetServiceSelector("hello", GREEN,
                                                          require_ready="hello-green"))
    assert patches(gw) == []


def test_endpoints_that_do_not_follow_the_new_selector_fail_the_switch():
    gw, controller, clock = blue_green()
    controller.tick()
    controller.endpoints_frozen = True  # the endpoints controller is stuck on blue
    engine = make_engine(gw, clock)
    gw.feed_tick = clock.tick  # the watch wakes at each wait's end: time passes
    with pytest.raises(StepFailed) as exc:
        engine.execute(SetServiceSelector("hello", GREEN))
    assert exc.value.message == (f"service hello's endpoints did not follow the new selector "
                                 f"within {ENDPOINTS_BUDGET:.0f}s")
    assert len(patches(gw)) == 1  # the switch was written: the rollback switches back
    assert "service endpoints 3, selected Ready pods 3" in err_text(engine)


def test_a_switch_to_pods_none_of_which_is_ready_never_counts_as_followed():
    gw, controller, clock = blue_green(green_ready=False)
    controller.tick()
    engine = make_engine(gw, clock)
    gw.feed_tick = clock.tick  # the watch wakes at each wait's end: time passes
    with pytest.raises(StepFailed, match="did not follow the new selector"):
        engine.execute(SetServiceSelector("hello", GREEN))
    assert gw.endpoint_addresses("hello") == set()
    assert "service endpoints 0, selected Ready pods 0" in err_text(engine)


def test_a_service_already_pointing_there_is_left_alone():
    gw, controller, clock = blue_green()
    gw.services["hello"]["spec"]["selector"] = dict(GREEN)
    controller.tick()
    engine = make_engine(gw, clock)
    engine.execute(SetServiceSelector("hello", GREEN, require_ready="hello-green"))
    assert engine.reporter.steps[-1].note == "already pointing there"
    assert gw.writes == []
    assert KUBE_PROXY_SYNC not in clock.sleeps


# ------------------------------------------------------------------ hold


def test_hold_waits_its_time_in_ticks_reporting_what_is_left():
    clock = Clock()
    engine = make_engine(FakeGateway(), clock)
    engine.execute(Hold(12, "blue stays as the rollback window"))
    assert clock.sleeps == [5.0, 5.0, 2.0]
    text = err_text(engine)
    assert "blue stays as the rollback window: 12s left" in text
    assert "blue stays as the rollback window: 2s left" in text
    assert engine.reporter.steps[-1].result == "done"


def test_widening_back_waits_until_the_other_sides_pods_have_stopped():
    """A failed first blue-green: green is scaled to 0, and only once its pods have
    stopped may the Service select every pod of the app again."""
    green_at_patch: list[int] = []

    class Watching(FakeGateway):
        def patch_service(self, name, patch, *, resource_version=None):
            green_at_patch.append(len([p for p in self.pods  # running: not terminating
                                       if p["metadata"]["labels"].get("color") == "green"
                                       and not p["metadata"].get("deletionTimestamp")]))
            return super().patch_service(name, patch, resource_version=resource_version)

    gw = Watching(relabel(deployment("hello-blue"), **BLUE),
                  relabel(deployment("hello-green", "hello:v2"), **GREEN))
    gw.services["hello"] = service("hello", BLUE)
    clock = Clock()
    controller = Controller(gw, VERSIONS, clock=clock)
    controller.tick()
    controller.paused.add("hello-green")  # its pods take a while to stop
    gw.deployments["hello-green"]["spec"]["replicas"] = 0

    def tick():
        if clock() >= 1004:
            controller.paused.discard("hello-green")
        controller.tick()

    gw.advance = clock.on_sleep = tick
    engine = make_engine(gw, clock)
    gw.feed_tick = clock.tick  # the pods are watched: each wait's time passes
    engine.execute(SetServiceSelector("hello", {"app": "hello"}, after_gone="hello-green"))
    assert green_at_patch == [0]
    assert clock() >= 1004
    assert gw.services["hello"]["spec"]["selector"] == {"app": "hello"}
