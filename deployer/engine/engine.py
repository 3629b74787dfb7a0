"""The one loop that changes the cluster: it executes a plan's steps in order.

Strategies only plan. The engine passes a safe point before every step, records
progress in the run journal (so another process can see it and continue), runs each
step through its handler, and when a step fails it runs the plan's rollback steps and
reports whether the stable version is serving again. Outcomes (verdict, exit code,
the next command to type) are built here and nowhere else.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from deployer.engine import deployments, holds, services, traffic
from deployer.engine.context import RunSettings, StepContext
from deployer.engine.pausing import Pausing, RunClock, release
from deployer.errors import (
    ApiRejected,
    ClusterUnreachable,
    DeployerError,
    Interrupted,
    LockHeld,
    StepFailed,
    Undecided,
    UnsafeState,
)
from deployer.exitcodes import ExitCode
from deployer.model import (
    Analyse,
    ApplyDeployment,
    AwaitRollout,
    DeleteDeployment,
    Gate,
    Hold,
    KeepOld,
    Outcome,
    Plan,
    RestartDeployment,
    ScaleDeployment,
    SetRolloutStrategy,
    SetServiceAffinity,
    SetServiceSelector,
    Step,
    UndoRollout,
    UpdateDeployment,
    Verdict,
    VerifyTraffic,
)
from deployer.record import set_pause

if TYPE_CHECKING:
    from deployer.gateway import ClusterGateway
    from deployer.interrupt import StopFlag
    from deployer.lock import Lock
    from deployer.record import Journal
    from deployer.report import Reporter

ATOMIC_ROLLBACK_BUDGET = 300.0  # seconds an --atomic rollback may take after a signal
ROLLBACK_BUDGET = 300.0  # seconds a rollback may take, even after the run's own deadline

Handler = Callable[[StepContext, Any], "str | None"]
HANDLERS: dict[type[Step], Handler] = {
    UpdateDeployment: deployments.update,
    RestartDeployment: deployments.restart,
    SetRolloutStrategy: deployments.set_strategy,
    UndoRollout: deployments.undo,
    AwaitRollout: deployments.await_rollout,
    ApplyDeployment: deployments.apply,
    ScaleDeployment: deployments.scale,
    DeleteDeployment: deployments.delete,
    SetServiceAffinity: services.affinity,
    SetServiceSelector: services.selector,
    VerifyTraffic: traffic.verify,
    Analyse: holds.analyse,
    Hold: holds.hold,
    KeepOld: holds.keep_old,
}


class Engine:
    def __init__(self, gateway: ClusterGateway, reporter: Reporter, settings: RunSettings, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 lock: Lock | None = None, stop: StopFlag | None = None):
        self.lock = lock
        self.stop = stop
        self.reporter = reporter
        self.settings = settings
        # deadlines are kept on the run's clock, which stops while the run is held
        self.clock = RunClock(clock)
        self.ctx = StepContext(gateway, reporter, settings, self.checkpoint, self._sub_step,
                               clock=self.clock, wall=wall, sleep=sleep,
                               confirm=self._confirm_lock)
        self.pausing: Pausing | None = None
        self._holdable = False  # only the forward steps hold; a rollback never does
        self._inside: Step | None = None  # the step whose handler runs now

    @property
    def verified_version(self) -> str | None:
        return self.ctx.results.verified_version

    # ------------------------------------------------------------------ the plan

    def run(self, plan: Plan, journal: Journal, *, start: int = 0) -> Outcome:
        """Execute ``plan.steps[start:]``; on failure run the plan's rollback steps."""
        try:
            return self._run(plan, journal, start)
        finally:
            if self.pausing is not None:
                self.pausing.close()

    def _run(self, plan: Plan, journal: Journal, start: int) -> Outcome:
        self.reporter.heading(f"Deploying: {plan.summary}")
        self._begin(plan, journal)
        for warning in plan.warnings:
            self.reporter.warn(warning)
        for note in plan.notes:
            self.reporter.note(note)
        if journal.record.plan is None:
            journal.record = journal.record.with_(plan=plan.to_json())
        if start and journal.record.verified_version and not self.ctx.results.verified_version:
            # continued after a gate: what was verified before it stands until a step
            # verifies again (a rolling update paused after its analysis has none left)
            self.ctx.results.verified_version = journal.record.verified_version
        try:
            release(self.ctx.gateway, journal, self.reporter)  # held by a process now gone
            self._holdable = True
            for index in range(start, len(plan.steps)):
                step = plan.steps[index]
                self.checkpoint()
                journal.update(step=step.describe(), phase="running", position=index)
                if isinstance(step, Gate):
                    return self._pause(plan, journal, step, index)
                self._hold_if_asked(step.describe(), inside=None)
                try:
                    self.execute(step)
                except Undecided as undecided:
                    # Inconclusive: neither promote nor roll back; a person decides
                    self.reporter.warn(undecided.message)
                    return self._pause(plan, journal, Gate(undecided.message), index,
                                       undecided=True)
        except StepFailed as failure:
            return self._roll_back(plan, journal, failure)
        except LockHeld:
            raise  # someone else owns the app now: not one more write
        except Interrupted:
            if self.settings.atomic and self.stop is not None and self.stop.signals == 1:
                return self._atomic_rollback(plan, journal)
            journal_safe(journal, phase="interrupted")
            window = plan.steps[index]
            if isinstance(window, KeepOld):
                return self._interrupted_window(plan, window)
            held = journal.record.held
            return Outcome(Verdict.INTERRUPTED, ExitCode.INTERRUPTED,
                           f"interrupted during: {journal.record.step}"
                           + (" while paused" if held else "") + "; nothing was rolled back",
                           next_command=f"deployer rollback {_app(plan)}",
                           other_commands=(f"deployer resume {_app(plan)}",) if held else ())
        except ClusterUnreachable as exc:
            # Nothing destructive without the API: the run stays recorded at its step.
            journal_safe(journal, phase="error", message=exc.message)
            return Outcome(Verdict.UNKNOWN, ExitCode.UNREACHABLE,
                           f"the API server stopped answering during '{journal.record.step}': "
                           f"{exc.message}; the outcome is unknown and nothing was rolled back",
                           next_command=f"deployer status {_app(plan)}",
                           other_commands=(f"deployer rollback {_app(plan)}",
                                           "the same command again, to continue the run"))
        except DeployerError as exc:
            journal_safe(journal, phase="error", message=exc.message)
            raise
        finally:
            self._holdable = False
        side = self.ctx.results.old_side
        journal.finish(phase="done", verdict=Verdict.PROMOTED.value,
                       verified_version=self.verified_version, old_side=side)
        message = plan.done or f"{plan.app.name} is running {journal.record.to_image}"
        if side:
            message += (f"; {side['deployment']} stays up until {side['until']} as the "
                        "rollback window (rollback switches back to it at once, promote ends "
                        "the window)")
        return Outcome(Verdict.PROMOTED, ExitCode.OK, message,
                       verified_version=self.verified_version,
                       downtime_seconds=self.ctx.results.downtime,
                       other_commands=(f"deployer rollback {_app(plan)}",
                                       f"deployer promote {_app(plan)}") if side else ())

    def abort(self, plan: Plan, journal: Journal, why: str) -> Outcome:
        """Run only the rollback steps (``deployer abort``, or rollback of an unfinished run)."""
        self.reporter.heading(f"Aborting: {why}")
        self._begin(plan, journal)
        failed = self._rollback_steps(plan, journal)
        if failed:
            return Outcome(Verdict.UNSAFE, ExitCode.UNSAFE, f"the rollback failed: {failed}",
                           next_command=f"deployer status {_app(plan)}")
        journal.finish(phase="done", verdict=Verdict.ROLLED_BACK.value, message=why,
                       verified_version=self.verified_version)
        return Outcome(Verdict.ROLLED_BACK, ExitCode.OK, f"rolled back: {why}",
                       verified_version=self.verified_version)

    def _begin(self, plan: Plan, journal: Journal) -> None:
        if self.lock is not None and self.lock.note:
            self.reporter.note(self.lock.note)
        journal.before_write = self._confirm_lock
        self.pausing = Pausing(self.ctx.gateway, self.reporter, journal, plan, self.clock,
                               sleep=self.ctx.sleep, wall=self.ctx.wall,
                               stop_check=self._check_stop, lock_check=self._check_lock,
                               lock_confirm=self._confirm_lock)

    def _hold_if_asked(self, step: str, *, inside: str | None) -> None:
        """Hold here if ``deployer pause`` asked for it (see pausing)."""
        if not self._holdable or self.pausing is None:
            return
        request = self.pausing.asked()
        if request is not None:
            self.pausing.hold(request, step, inside=inside)

    def _interrupted_window(self, plan: Plan, window: KeepOld) -> Outcome:
        """A signal in blue-green's rollback window: the release is switched and verified,
        so nothing is undone; the two ways on are promote (end the window) or rollback."""
        return Outcome(Verdict.INTERRUPTED, ExitCode.INTERRUPTED,
                       f"interrupted in the rollback window: {window.new_deployment} is live "
                       f"and was verified, {window.old_deployment} is still up; nothing was "
                       "rolled back", verified_version=self.verified_version,
                       next_command=f"deployer promote {_app(plan)}",
                       other_commands=(f"deployer rollback {_app(plan)}",))

    def _pause(self, plan: Plan, journal: Journal, gate: Gate, index: int, *,
               undecided: bool = False) -> Outcome:
        journal.update(phase="paused", position=index + 1, step=gate.describe(),
                       verified_version=self.verified_version)
        # the gate holds the run itself: a pause asked meanwhile is answered by it
        with contextlib.suppress(DeployerError):
            set_pause(self.ctx.gateway, journal.app, None)
        self.reporter.heading(f"Paused at the promotion gate: {gate.label}")
        message = (f"paused: {gate.label}; neither promoted nor rolled back: promote goes "
                   "on from the next step, abort rolls back") if undecided else \
            f"paused at the promotion gate ({gate.label}); the analysed steps passed"
        return Outcome(Verdict.PAUSED, ExitCode.PAUSED, message,
                       verified_version=self.verified_version,
                       next_command=f"deployer promote {_app(plan)}",
                       other_commands=(f"deployer abort {_app(plan)}",))

    def _atomic_rollback(self, plan: Plan, journal: Journal) -> Outcome:
        """--atomic: a signal stopped the run at a safe point; undo it before exiting."""
        assert self.stop is not None
        self.stop.acknowledge()
        reason = self.stop.reason
        self.reporter.heading(f"Interrupted by {reason}: --atomic, rolling back before exiting "
                              "(a second signal stops at once)")
        journal_safe(journal, phase="rolling-back", message=f"interrupted by {reason}; "
                                                            "--atomic rollback")
        self.ctx.results.verified_version = None
        self.settings.deadline = self.clock() + ATOMIC_ROLLBACK_BUDGET
        try:
            failed = self._rollback_steps(plan, journal, interruptible=True)
        except Interrupted:
            journal_safe(journal, phase="interrupted")
            return Outcome(Verdict.INTERRUPTED, ExitCode.INTERRUPTED,
                           f"interrupted again during the --atomic rollback, at: "
                           f"{journal.record.step}", next_command=f"deployer rollback "
                                                                  f"{_app(plan)}")
        if failed:
            return Outcome(Verdict.UNSAFE, ExitCode.UNSAFE,
                           f"interrupted by {reason}, and the --atomic rollback failed: {failed}",
                           next_command=f"deployer status {_app(plan)}")
        message = f"interrupted by {reason}; --atomic: rolled back"
        journal.finish(phase="done", verdict=Verdict.ROLLED_BACK.value, message=message,
                       verified_version=self.verified_version)
        if self.verified_version:
            message += f", {self.verified_version} is serving"
        return Outcome(Verdict.ROLLED_BACK, ExitCode.INTERRUPTED, message,
                       verified_version=self.verified_version)

    def _rollback_steps(self, plan: Plan, journal: Journal, *,
                        interruptible: bool = False) -> str | None:
        """Run the plan's rollback steps; return why they failed (recorded), or None."""
        self._holdable = False
        self.ctx.restoring = True
        try:
            release(self.ctx.gateway, journal, self.reporter)
            for step in plan.rollback:
                journal.update(step=step.describe(), phase="rolling-back")
                self.execute(step)
        except LockHeld:
            raise  # the app belongs to another run now: not one more write
        except (StepFailed, DeployerError) as exc:
            if interruptible and isinstance(exc, Interrupted):
                raise
            message = exc.message
            journal_safe(journal, phase="failed", verdict=Verdict.UNSAFE.value,
                         message=f"rollback failed: {message}", finish=True)
            return message
        return None

    def _roll_back(self, plan: Plan, journal: Journal, failure: StepFailed) -> Outcome:
        if failure.evaluation:
            self.reporter.measured(failure.evaluation.measurements)
        self._confirm_lock()  # a run that lost its lock leaves the app to the new holder
        self.reporter.heading(f"Release rejected: {failure.message}")
        self.reporter.heading("Rolling back")
        journal_safe(journal, phase="rolling-back", message=failure.message)
        self.ctx.results.verified_version = None
        # The rollback gets its own budget: a run that timed out must still restore.
        self.settings.deadline = max(self.settings.deadline, self.clock() + ROLLBACK_BUDGET)
        failed = self._rollback_steps(plan, journal)
        if failed:
            return Outcome(Verdict.UNSAFE, ExitCode.UNSAFE,
                           f"release rejected ({failure.message}) and the rollback failed: "
                           f"{failed}", next_command=f"deployer status {_app(plan)}")
        verdict, code = (Verdict.TIMEOUT, ExitCode.TIMEOUT) if failure.timed_out else \
            (Verdict.REJECTED, ExitCode.REJECTED)
        journal.finish(phase="done", verdict=verdict.value, message=failure.message,
                       verified_version=self.verified_version)
        restored = f"; rolled back, {self.verified_version} is serving" \
            if self.verified_version else "; rolled back"
        return Outcome(verdict, code, failure.message + restored,
                       verified_version=self.verified_version,
                       downtime_seconds=self.ctx.results.downtime)

    # --------------------------------------------------------------------- steps

    def _check_lock(self) -> None:
        if self.lock is not None:
            self.lock.ensure_held()

    def _confirm_lock(self) -> None:
        """Before a journal write: read the Lease, never act on a lock another run holds."""
        if self.lock is not None:
            self.lock.confirm_held()

    def _check_stop(self) -> None:
        if self.stop is not None:
            self.stop.check()

    def checkpoint(self) -> None:
        """A safe point: stop if asked to, and never write without holding the lock.
        Waiting for a rollout or holding between canary steps, hold if asked to."""
        self._check_stop()
        self._check_lock()
        step = self._inside
        if isinstance(step, AwaitRollout):
            self._hold_if_asked(step.describe(), inside=step.deployment)
        elif isinstance(step, Hold):
            self._hold_if_asked(step.describe(), inside=None)

    def _sub_step(self, step: Step) -> None:
        """A step a handler runs inside its own (a canary resized during its analysis).

        No journal write precedes it, so it reads the Lease itself: a run whose lock was
        taken over (``rollback --force``) must not write once more.
        """
        self._confirm_lock()
        self.execute(step)

    def execute(self, step: Step) -> None:
        """Run one step through its handler, reporting its result."""
        self.checkpoint()
        handler = HANDLERS.get(type(step))
        if handler is None:
            raise UnsafeState(f"deployer cannot execute step {step.kind}", id="unknown-step")
        record = self.reporter.step_started(step)
        outer, self._inside = self._inside, step
        try:
            note = handler(self.ctx, step)
        except StepFailed as exc:
            self.reporter.step_finished(record, "failed", exc.message)
            raise
        except ApiRejected as exc:
            # A refused write (admission webhook, validation) applied nothing: the release
            # is rejected like any other failure, without a retry.
            self.reporter.step_finished(record, "failed", exc.message)
            raise StepFailed(f"the API server refused the change: {exc.message}") from exc
        except Interrupted as exc:
            self.reporter.step_finished(record, "interrupted", exc.message)
            raise
        except Undecided as exc:
            self.reporter.step_finished(record, "inconclusive", exc.message)
            raise
        except DeployerError as exc:
            self.reporter.step_finished(record, "error", exc.message)
            raise
        finally:
            self._inside = outer
        self.reporter.step_finished(record, "done", note)


def _app(plan: Plan) -> str:
    """The app as a command names it; the reporter adds where it is (-n, --context)."""
    return f"--app {plan.app.name}"


def journal_safe(journal: Journal, *, finish: bool = False, **changes: Any) -> None:
    """Record a state change but never let a failing write hide the original problem."""
    try:
        if finish:
            journal.finish(**changes)
        else:
            journal.update(**changes)
    except DeployerError:
        pass
