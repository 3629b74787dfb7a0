"""--atomic: a signal during a run rolls it back before deployer exits 130."""

import io
import signal
import time

from deployer.engine import Engine, RunSettings
from deployer.exitcodes import ExitCode
from deployer.interrupt import StopFlag
from deployer.model import AppRef, Plan, UpdateDeployment, Verdict
from deployer.record import Journal, RunRecord, read_history
from deployer.report import Reporter
from tests.unit.fakes import FakeGateway, deployment


def update(image: str) -> UpdateDeployment:
    return UpdateDeployment("hello", "hello", image, f"to {image}")


PLAN = Plan("rolling", AppRef("test", "hello"), (update("hello:v2"), update("hello:v3")),
            (update("hello:v1"),), summary="two updates")


class SignalledGateway(FakeGateway):
    """Delivers SIGTERM to the run's stop flag right after chosen image writes."""

    def __init__(self, stop: StopFlag, after: set[str]):
        super().__init__(deployment())
        self.stop, self.after = stop, after

    def replace_deployment(self, body):
        out = super().replace_deployment(body)
        image = body["spec"]["template"]["spec"]["containers"][0]["image"]
        if image in self.after:
            self.after.discard(image)
            self.stop._handle(signal.SIGTERM, None)
        return out


def run(atomic: bool, signal_after: set[str]):
    stop = StopFlag()
    gw = SignalledGateway(stop, signal_after)
    engine = Engine(gw, Reporter(out=io.StringIO(), err=io.StringIO()),
                    RunSettings(deadline=time.monotonic() + 60, atomic=atomic), stop=stop)
    journal = Journal(gw, "hello", RunRecord("rolling", "hello", "hello:v1", "hello:v2"))
    return engine.run(PLAN, journal), gw


def image(gw: FakeGateway) -> str:
    return gw.deployments["hello"]["spec"]["template"]["spec"]["containers"][0]["image"]


def test_without_atomic_a_signal_stops_where_the_run_is():
    outcome, gw = run(atomic=False, signal_after={"hello:v2"})
    assert (outcome.verdict, outcome.exit_code) == (Verdict.INTERRUPTED, ExitCode.INTERRUPTED)
    assert image(gw) == "hello:v2"
    assert "deployer rollback --app hello" in outcome.next_command


def test_with_atomic_a_signal_rolls_back_then_exits_130():
    outcome, gw = run(atomic=True, signal_after={"hello:v2"})
    assert (outcome.verdict, outcome.exit_code) == (Verdict.ROLLED_BACK, ExitCode.INTERRUPTED)
    assert "interrupted by SIGTERM; --atomic: rolled back" in outcome.message
    assert image(gw) == "hello:v1"  # and v3 was never written
    assert [w["spec"]["template"]["spec"]["containers"][0]["image"]
            for w in gw.deployment_writes()] == ["hello:v2", "hello:v1"]
    last = read_history(gw, "hello")[-1]
    assert last.verdict == "rolled-back" and "--atomic" in (last.message or "")


def test_a_second_signal_stops_the_atomic_rollback_at_once():
    outcome, gw = run(atomic=True, signal_after={"hello:v2", "hello:v1"})
    assert (outcome.verdict, outcome.exit_code) == (Verdict.INTERRUPTED, ExitCode.INTERRUPTED)
    assert "interrupted again during the --atomic rollback" in outcome.message
    assert "deployer rollback --app hello" in outcome.next_command
