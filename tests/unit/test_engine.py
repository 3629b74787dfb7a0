"""The engine's step loop: outcomes and exit codes, rollback, safe points, pause and resume."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any

import pytest

from deployer.errors import (
    ApiRejected,
    ClusterUnreachable,
    Interrupted,
    LockHeld,
    UnsafeState,
)
from deployer.exitcodes import ExitCode
from deployer.interrupt import StopFlag
from deployer.lock import Lock
from deployer.model import (
    AppRef,
    AwaitRollout,
    Gate,
    Hold,
    Plan,
    ScaleDeployment,
    Step,
    UndoRollout,
    UpdateDeployment,
    Verdict,
    step_to_json,
)
from deployer.record import Journal, RunRecord, journal_name, read_history, read_run
from deployer.timestamps import micro, parse
from tests.unit.fakes import FakeGateway, deployment
from tests.unit.harness import Clock, Controller, make_engine

APP = AppRef("test", "hello")
VERSIONS = {"hello:v1": "1.0.0", "hello:v2": "2.0.0", "hello:v3": "3.0.0"}
WALL = 1_900_000_000.0


def update(image: str) -> UpdateDeployment:
    return UpdateDeployment("hello", "hello", image, f"deployer to {image}")


ROLLBACK = (update("hello:v1"), AwaitRollout("hello", "1.0.0"))


def plan(*steps: Step, rollback: tuple[Step, ...] = ROLLBACK,
         notes: tuple[str, ...] = ()) -> Plan:
    return Plan("rolling", APP, steps, rollback, summary="hello to v2", notes=notes)


def journal(gw: FakeGateway, to_image: str = "hello:v2") -> Journal:
    return Journal(gw, "hello", RunRecord("rolling", "hello", "hello:v1", to_image))


def cluster(gw: FakeGateway | None = None) -> tuple[FakeGateway, Controller]:
    gw = gw or FakeGateway(deployment())
    controller = Controller(gw, VERSIONS)
    controller.tick()  # the v1 pods are running and answer 1.0.0
    return gw, controller


def image_of(body: dict[str, Any]) -> str:
    return body["spec"]["template"]["spec"]["containers"][0]["image"]


def images_written(gw: FakeGateway) -> list[str]:
    return [image_of(w) for w in gw.deployment_writes()]


def stored(gw: FakeGateway) -> dict[str, str]:
    return gw.config_maps[journal_name("hello")]["data"]


def results(engine) -> list[tuple[str, str]]:
    return [(s.kind, s.result) for s in engine.reporter.steps]


# ------------------------------------------------------------------ promoted


def test_a_verified_release_is_promoted_and_recorded_with_its_undo():
    gw, _ = cluster()
    engine = make_engine(gw)
    outcome = engine.run(plan(update("hello:v2"), AwaitRollout("hello", "2.0.0"),
                              notes=("hello has 3 replicas",)), journal(gw))

    assert (outcome.verdict, outcome.exit_code) == (Verdict.PROMOTED, ExitCode.OK)
    assert outcome.message == "hello is running hello:v2"
    assert outcome.verified_version == engine.verified_version == "2.0.0"
    assert outcome.downtime_seconds is None
    assert results(engine) == [("update-deployment", "done"), ("await-rollout", "done")]
    assert engine.reporter.notes == ["hello has 3 replicas"]
    assert images_written(gw) == ["hello:v2"]
    assert "run" not in stored(gw)
    (last,) = read_history(gw, "hello")
    assert (last.verdict, last.phase, last.verified_version) == ("promoted", "done", "2.0.0")
    assert last.plan is None
    assert last.undo == [step_to_json(s) for s in ROLLBACK]


def test_a_release_without_an_expected_version_is_promoted_unverified():
    gw, _ = cluster()
    outcome = make_engine(gw).run(plan(update("hello:v2"), AwaitRollout("hello", None)),
                                  journal(gw))
    assert outcome.verdict is Verdict.PROMOTED
    assert outcome.verified_version is None
    assert read_history(gw, "hello")[-1].verified_version is None


def test_the_run_is_recorded_at_each_step_while_it_runs():
    gw, _ = cluster()
    seen: list[tuple[str | None, str | None, int | None]] = []

    class Recording(Journal):
        def update(self, **changes: Any) -> None:
            super().update(**changes)
            run = read_run(gw, "hello")
            seen.append((run.phase, run.step, run.position))

    make_engine(gw).run(plan(update("hello:v2"), update("hello:v3")),
                        Recording(gw, "hello", RunRecord("rolling", "hello")))
    assert seen == [("running", "set hello/hello image to hello:v2", 0),
                    ("running", "set hello/hello image to hello:v3", 1)]


def test_the_lock_note_of_a_taken_over_lease_goes_into_the_report():
    gw, _ = cluster()
    gw.leases["deployer-hello"] = {
        "metadata": {"name": "deployer-hello", "resourceVersion": "7"},
        "spec": {"holderIdentity": "run-0 by ci", "leaseDurationSeconds": 30,
                 "acquireTime": micro(WALL - 3600), "renewTime": micro(WALL - 3600)}}
    lock = Lock(gw, "hello", "run-1 by me", "deployer deploy", clock=lambda: WALL)
    lock.acquire()
    try:
        engine = make_engine(gw, lock=lock)
        outcome = engine.run(plan(update("hello:v2")), journal(gw))
    finally:
        lock.release()
    assert outcome.verdict is Verdict.PROMOTED
    assert engine.reporter.notes == ["took over the lock from run-0 by ci (expired)"]


# ------------------------------------------------------------------ rejected


def test_a_failed_verification_rolls_back_and_exits_1():
    gw, controller = cluster()
    controller.versions["hello:v2"] = "9.9.9"  # the image is not the version it claims
    engine = make_engine(gw)
    outcome = engine.run(plan(update("hello:v2"), AwaitRollout("hello", "2.0.0")), journal(gw))

    assert (outcome.verdict, outcome.exit_code) == (Verdict.REJECTED, ExitCode.REJECTED)
    assert "answers version '9.9.9', expected '2.0.0'" in outcome.message
    assert outcome.message.endswith("; rolled back, 1.0.0 is serving")
    assert outcome.verified_version == "1.0.0"
    assert images_written(gw) == ["hello:v2", "hello:v1"]
    assert gw.image() == "hello:v1"
    assert results(engine) == [("update-deployment", "done"), ("await-rollout", "failed"),
                               ("update-deployment", "done"), ("await-rollout", "done")]
    last = read_history(gw, "hello")[-1]
    assert (last.verdict, last.phase) == ("rejected", "done")
    assert "9.9.9" in last.message
    assert last.undo is None  # a rejected release leaves nothing to undo
    assert "run" not in stored(gw)


def test_a_failing_step_is_rejected_and_later_steps_never_run():
    gw, _ = cluster()
    engine = make_engine(gw)
    outcome = engine.run(plan(ScaleDeployment("ghost", 2), update("hello:v3"),
                              rollback=(update("hello:v1"),)), journal(gw))
    assert (outcome.verdict, outcome.exit_code) == (Verdict.REJECTED, ExitCode.REJECTED)
    assert outcome.message == "deployment ghost no longer exists; rolled back"
    assert outcome.verified_version is None
    assert images_written(gw) == []  # v3 never written; v1 already in place
    assert results(engine) == [("scale-deployment", "failed"), ("update-deployment", "done")]
    assert engine.reporter.steps[-1].note == "already set; nothing to change"


def test_a_refused_write_is_a_rejection_not_an_error():
    class Webhook(FakeGateway):
        def replace_deployment(self, body):
            if image_of(body) == "hello:v2":
                raise ApiRejected("admission webhook \"policy\" denied the request")
            return super().replace_deployment(body)

    gw, _ = cluster(Webhook(deployment()))
    engine = make_engine(gw)
    outcome = engine.run(plan(update("hello:v2"), AwaitRollout("hello", "2.0.0")), journal(gw))
    assert (outcome.verdict, outcome.exit_code) == (Verdict.REJECTED, ExitCode.REJECTED)
    assert outcome.message.startswith(
        "the API server refused the change: admission webhook \"policy\" denied the request")
    assert engine.reporter.steps[0].result == "failed"
    assert engine.reporter.steps[0].note == "admission webhook \"policy\" denied the request"
    assert images_written(gw) == []


def test_a_run_past_its_deadline_rolls_back_and_exits_70():
    gw, controller = cluster()
    clock = Clock()
    controller.clock, controller.step = clock, 5.0
    controller.paused.add("hello")  # the controller never gets to the new spec
    engine = make_engine(gw, clock, timeout=30)
    outcome = engine.run(plan(update("hello:v2"), AwaitRollout("hello", "2.0.0"),
                              rollback=(update("hello:v1"),)), journal(gw))
    assert (outcome.verdict, outcome.exit_code) == (Verdict.TIMEOUT, ExitCode.TIMEOUT)
    assert outcome.message.startswith(
        "hello did not become healthy within the run's --timeout: waiting for the controller "
        "to observe hello")
    assert outcome.message.endswith("; rolled back")
    assert images_written(gw) == ["hello:v2", "hello:v1"]  # the rollback got its own budget
    assert engine.settings.deadline >= clock() + 250
    last = read_history(gw, "hello")[-1]  # recorded as the report says it
    assert (last.verdict, last.phase) == ("timeout", "done")


def test_a_rollback_that_fails_leaves_the_run_unsafe():
    gw, _ = cluster()
    outcome = make_engine(gw).run(
        plan(update("hello:v2"), ScaleDeployment("ghost", 1),
             rollback=(UndoRollout("hello", 7, "undo"), update("hello:v1"))), journal(gw))
    assert (outcome.verdict, outcome.exit_code) == (Verdict.UNSAFE, ExitCode.UNSAFE)
    assert outcome.message == (
        "release rejected (deployment ghost no longer exists) and the rollback failed: "
        "revision 7 of hello no longer exists (revisionHistoryLimit may have pruned it)")
    assert outcome.next_command == "deployer status --app hello"
    assert images_written(gw) == ["hello:v2"]  # the rollback stopped at its failed step
    last = read_history(gw, "hello")[-1]
    assert (last.verdict, last.phase) == ("unsafe", "failed")
    assert last.message.startswith("rollback failed: revision 7 of hello")
    assert "run" not in stored(gw)


# ------------------------------------------------------------------ unknown, errors


class Outage(FakeGateway):
    """An API server that stops answering reads of ``kinds`` once ``image`` is written."""

    def __init__(self, image: str, kinds: set[str]):
        super().__init__(deployment())
        self.after, self.kinds, self.down = image, kinds, False

    def replace_deployment(self, body):
        out = super().replace_deployment(body)
        self.down = self.down or image_of(body) == self.after
        return out

    def get_deployment(self, name):
        if self.down and "deployment" in self.kinds:
            raise ClusterUnreachable("connection refused")
        return super().get_deployment(name)

    def get_config_map(self, name):
        if self.down and "configmap" in self.kinds:
            raise ClusterUnreachable("connection refused")
        return super().get_config_map(name)


def test_an_unreachable_cluster_leaves_the_outcome_unknown_and_rolls_nothing_back():
    gw, _ = cluster(Outage("hello:v2", {"deployment"}))
    engine = make_engine(gw)
    outcome = engine.run(plan(update("hello:v2"), update("hello:v3")), journal(gw))
    assert (outcome.verdict, outcome.exit_code) == (Verdict.UNKNOWN, ExitCode.UNREACHABLE)
    assert int(ExitCode.UNREACHABLE) == 69
    assert outcome.message == (
        "the API server stopped answering during 'set hello/hello image to hello:v3': "
        "connection refused; the outcome is unknown and nothing was rolled back")
    assert outcome.next_command == "deployer status --app hello"
    assert outcome.other_commands[0] == "deployer rollback --app hello"
    assert images_written(gw) == ["hello:v2"]
    assert engine.reporter.steps[-1].result == "error"
    run = read_run(gw, "hello")
    assert (run.phase, run.message, run.position) == ("error", "connection refused", 1)


def test_a_journal_that_cannot_be_written_does_not_hide_the_outage():
    gw, _ = cluster(Outage("hello:v2", {"deployment", "configmap"}))
    outcome = make_engine(gw).run(plan(update("hello:v2"), update("hello:v3")), journal(gw))
    assert (outcome.verdict, outcome.exit_code) == (Verdict.UNKNOWN, ExitCode.UNREACHABLE)
    assert "during 'set hello/hello image to hello:v3'" in outcome.message
    gw.down = False
    run = read_run(gw, "hello")  # as last written: the step the API went away after
    assert (run.phase, run.step) == ("running", "set hello/hello image to hello:v2")


@dataclass(frozen=True)
class Teleport(Step):
    """A step kind this deployer has no handler for."""

    where: str

    def describe(self) -> str:
        return f"teleport to {self.where}"


def test_a_step_without_a_handler_is_refused_as_unsafe():
    gw, _ = cluster()
    engine = make_engine(gw)
    with pytest.raises(UnsafeState, match="deployer cannot execute step teleport") as exc:
        engine.run(plan(update("hello:v2"), Teleport("mars")), journal(gw))
    assert exc.value.id == "unknown-step"
    assert images_written(gw) == ["hello:v2"]  # and no rollback: a human is needed
    run = read_run(gw, "hello")
    assert (run.phase, run.step) == ("error", "teleport to mars")
    assert "cannot execute step teleport" in run.message


def test_a_write_that_keeps_conflicting_is_an_error_of_the_step():
    gw, _ = cluster()
    gw.conflicts_left = 100
    engine = make_engine(gw)
    with pytest.raises(UnsafeState, match="kept changing") as exc:
        engine.run(plan(update("hello:v2")), journal(gw))
    assert exc.value.id == "conflict"
    assert results(engine) == [("update-deployment", "error")]
    assert read_run(gw, "hello").phase == "error"


# ------------------------------------------------------------------ the lock


def lease_lock(gw: FakeGateway) -> tuple[Lock, Any]:
    now = [WALL]
    lock = Lock(gw, "hello", "run-1 by me", "deployer deploy", clock=lambda: now[0])
    lock.acquire()

    def steal() -> None:  # the on-call engineer forced the lock; ours ran out meanwhile
        current = gw.leases["deployer-hello"]
        taken = {**current, "spec": {**current["spec"], "holderIdentity": "run-2 by on-call"}}
        gw.leases["deployer-hello"] = gw._bump(taken, current)  # a write: a new version
        now[0] += 31

    return lock, steal


def test_a_lost_lock_stops_the_run_before_any_write():
    gw, _ = cluster()
    lock, steal = lease_lock(gw)
    steal()
    try:
        with pytest.raises(LockHeld, match="now held by run-2 by on-call"):
            make_engine(gw, lock=lock).run(plan(update("hello:v2")), journal(gw))
    finally:
        lock.release()
    assert [(verb, kind) for verb, kind, _ in gw.writes] == [("create", "lease")]


class Stealing(FakeGateway):
    """Someone takes the lock over while deployer reads the Deployment ``when``."""

    steal: Any = None
    when = ""

    def get_deployment(self, name):
        if name == self.when and self.steal:
            self.steal()
            self.steal = None
        return super().get_deployment(name)


def test_a_lock_lost_during_a_failed_step_leaves_the_rollback_to_the_new_holder():
    gw, _ = cluster(Stealing(deployment()))
    lock, gw.steal = lease_lock(gw)
    gw.when = "ghost"
    try:
        with pytest.raises(LockHeld):
            make_engine(gw, lock=lock).run(plan(update("hello:v2"), ScaleDeployment("ghost", 1),
                                                rollback=(update("hello:v1"),)), journal(gw))
    finally:
        lock.release()
    assert images_written(gw) == ["hello:v2"]
    run = read_run(gw, "hello")
    assert (run.phase, run.step) == ("running", "scale ghost to 1")


def test_a_lock_forced_away_moments_ago_is_noticed_before_the_rollback_writes():
    """The other run forced the lock a second ago: our lease has not run out and our
    renewal has not noticed yet, but the journal write before the rollback reads it."""
    gw, _ = cluster(Stealing(deployment()))
    lock, _ = lease_lock(gw)
    gw.steal = lambda: gw.leases["deployer-hello"]["spec"].update(
        holderIdentity="run-2 by on-call")
    gw.when = "ghost"
    try:
        with pytest.raises(LockHeld, match="now held by run-2 by on-call"):
            make_engine(gw, lock=lock).run(plan(update("hello:v2"), ScaleDeployment("ghost", 1),
                                                rollback=(update("hello:v1"),)), journal(gw))
    finally:
        lock.release()
    assert images_written(gw) == ["hello:v2"]
    assert read_run(gw, "hello").phase == "running", "not one journal write after the takeover"


def test_a_lock_lost_during_the_rollback_stops_it():
    gw, _ = cluster(Stealing(deployment()))
    lock, gw.steal = lease_lock(gw)
    gw.when = "ghost"
    try:
        with pytest.raises(LockHeld):
            make_engine(gw, lock=lock).run(
                plan(update("hello:v2"), ScaleDeployment("missing", 1),
                     rollback=(ScaleDeployment("ghost", 0, missing_ok=True), update("hello:v1"))),
                journal(gw))
    finally:
        lock.release()
    assert images_written(gw) == ["hello:v2"]
    assert read_run(gw, "hello").step == "scale ghost to 0"


# ------------------------------------------------------------------ signals


def test_a_signal_during_a_wait_stops_at_the_next_safe_point_without_rollback():
    gw, _ = cluster()
    clock, stop = Clock(), StopFlag()
    engine = make_engine(gw, clock, stop=stop)

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if clock() > 1012 and stop.reason is None:
            stop._handle(signal.SIGINT, None)

    engine.ctx.sleep = sleep
    outcome = engine.run(plan(update("hello:v2"), Hold(60, "rollback window"),
                              update("hello:v3")), journal(gw))
    assert (outcome.verdict, outcome.exit_code) == (Verdict.INTERRUPTED, ExitCode.INTERRUPTED)
    assert outcome.message == ("interrupted during: hold for 60s: rollback window; nothing was "
                               "rolled back")
    assert outcome.next_command == "deployer rollback --app hello"
    assert results(engine) == [("update-deployment", "done"), ("hold", "interrupted")]
    assert engine.reporter.steps[-1].note == "interrupted by SIGINT"
    assert clock.sleeps == [5.0, 5.0, 5.0]
    assert images_written(gw) == ["hello:v2"]
    assert read_run(gw, "hello").phase == "interrupted"


class Signalled(FakeGateway):
    """SIGTERM arrives right after the write of ``after``."""

    def __init__(self, stop: StopFlag, after: str):
        super().__init__(deployment())
        self.stop, self.after = stop, after

    def replace_deployment(self, body):
        out = super().replace_deployment(body)
        if image_of(body) == self.after:
            self.stop._handle(signal.SIGTERM, None)
        return out


def test_atomic_rolls_back_and_says_which_version_serves_again():
    stop = StopFlag()
    gw, _ = cluster(Signalled(stop, "hello:v2"))
    engine = make_engine(gw, stop=stop, atomic=True)
    outcome = engine.run(plan(update("hello:v2"), AwaitRollout("hello", "2.0.0")), journal(gw))
    assert (outcome.verdict, outcome.exit_code) == (Verdict.ROLLED_BACK, ExitCode.INTERRUPTED)
    assert outcome.message == "interrupted by SIGTERM; --atomic: rolled back, 1.0.0 is serving"
    assert outcome.verified_version == "1.0.0"
    assert images_written(gw) == ["hello:v2", "hello:v1"]
    last = read_history(gw, "hello")[-1]
    assert (last.verdict, last.verified_version) == ("rolled-back", "1.0.0")


def test_atomic_rollback_that_fails_is_unsafe():
    stop = StopFlag()
    gw, _ = cluster(Signalled(stop, "hello:v2"))
    outcome = make_engine(gw, stop=stop, atomic=True).run(
        plan(update("hello:v2"), update("hello:v3"), rollback=(UndoRollout("hello", 7, "u"),)),
        journal(gw))
    assert (outcome.verdict, outcome.exit_code) == (Verdict.UNSAFE, ExitCode.UNSAFE)
    assert outcome.message.startswith("interrupted by SIGTERM, and the --atomic rollback "
                                      "failed: revision 7 of hello no longer exists")
    assert outcome.next_command == "deployer status --app hello"
    assert images_written(gw) == ["hello:v2"]
    assert read_history(gw, "hello")[-1].verdict == "unsafe"


def test_atomic_without_a_stop_flag_is_a_plain_interruption():
    class Interrupting(FakeGateway):
        def replace_deployment(self, body):
            raise Interrupted("interrupted by SIGTERM")

    gw, _ = cluster(Interrupting(deployment()))
    outcome = make_engine(gw, atomic=True).run(plan(update("hello:v2")), journal(gw))
    assert (outcome.verdict, outcome.exit_code) == (Verdict.INTERRUPTED, ExitCode.INTERRUPTED)
    assert "nothing was rolled back" in outcome.message


# ------------------------------------------------------------------ gates, resume, abort


GATED = plan(update("hello:v2"), AwaitRollout("hello", "2.0.0"), Gate("25% of clients"),
             update("hello:v3"), AwaitRollout("hello", "3.0.0"))


def test_a_gate_pauses_the_run_with_its_position_recorded():
    gw, _ = cluster()
    outcome = make_engine(gw).run(GATED, journal(gw))
    assert (outcome.verdict, outcome.exit_code) == (Verdict.PAUSED, ExitCode.PAUSED)
    assert int(ExitCode.PAUSED) == 5
    assert outcome.message == ("paused at the promotion gate (25% of clients); the analysed "
                               "steps passed")
    assert outcome.verified_version == "2.0.0"
    assert outcome.next_command == "deployer promote --app hello"
    assert outcome.other_commands == ("deployer abort --app hello",)
    assert images_written(gw) == ["hello:v2"]
    run = read_run(gw, "hello")
    assert (run.phase, run.position) == ("paused", 3)
    assert run.step == "pause at the promotion gate (25% of clients)"
    assert run.plan == GATED.to_json()
    assert read_history(gw, "hello") == []


def test_a_paused_run_resumes_after_its_gate_in_another_process():
    gw, _ = cluster()
    make_engine(gw).run(GATED, journal(gw))

    # `deployer promote`: a new process reads the run and its plan back from the cluster
    record = read_run(gw, "hello")
    resumed = Plan.from_json(APP, record.plan)
    engine = make_engine(gw)
    outcome = engine.run(resumed, Journal(gw, "hello", record), start=record.position)
    assert (outcome.verdict, outcome.exit_code) == (Verdict.PROMOTED, ExitCode.OK)
    assert outcome.verified_version == "3.0.0"
    assert results(engine) == [("update-deployment", "done"), ("await-rollout", "done")]
    assert images_written(gw) == ["hello:v2", "hello:v3"]  # v2 was not written again
    (last,) = read_history(gw, "hello")
    assert last.id == record.id and last.verdict == "promoted"
    assert last.undo == GATED.to_json()["rollback"]


def test_abort_runs_only_the_rollback_steps():
    gw, _ = cluster()
    make_engine(gw).run(GATED, journal(gw))
    record = read_run(gw, "hello")
    engine = make_engine(gw)
    outcome = engine.abort(Plan.from_json(APP, record.plan), Journal(gw, "hello", record),
                           "canary run aborted")
    assert (outcome.verdict, outcome.exit_code) == (Verdict.ROLLED_BACK, ExitCode.OK)
    assert outcome.message == "rolled back: canary run aborted"
    assert outcome.verified_version == "1.0.0"
    assert images_written(gw) == ["hello:v2", "hello:v1"]
    assert results(engine) == [("update-deployment", "done"), ("await-rollout", "done")]
    (last,) = read_history(gw, "hello")
    assert (last.verdict, last.message, last.undo) == ("rolled-back", "canary run aborted", None)


def test_an_abort_whose_rollback_fails_is_unsafe():
    gw, _ = cluster()
    outcome = make_engine(gw).abort(plan(rollback=(UndoRollout("hello", 9, "u"),)), journal(gw),
                                    "aborted by on-call")
    assert (outcome.verdict, outcome.exit_code) == (Verdict.UNSAFE, ExitCode.UNSAFE)
    assert outcome.message.startswith("the rollback failed: revision 9 of hello")
    assert outcome.next_command == "deployer status --app hello"
    assert read_history(gw, "hello")[-1].verdict == "unsafe"


def test_the_report_says_when_each_step_started_and_finished_on_the_wall_clock():
    gw, controller = cluster()
    controller.versions["hello:v2"] = "9.9.9"
    clock = Clock()
    engine = make_engine(gw, clock)
    engine.reporter.wall = lambda: 1_893_456_000.0 + (clock() - 1000.0)  # 2030-01-01T00:00Z
    outcome = engine.run(plan(update("hello:v2"), AwaitRollout("hello", "2.0.0")), journal(gw))
    steps = engine.reporter.to_json(outcome)["steps"]
    failed = steps[1]
    assert failed["result"] == "failed" and failed["seconds"] > 0
    assert failed["startedAt"].startswith("2030-01-01T00:00:")
    took = parse(failed["finishedAt"]) - parse(failed["startedAt"])  # type: ignore[operator]
    assert took == pytest.approx(failed["seconds"], abs=0.01)
    assert [s["finishedAt"] <= n["startedAt"] for s, n in zip(steps, steps[1:], strict=False)] == \
        [True] * (len(steps) - 1)
