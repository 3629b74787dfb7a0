"""deployer pause / resume: a run holds at a safe point while a pause is asked for it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from deployer.control import ACK_WAIT, Control
from deployer.engine import pausing
from deployer.engine.pausing import release
from deployer.errors import InvalidInput, LockHeld, UnsafeState
from deployer.exitcodes import ExitCode
from deployer.model import AwaitRollout, Gate, Hold, Verdict
from deployer.record import (
    PAUSE_KEY,
    Journal,
    PauseRequest,
    RunRecord,
    journal_name,
    read_pause,
    read_run,
    set_pause,
)
from deployer.status import collect, render
from deployer.timestamps import micro
from tests.unit.fakes import FakeGateway, deployment
from tests.unit.harness import Clock, make_engine
from tests.unit.test_engine import WALL, cluster, plan, update

ROLL = (update("hello:v2"), AwaitRollout("hello", "2.0.0"))


def said(engine: Any) -> str:
    """Everything the run printed: live lines and the report."""
    return engine.reporter.err.getvalue() + engine.reporter.out.getvalue()


def started(gw: FakeGateway, record: RunRecord | None = None) -> Journal:
    """A run whose record is in the cluster, as the engine writes it before its steps."""
    j = Journal(gw, "hello", record or RunRecord("rolling", "hello", "hello:v1", "hello:v2"))
    j.update(phase="running", plan=plan(*ROLL).to_json())
    return j


def ask(gw: FakeGateway, j: Journal, by: str = "alice", reason: str | None = None) -> None:
    set_pause(gw, "hello", PauseRequest(j.record.id, by, "2030-01-01T00:00:00Z", reason))


class Script:
    """What other shells do while the run sleeps: withdraw the pause after ``hold_for``
    seconds held, recording every write the run made meanwhile."""

    def __init__(self, gw: FakeGateway, clock: Clock, hold_for: float):
        self.gw, self.clock, self.hold_for = gw, clock, hold_for
        self.held_since: float | None = None
        self.writes_while_held: list[tuple[str, str]] = []
        self.seen_paused: bool | None = None
        clock.on_sleep = self.tick

    def tick(self) -> None:
        run = read_run(self.gw, "hello")
        if run is None or not run.held:
            return
        if self.held_since is None:
            self.held_since = self.clock()
            self.writes_before = len(self.gw.writes)
            dep = self.gw.deployments["hello"]
            self.seen_paused = bool(dep["spec"].get("paused"))
            return
        self.writes_while_held = [(v, k) for v, k, _ in self.gw.writes[self.writes_before:]]
        if self.clock() - self.held_since >= self.hold_for:
            set_pause(self.gw, "hello", None)


def test_a_run_holds_before_its_next_step_until_resumed_and_its_deadline_stops():
    gw, _ = cluster()
    clock = Clock()
    j = started(gw)
    ask(gw, j, reason="errors in the logs")
    script = Script(gw, clock, hold_for=120)
    engine = make_engine(gw, clock, timeout=60)  # held twice as long as the whole budget
    outcome = engine.run(plan(*ROLL), j)
    assert outcome.verdict is Verdict.PROMOTED, outcome.message
    assert script.held_since is not None and script.seen_paused is False  # between steps
    assert script.writes_while_held == []  # nothing written while held
    assert gw.image() == "hello:v2"
    out = said(engine)
    assert "Paused by alice (errors in the logs): holding before 'set hello/hello" in out
    assert "deployer resume --app hello" in out and "deployer abort --app hello" in out
    assert "Resumed after 12" in out
    assert PAUSE_KEY not in gw.config_maps[journal_name("hello")]["data"]  # finished: gone
    assert read_run(gw, "hello") is None


def test_a_rolling_update_held_inside_its_rollout_pauses_the_deployment():
    gw, controller = cluster()
    clock = Clock()
    j = started(gw)
    controller.paused.add("hello")  # the update is written, the rollout not done yet
    controller.clock, controller.step = clock, 1.0  # each look at the cluster takes 1 s

    def ask_while_rolling_out() -> None:  # at the rollout's first wait
        if gw.image() == "hello:v2" and read_pause(gw, "hello") is None and \
                not asked:
            ask(gw, j, by="bob")
            asked.append(True)
        controller.tick()

    asked: list[bool] = []
    gw.advance = ask_while_rolling_out
    script = Script(gw, clock, hold_for=30)
    script_tick = script.tick

    def held_then_controller_free() -> None:  # only spec.paused stops it now
        script_tick()
        if script.held_since is not None:
            controller.paused.discard("hello")

    clock.on_sleep = held_then_controller_free
    engine = make_engine(gw, clock)
    outcome = engine.run(plan(*ROLL), j)
    assert outcome.verdict is Verdict.PROMOTED, outcome.message
    assert script.seen_paused is True  # spec.paused, as kubectl rollout pause does
    assert not gw.deployments["hello"]["spec"].get("paused")  # resumed afterwards
    paused_writes = [w for w in gw.deployment_writes() if w["spec"].get("paused")]
    assert len(paused_writes) == 1
    out = said(engine)
    assert "deployment hello is paused (spec.paused)" in out


def test_the_record_says_who_holds_it_and_status_shows_it():
    gw, _ = cluster()
    clock = Clock()
    j = started(gw)
    ask(gw, j, by="carol", reason="waiting for the DBA")
    seen: dict[str, Any] = {}

    def look() -> None:
        run = read_run(gw, "hello")
        if run is not None and run.held and not seen:
            seen.update(run.held)
            seen["status"] = render(collect(gw, "hello"))
            set_pause(gw, "hello", None)

    clock.on_sleep = look
    make_engine(gw, clock).run(plan(*ROLL), j)
    assert seen["by"] == "carol" and seen["reason"] == "waiting for the DBA"
    assert seen["step"].startswith("set hello/hello image to hello:v2")
    assert "paused:    by carol since " in seen["status"]
    assert "(waiting for the DBA)" in seen["status"]
    assert "deployer resume goes on, deployer abort rolls it back" in seen["status"]


def test_status_says_a_pause_was_asked_before_the_run_holds():
    gw, _ = cluster()
    j = started(gw)
    ask(gw, j, by="dave")
    text = render(collect(gw, "hello"))
    assert "pause asked by dave at 2030-01-01T00:00:00Z" in text


def test_a_pause_asked_for_another_run_is_ignored_and_not_kept():
    gw, _ = cluster()
    clock = Clock()
    j = started(gw)
    data = gw.config_maps[journal_name("hello")]["data"]
    data[PAUSE_KEY] = json.dumps({"run": "someone-else", "by": "eve", "at": "x"})
    engine = make_engine(gw, clock)
    outcome = engine.run(plan(*ROLL), j)
    assert outcome.verdict is Verdict.PROMOTED
    assert "Paused by" not in said(engine)
    assert PAUSE_KEY not in gw.config_maps[journal_name("hello")]["data"]


def test_a_request_is_not_written_for_a_run_no_longer_in_progress():
    gw, _ = cluster()
    started(gw)
    with pytest.raises(UnsafeState, match="no longer in progress"):
        set_pause(gw, "hello", PauseRequest("old-run", "eve", "x"))


class AskingOnRollback(FakeGateway):
    """Someone asks for a pause the moment the rollback writes the old image back."""

    journal: Journal | None = None

    def replace_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        written = super().replace_deployment(body)
        image = body["spec"]["template"]["spec"]["containers"][0]["image"]
        if image == "hello:v1" and self.journal is not None:
            ask(self, self.journal)
        return written


def test_a_rollback_never_holds():
    gw, controller = cluster(AskingOnRollback(deployment()))
    controller.pod_state["hello:v2"] = {"waiting": "ErrImageNeverPull"}
    clock = Clock()
    j = started(gw)
    gw.journal = j

    def nobody_resumes() -> None:
        if len(clock.sleeps) > 200:
            raise AssertionError("the rollback held")

    clock.on_sleep = nobody_resumes
    outcome = make_engine(gw, clock).run(plan(*ROLL), j)
    assert outcome.verdict is Verdict.REJECTED, outcome.message
    assert read_pause(gw, "hello") is None  # the run ended: the request went with it
    assert gw.image() == "hello:v1"


def test_a_gate_answers_a_pause_asked_meanwhile():
    gw, _ = cluster()
    j = started(gw)
    ask(gw, j)
    outcome = make_engine(gw).run(plan(Gate("25% of clients")), j)
    assert outcome.verdict is Verdict.PAUSED and outcome.exit_code == ExitCode.PAUSED
    assert read_pause(gw, "hello") is None
    assert read_run(gw, "hello").phase == "paused"  # type: ignore[union-attr]


def test_a_held_run_continued_elsewhere_unpauses_its_deployment_first():
    gw, _ = cluster()
    gw.deployments["hello"]["spec"]["paused"] = True
    record = RunRecord("rolling", "hello", "hello:v1", "hello:v2",
                       held={"by": "alice", "deployment": "hello", "step": "wait"})
    j = started(gw, record)
    outcome = make_engine(gw).run(plan(*ROLL), j, start=0)
    assert outcome.verdict is Verdict.PROMOTED, outcome.message
    assert not gw.deployments["hello"]["spec"].get("paused")
    assert gw.image() == "hello:v2"


def test_an_abort_of_a_held_run_unpauses_before_rolling_back():
    gw, _ = cluster()
    gw.deployments["hello"]["spec"]["paused"] = True
    record = RunRecord("rolling", "hello", "hello:v1", "hello:v2",
                       held={"by": "alice", "deployment": "hello", "step": "wait"})
    j = started(gw, record)
    outcome = make_engine(gw).abort(plan(*ROLL), j, "aborted")
    assert outcome.verdict is Verdict.ROLLED_BACK, outcome.message
    assert not gw.deployments["hello"]["spec"].get("paused")
    assert read_run(gw, "hello") is None


def test_release_leaves_a_run_that_was_not_held_alone():
    gw, _ = cluster()
    j = started(gw)
    writes = len(gw.writes)
    release(gw, j, make_engine(gw).reporter)
    assert len(gw.writes) == writes


def test_a_held_run_that_loses_its_lock_stops_without_writing():
    from deployer.lock import Lock

    gw, _ = cluster()
    clock = Clock()
    now = [WALL]
    lock = Lock(gw, "hello", "run-1 by me", "deployer rolling", clock=lambda: now[0])
    lock.acquire()
    j = started(gw)
    ask(gw, j)

    def take_over() -> None:  # deployer abort takes the held run's lock
        run = read_run(gw, "hello")
        if run is not None and run.held:
            gw.leases["deployer-hello"]["spec"]["holderIdentity"] = "abort by on-call"
            gw.writes_mark = len(gw.writes)  # type: ignore[attr-defined]

    clock.on_sleep = take_over
    try:
        with pytest.raises(LockHeld, match="abort by on-call"):
            make_engine(gw, clock, lock=lock).run(plan(*ROLL), j)
    finally:
        lock.release()
    assert gw.writes[gw.writes_mark:] == []  # type: ignore[attr-defined]
    assert gw.image() == "hello:v1"


def test_a_pod_failing_while_held_is_reported_once():
    gw, _ = cluster()
    clock = Clock()
    j = started(gw)
    ask(gw, j)
    for p in gw.pods:
        p["status"]["containerStatuses"][0]["state"] = {"waiting": {
            "reason": "CreateContainerConfigError", "message": "secret db missing"}}
    Script(gw, clock, hold_for=60)  # six looks at the pods
    engine = make_engine(gw, clock)
    engine.run(plan(*ROLL), j)
    err = said(engine)
    assert err.count("while paused:") == 3, err  # one line per failing pod, not per look
    assert "CreateContainerConfigError: secret db missing" in err


def test_a_hold_step_held_does_not_count_the_time_held():
    gw, _ = cluster()
    clock = Clock()
    j = started(gw)
    script = Script(gw, clock, hold_for=100)
    calls = [0]
    original = pausing.Pausing.asked

    def asked_once_inside(self: pausing.Pausing) -> PauseRequest | None:
        calls[0] += 1
        if calls[0] == 3 and read_pause(gw, "hello") is None:
            ask(gw, j)
            self._asked_at = None  # noqa: SLF001
        return original(self)

    pausing.Pausing.asked = asked_once_inside  # type: ignore[method-assign]
    try:
        start = clock()
        outcome = make_engine(gw, clock).run(plan(Hold(30, "bake")), j)
    finally:
        pausing.Pausing.asked = original  # type: ignore[method-assign]
    assert outcome.verdict is Verdict.PROMOTED
    assert script.held_since is not None
    total = clock() - start
    assert 130 <= total <= 140, total  # 30 s of hold plus 100 s held, not 30 s in all


# ------------------------------------------------------------------ the commands


def live_lease(gw: FakeGateway, clock: Clock, wall: float = WALL) -> None:
    gw.leases["deployer-hello"] = {"metadata": {"name": "deployer-hello",
                                                "resourceVersion": "1", "annotations": {}},
                                   "spec": {"holderIdentity": "run-1:me",
                                            "leaseDurationSeconds": 30,
                                            "renewTime": micro(wall)}}


def control(gw: FakeGateway, clock: Clock, on_sleep: Any = None) -> Control:
    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if on_sleep:
            on_sleep()

    return Control(gw, "hello", "-n test", clock=clock, wall=lambda: WALL, sleep=sleep)


def test_pause_refuses_an_app_without_a_run():
    gw = FakeGateway(deployment())
    with pytest.raises(InvalidInput, match="no run in progress to pause") as exc:
        control(gw, Clock()).pause(None)
    assert exc.value.exit_code == ExitCode.INVALID and "deployer status --app hello -n test" \
        in str(exc.value.hint)
    assert gw.writes == []


def test_pause_refuses_a_run_at_its_gate_and_one_rolling_back():
    gw = FakeGateway(deployment())
    j = started(gw)
    j.update(phase="paused")
    with pytest.raises(InvalidInput, match="paused at its promotion gate"):
        control(gw, Clock()).pause(None)
    j.update(phase="rolling-back")
    with pytest.raises(InvalidInput, match="a rollback is never paused"):
        control(gw, Clock()).resume()


def test_pause_refuses_a_run_whose_process_is_gone():
    gw = FakeGateway(deployment())
    j = started(gw)
    j.update(phase="interrupted")
    writes = len(gw.writes)
    with pytest.raises(InvalidInput, match="no process holds its lock"):
        control(gw, Clock()).pause(None)
    assert len(gw.writes) == writes


def test_pause_waits_for_the_run_to_hold():
    gw = FakeGateway(deployment())
    clock = Clock()
    j = started(gw)
    live_lease(gw, clock)

    def the_run_holds() -> None:
        if read_pause(gw, "hello") is not None:
            j.update(held={"by": "me", "step": "verify traffic"})

    outcome = control(gw, clock, the_run_holds).pause("why")
    assert outcome.verdict is Verdict.PAUSED and outcome.exit_code == ExitCode.OK
    assert "is paused at 'verify traffic'" in outcome.message
    assert outcome.next_command == "deployer resume --app hello"
    assert read_pause(gw, "hello").reason == "why"  # type: ignore[union-attr]
    again = control(gw, clock).pause(None)
    assert "already paused by me" in again.message


def test_pause_says_when_the_run_has_not_held_yet():
    gw = FakeGateway(deployment())
    clock = Clock()
    started(gw)
    live_lease(gw, clock)
    start = clock()
    outcome = control(gw, clock).pause(None)
    assert clock() - start >= ACK_WAIT
    assert outcome.message.startswith("pause asked:") and "holds once" in outcome.message
    assert outcome.exit_code == ExitCode.OK


def test_resume_refuses_a_run_not_paused():
    gw = FakeGateway(deployment())
    started(gw)
    with pytest.raises(InvalidInput, match="is not paused") as exc:
        control(gw, Clock()).resume()
    assert "deployer pause --app hello -n test" in str(exc.value.hint)


def held_run(clock: Clock) -> tuple[FakeGateway, Journal]:
    """A run held by deployer pause whose process still renews its lock."""
    gw = FakeGateway(deployment())
    j = started(gw)
    ask(gw, j)
    j.update(held={"by": "me", "step": "x"})
    live_lease(gw, clock)
    return gw, j


def test_resume_lets_a_live_run_go_on():
    clock = Clock()
    gw, j = held_run(clock)

    def the_run_goes_on() -> None:
        if read_pause(gw, "hello") is None:
            j.update(held=None)

    outcome = control(gw, clock, the_run_goes_on).resume()
    assert not isinstance(outcome, RunRecord)
    assert outcome.verdict is Verdict.RESUMED and outcome.exit_code == ExitCode.OK
    assert read_pause(gw, "hello") is None


def test_resume_hands_back_a_run_whose_process_is_gone():
    gw = FakeGateway(deployment())
    j = started(gw)
    ask(gw, j)
    j.update(held={"by": "me", "step": "x", "deployment": "hello"})
    result = control(gw, Clock()).resume()  # no Lease: nobody holds the app
    assert isinstance(result, RunRecord) and result.id == j.record.id
    assert read_pause(gw, "hello") is None


def test_resume_says_when_a_live_run_does_not_answer():
    clock = Clock()
    gw, _ = held_run(clock)
    outcome = control(gw, clock).resume()
    assert not isinstance(outcome, RunRecord)
    assert outcome.exit_code == ExitCode.TIMEOUT and "has not gone on" in outcome.message


def test_status_shows_the_recorded_container_of_a_side_with_several():
    gw = FakeGateway(deployment("web"))
    green = deployment("web-green", "hello:v2")
    green["metadata"]["labels"] = {"app": "web"}
    green["spec"]["template"]["spec"]["containers"].insert(
        0, {"name": "sidecar", "image": "proxy:1"})
    green["spec"]["template"]["spec"]["containers"][1]["name"] = "web"
    gw.deployments["web-green"] = green
    Journal(gw, "web", RunRecord("blue-green", "web", "hello:v1", "hello:v2",
                                 container="web")).update(phase="running")
    shown = {d["name"]: d["image"] for d in collect(gw, "web")["deployments"]}
    assert shown == {"web": "hello:v1", "web-green": "hello:v2"}


def test_a_signal_while_held_stops_the_run_and_names_resume():
    import signal as signals

    from deployer.interrupt import StopFlag

    gw, _ = cluster()
    clock = Clock()
    j = started(gw)
    ask(gw, j)
    with StopFlag() as stop:
        def ctrl_c() -> None:
            if read_run(gw, "hello").held:  # type: ignore[union-attr]
                stop._handle(signals.SIGINT, None)  # noqa: SLF001

        clock.on_sleep = ctrl_c
        outcome = make_engine(gw, clock, stop=stop).run(plan(*ROLL), j)
    assert outcome.verdict is Verdict.INTERRUPTED and "while paused" in outcome.message
    assert outcome.other_commands == ("deployer resume --app hello",)
    assert read_run(gw, "hello").held is not None  # type: ignore[union-attr]
    assert gw.image() == "hello:v1"


def held_for_ten_seconds(out_of_step: frozenset[str]) -> tuple[FakeGateway, int, str]:
    """A run held 10 s: the cluster, how often the run's ConfigMap was read, what it said."""
    gw, _ = cluster()
    gw.feeds_out_of_step = out_of_step
    reads: list[str] = []
    original = gw.get_config_map
    gw.get_config_map = lambda name: reads.append(name) or original(name)  # type: ignore
    clock = Clock()
    j = started(gw)
    ask(gw, j, reason="watched")
    Script(gw, clock, hold_for=10)
    engine = make_engine(gw, clock)
    reads.clear()
    assert engine.run(plan(*ROLL), j).verdict is Verdict.PROMOTED  # held, then went on
    return gw, len(reads), said(engine)


def test_the_pause_request_is_looked_at_in_the_watched_config_map_not_read_again():
    watched, reads, out = held_for_ten_seconds(frozenset())
    assert "Paused by alice (watched)" in out
    feeds = [f for f in watched.feeds if "configmap" in f.reads]
    assert len(feeds) == 1 and feeds[0].closed  # one watch, closed when the run ends
    looks = feeds[0].served.count("configmap")
    assert looks >= 6  # before each step, and every 2 s of the 10 s held
    # the same run with that watch out of step reads the ConfigMap at each of those looks;
    # what the watch leaves is the journal's own reads before its writes
    _, unwatched_reads, out = held_for_ten_seconds(frozenset({"configmap"}))
    assert "Paused by alice (watched)" in out
    assert unwatched_reads - reads == looks
