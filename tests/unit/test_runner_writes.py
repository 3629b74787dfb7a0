"""The runner's writes are conditional, re-read on conflict, and never applied twice."""

import time

from deployer.model import UpdateDeployment
from deployer.report import Reporter
from deployer.runner import Runner, RunSettings
from tests.unit.fakes import FakeGateway, deployment


def runner(gw: FakeGateway) -> Runner:
    import io

    return Runner(gw, Reporter(out=io.StringIO(), err=io.StringIO()),  # type: ignore[arg-type]
                  RunSettings(deadline=time.monotonic() + 60))


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
