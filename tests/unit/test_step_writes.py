"""The engine's writes are conditional, re-read on conflict, and never applied twice."""

import time

import pytest

from deployer.engine import Engine, RunSettings
from deployer.errors import StepFailed
from deployer.model import ApplyDeployment, DeleteDeployment, UpdateDeployment
from deployer.report import Reporter
from tests.unit.fakes import FakeGateway, deployment


def runner(gw: FakeGateway, clock=time.monotonic) -> Engine:
    import io

    return Engine(gw, Reporter(out=io.StringIO(), err=io.StringIO()),
                  RunSettings(deadline=time.monotonic() + 60), clock=clock,
                  sleep=lambda seconds: None)


STEP = UpdateDeployment("hello", "hello", "hello:v2", "deployer rolling update to hello:v2")


def test_update_sets_image_and_change_cause():
    gw = FakeGateway(deployment())
    runner(gw).execute(STEP)
    dep = gw.deployments["hello"]
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "hello:v2"
    assert dep["metadata"]["annotations"]["kubernetes.io/change-cause"] == STEP.change_cause


def test_update_re_reads_after_a_conflict_and_succeeds():
    gw = FakeGateway(deployment())
    gw.conflicts_left = 2
    runner(gw).execute(STEP)
    assert len(gw.writes) == 1
    assert gw.deployments["hello"]["spec"]["template"]["spec"]["containers"][0]["image"] \
        == "hello:v2"


def test_a_repeated_step_does_not_write_again():
    gw = FakeGateway(deployment())
    r = runner(gw)
    r.execute(STEP)
    r.execute(STEP)
    assert len(gw.writes) == 1


class _Feed:
    def __init__(self, gw: "DeletingGateway"):
        self.gw = gw

    def __enter__(self) -> "_Feed":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def wait(self, timeout: float) -> None:
        self.gw.tick()

    def current(self, source: str) -> None:
        return None  # never in step: the handler reads the cluster


class DeletingGateway(FakeGateway):
    """Canary pods that terminate once scaled to zero, and leave the Service's endpoints
    only `endpoint_lag` reads later, as the endpoints controller does."""

    def __init__(self, endpoint_lag: int):
        super().__init__(deployment(), deployment("hello-canary", "hello:v2", replicas=1))
        self.endpoint_lag = endpoint_lag
        self.terminating = False
        self.endpoint_reads_while_listed = 0
        self.deleted: list[str] = []

    def tick(self) -> None:
        if self.deployments["hello-canary"]["spec"]["replicas"] == 0:
            self.terminating = True

    def changes(self, **kwargs: object) -> _Feed:
        return _Feed(self)

    def list_pods(self, selector: str) -> list[dict]:
        p = {"metadata": {"name": "hello-canary-x"}, "status": {"podIP": "10.1.0.9"}}
        if self.terminating:
            p["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        return [p]

    def endpoint_addresses(self, service: str) -> set[str]:
        assert service == "hello"
        if self.endpoint_lag:
            self.endpoint_lag -= 1
            self.endpoint_reads_while_listed += 1
            return {"10.1.0.1", "10.1.0.9"}
        return {"10.1.0.1"}

    def delete_deployment(self, name: str) -> None:
        assert self.endpoint_lag == 0, "deleted while its pod still received traffic"
        self.deleted.append(name)
        self.deployments.pop(name)


def test_delete_waits_until_the_pods_have_left_the_service():
    gw = DeletingGateway(endpoint_lag=3)
    runner(gw).execute(DeleteDeployment("hello-canary", "hello"))
    assert gw.deleted == ["hello-canary"]
    assert gw.endpoint_reads_while_listed == 3


def test_delete_fails_when_the_service_keeps_sending_traffic_to_the_pods():
    gw = DeletingGateway(endpoint_lag=10**9)
    now = iter(range(0, 10**6, 10))
    r = runner(gw, clock=lambda: float(next(now)))
    with pytest.raises(StepFailed, match="still sends traffic to 10.1.0.9"):
        r.execute(DeleteDeployment("hello-canary", "hello"))
    assert gw.deleted == []


def canary_step(planned: int, weight: int) -> ApplyDeployment:
    body = deployment("hello-canary", "hello:v2", replicas=planned)
    return ApplyDeployment(body, weight=weight, ratio_of="hello")


def test_a_canary_is_sized_from_the_stable_deployment_as_it_is_when_the_step_runs():
    gw = FakeGateway(deployment(replicas=6))  # planned beside 3, resized to 6 since
    r = runner(gw)
    r.execute(canary_step(planned=1, weight=25))
    assert gw.deployments["hello-canary"]["spec"]["replicas"] == 2
    assert any("hello now has 6 replicas: 2 canary pods (instead of 1)" in n
               for n in r.reporter.notes)


def test_a_canary_beside_an_unchanged_stable_deployment_gets_the_planned_size():
    gw = FakeGateway(deployment(replicas=3))
    r = runner(gw)
    r.execute(canary_step(planned=1, weight=25))
    assert gw.deployments["hello-canary"]["spec"]["replicas"] == 1
    assert r.reporter.notes == []
