"""blue-green's rollback window after the switch (KeepOld, deployer.windows).

A short window is waited for while the new live side is watched, and a failure there
switches back at once; a long one outlives the run, recorded on the release, and is
closed by the next deployer command once it has expired (by promote at once).
"""

from __future__ import annotations

import signal

import pytest

from deployer import cli, windows
from deployer.exitcodes import ExitCode
from deployer.interrupt import StopFlag
from deployer.lock import Lock, lease_name
from deployer.model import (
    AppRef,
    KeepOld,
    Plan,
    ScaleDeployment,
    SetServiceSelector,
    Verdict,
    step_to_json,
)
from deployer.record import Journal, RunRecord, read_history, read_run
from deployer.strategy import Options
from deployer.timestamps import iso
from strategies.blue_green import BlueGreenStrategy
from tests.unit.fakes import FakeGateway, deployment, service
from tests.unit.harness import Clock, Controller, make_engine, relabel

BLUE = {"app": "hello", "track": "stable"}
GREEN = {"app": "hello", "track": "green"}
VERSIONS = {"hello:v1": "1.0.0", "hello:v2": "2.0.0"}
APP = AppRef("test", "hello")


def switched(clock: Clock | None = None) -> tuple[FakeGateway, Controller, Clock]:
    """After a verified switch: green (v2) is live, blue (v1) still runs 3 pods."""
    gw = FakeGateway(deployment("hello"),
                     relabel(deployment("hello-green", "hello:v2"), **GREEN))
    gw.services["hello"] = service("hello", GREEN)
    clock = clock or Clock()
    controller = Controller(gw, VERSIONS, clock=clock)
    controller.tick()
    gw.advance = clock.on_sleep = controller.tick
    return gw, controller, clock


def window(seconds: float = 30, watch: bool = True) -> KeepOld:
    return KeepOld("hello", "hello-green", "2.0.0", "hello", "1.0.0", seconds, watch=watch)


SWITCH_BACK = (ScaleDeployment("hello", 3), SetServiceSelector("hello", BLUE),
               ScaleDeployment("hello-green", 0, missing_ok=True))


def plan(*steps) -> Plan:
    return Plan("blue-green", APP, steps, SWITCH_BACK, summary="blue-green to v2")


def journal(gw: FakeGateway) -> Journal:
    return Journal(gw, "hello", RunRecord("blue-green", "hello", "hello:v1", "hello:v2"))


# ------------------------------------------------------------------ the plan


def test_the_default_window_is_30s_watched_then_the_old_side_goes():
    state = _state()
    steps = BlueGreenStrategy().plan(state, _target(), Options({})).steps
    assert steps[-2:] == (window(30), ScaleDeployment("hello", 0))


def test_a_window_longer_than_a_minute_outlives_the_run():
    result = BlueGreenStrategy().plan(_state(), _target(), Options({"keep_old": 600}))
    assert result.steps[-1] == window(600, watch=False)
    assert not any(isinstance(s, ScaleDeployment) and s.deployment == "hello"
                   for s in result.steps)
    assert any("stays up 600s after the run ends" in n for n in result.notes)


def _state():
    from deployer.model import AppState
    from deployer.validation import parse_image

    return AppState(APP, deployment(), "hello", parse_image("hello:v1"), 3, 1, (),
                    version="1.0.0", service=service("hello", BLUE),
                    versions={"hello": "1.0.0"})


def _target():
    from deployer.model import Target
    from deployer.validation import parse_image

    return Target(parse_image("hello:v2"), "2.0.0")


# ------------------------------------------------------------------ a watched window


def test_a_watched_window_lasts_its_length_then_scales_the_old_side_down():
    gw, _, clock = switched()
    engine = make_engine(gw, clock)
    started = clock()
    outcome = engine.run(plan(window(30), ScaleDeployment("hello", 0)), journal(gw))

    assert (outcome.verdict, outcome.exit_code) == (Verdict.PROMOTED, ExitCode.OK)
    assert clock() - started >= 30
    assert "round(s) passed" in (engine.reporter.steps[0].note or "")
    assert gw.deployments["hello"]["spec"]["replicas"] == 0
    assert read_history(gw, "hello")[-1].old_side is None


def test_a_failure_in_the_window_switches_back_to_the_old_side_at_once():
    gw, _, clock = switched()
    green = [p["metadata"]["name"] for p in gw.pods
             if p["metadata"]["labels"].get("track") == "green"]
    gw.pod_answers[green[0]] = "9.9.9"  # one live pod answers something else now
    engine = make_engine(gw, clock)
    started = clock()
    outcome = engine.run(plan(window(30), ScaleDeployment("hello", 0)), journal(gw))

    assert (outcome.verdict, outcome.exit_code) == (Verdict.REJECTED, ExitCode.REJECTED)
    assert "hello-green failed in the rollback window after the switch" in outcome.message
    assert clock() - started < 10, "not at the end of the window: at the first failed round"
    assert gw.services["hello"]["spec"]["selector"] == BLUE
    assert gw.deployments["hello"]["spec"]["replicas"] == 3
    assert gw.deployments["hello-green"]["spec"]["replicas"] == 0


def test_a_window_that_would_outlast_the_timeout_is_cut_short():
    gw, _, clock = switched()
    engine = make_engine(gw, clock, timeout=40)
    started = clock()
    outcome = engine.run(plan(window(60), ScaleDeployment("hello", 0)), journal(gw))

    assert outcome.verdict is Verdict.PROMOTED
    assert clock() - started < 40
    assert (engine.reporter.steps[0].note or "").startswith(
        "the window was cut to 25s so that the run ends within --timeout")
    assert gw.deployments["hello"]["spec"]["replicas"] == 0


def test_a_signal_in_the_window_leaves_the_verified_release_live():
    gw, _, clock = switched()
    stop = StopFlag()
    engine = make_engine(gw, clock, stop=stop)
    sleep = engine.ctx.sleep

    def interrupting(seconds: float) -> None:
        sleep(seconds)
        if stop.reason is None:
            stop._handle(signal.SIGINT, None)

    engine.ctx.sleep = interrupting
    outcome = engine.run(plan(window(30), ScaleDeployment("hello", 0)), journal(gw))

    assert (outcome.verdict, outcome.exit_code) == (Verdict.INTERRUPTED, ExitCode.INTERRUPTED)
    assert outcome.message.startswith("interrupted in the rollback window: hello-green is live "
                                      "and was verified, hello is still up")
    assert outcome.next_command == "deployer promote --app hello"
    assert outcome.other_commands == ("deployer rollback --app hello",)
    assert gw.services["hello"]["spec"]["selector"] == GREEN
    assert gw.deployments["hello"]["spec"]["replicas"] == 3
    run = read_run(gw, "hello")
    assert (run.phase, run.position) == ("interrupted", 0)


# ------------------------------------------------------------------ a window after the run


def test_a_long_window_is_recorded_on_the_release_and_the_run_ends():
    gw, _, clock = switched()
    engine = make_engine(gw, clock)
    started = clock()
    outcome = engine.run(plan(window(600, watch=False)), journal(gw))

    assert outcome.verdict is Verdict.PROMOTED and clock() - started < 1
    side = read_history(gw, "hello")[-1].old_side
    assert side is not None and (side["deployment"], side["service"]) == ("hello", "hello")
    assert "stays up until" in outcome.message
    assert outcome.other_commands == ("deployer rollback --app hello",
                                      "deployer promote --app hello")
    assert gw.deployments["hello"]["spec"]["replicas"] == 3


def released_with_window(gw: FakeGateway, until: float) -> None:
    record = RunRecord("blue-green", "hello", "hello:v1", "hello:v2", verdict="promoted",
                       phase="done", old_side={"deployment": "hello", "service": "hello",
                                               "until": iso(until)},
                       undo=[step_to_json(s) for s in SWITCH_BACK])
    Journal(gw, "hello", record).finish()
    gw.writes.clear()


def test_an_expired_window_is_closed_and_a_running_one_is_not():
    gw, _, _ = switched()
    released_with_window(gw, until=1_000.0)
    assert windows.close_if_expired(gw, "hello", now=999.0) is None
    assert gw.deployments["hello"]["spec"]["replicas"] == 3

    said = windows.close_if_expired(gw, "hello", now=1_000.0)

    assert said is not None and said.endswith("closed: it ended; hello scaled to 0")
    assert gw.deployments["hello"]["spec"]["replicas"] == 0
    assert windows.pending(gw, "hello") is None
    assert read_history(gw, "hello")[-1].verdict == "promoted"


def test_a_window_whose_side_serves_again_is_closed_without_scaling_it_down():
    gw, _, _ = switched()
    released_with_window(gw, until=1_000.0)
    gw.services["hello"]["spec"]["selector"] = BLUE  # switched back by hand

    said = windows.close_if_expired(gw, "hello", now=2_000.0)

    assert said is not None and "routes to hello again: it is left running" in said
    assert gw.deployments["hello"]["spec"]["replicas"] == 3
    assert windows.pending(gw, "hello") is None


# ------------------------------------------------------------------ the commands


@pytest.fixture
def gw(cli_cluster) -> FakeGateway:
    cli_cluster.deployments["hello-green"] = relabel(deployment("hello-green", "hello:v2"),
                                                     **GREEN)
    cli_cluster.services["hello"] = service("hello", GREEN)
    return cli_cluster


def test_promote_ends_an_open_window_at_once(gw, capsys):
    import time

    released_with_window(gw, until=time.time() + 600)
    code = cli.run(["promote", "--app", "hello"])
    captured = capsys.readouterr()
    assert code == ExitCode.OK, captured.err
    assert "closed: deployer promote ends it; hello scaled to 0" in captured.out
    assert gw.deployments["hello"]["spec"]["replicas"] == 0
    assert windows.pending(gw, "hello") is None


def test_abort_closes_an_expired_window_before_it_looks_for_a_run(gw, capsys):
    released_with_window(gw, until=1_000.0)
    run = RunRecord("canary", "hello", "hello:v2", "hello:v3", phase="paused", position=0,
                    plan={"schemaVersion": 1, "strategy": "canary", "steps": [],
                          "rollback": []})
    Journal(gw, "hello", run).update()
    code = cli.run(["abort", "--app", "hello"])
    captured = capsys.readouterr()
    assert code == ExitCode.OK, captured.err
    assert "rollback window of blue-green release" in " ".join(captured.err.split())
    assert gw.deployments["hello"]["spec"]["replicas"] == 0


def in_its_window(gw: FakeGateway) -> None:
    """A blue-green run that switched and now holds its lock in the watched window."""
    run = RunRecord("blue-green", "hello", "hello:v1", "hello:v2", phase="running",
                    position=0, plan=plan(window(30), ScaleDeployment("hello", 0)).to_json())
    Journal(gw, "hello", run).update()
    Lock(gw, "hello", "run-1:ci@runner", "deployer blue-green").acquire()
    gw.writes.clear()


def test_rollback_takes_over_the_lock_of_a_run_in_its_window_without_force(gw, capsys):
    in_its_window(gw)
    code = cli.run(["rollback", "--app", "hello", "--dry-run"])
    captured = capsys.readouterr()
    assert code == ExitCode.OK, captured.err
    assert "is in its rollback window after a verified switch: its lock is taken over" \
        in captured.out + captured.err
    assert gw.writes == []


def test_other_commands_still_meet_the_lock_of_a_run_in_its_window(gw, capsys):
    in_its_window(gw)
    code = cli.run(["rolling", "--app", "hello", "--image", "v3", "--dry-run"])
    assert code == ExitCode.LOCKED, capsys.readouterr().err
    assert gw.leases[lease_name("hello")]["spec"]["holderIdentity"] == "run-1:ci@runner"
