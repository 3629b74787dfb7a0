"""The one loop that changes the cluster: it executes a plan's steps in order.

Strategies only plan. The runner applies each step, records progress on the
Deployment (so another process can see it), waits on watches rather than
sleeping, and when a step fails it runs the plan's rollback steps and checks
that the stable version is serving again before it reports.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deployer.errors import Conflict, DeadlineExceeded, DeployerError, Interrupted, UnsafeState
from deployer.exitcodes import ExitCode
from deployer.health.pods import not_ready_reasons
from deployer.health.verifier import Evaluation, RolloutVerifier, VerifyOptions, selector_of
from deployer.model import (
    CHANGE_CAUSE_ANNOTATION,
    REVISION_ANNOTATION,
    AwaitRollout,
    Outcome,
    Phase,
    Plan,
    PodFailure,
    SetRolloutStrategy,
    Step,
    UndoRollout,
    UpdateDeployment,
    Verdict,
)
from deployer.record import Journal
from deployer.report import Reporter

if TYPE_CHECKING:
    from deployer.cluster import Gateway

CONFLICT_RETRIES = 5


class StepFailed(Exception):
    def __init__(self, message: str, evaluation: Evaluation | None = None,
                 timed_out: bool = False):
        super().__init__(message)
        self.message = message
        self.evaluation = evaluation
        self.timed_out = timed_out


@dataclass
class RunSettings:
    deadline: float  # monotonic time by which the whole run must end
    progress_deadline: float | None = None  # seconds new pods may take; default: the Deployment's
    verify: VerifyOptions = VerifyOptions()
    poll_interval: float = 2.0


class Runner:
    def __init__(self, gateway: Gateway, reporter: Reporter, settings: RunSettings, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        self.gateway = gateway
        self.reporter = reporter
        self.settings = settings
        self.clock = clock
        self.wall = wall
        self.downtime: float | None = None
        self.verified_version: str | None = None

    # ------------------------------------------------------------------ the plan

    def run(self, plan: Plan, journal: Journal) -> Outcome:
        self.reporter.heading(f"Deploying: {plan.summary}")
        try:
            for step in plan.steps:
                journal.update(step=step.describe(), phase="running")
                self.execute(step)
        except StepFailed as failure:
            return self._roll_back(plan, journal, failure)
        except Interrupted:
            journal_safe(journal, phase="interrupted", verdict=Verdict.INTERRUPTED.value)
            return Outcome(Verdict.INTERRUPTED, ExitCode.INTERRUPTED,
                           f"interrupted during: {journal.record.step}",
                           next_command=f"deployer rollback --app {plan.app.name} "
                                        f"-n {plan.app.namespace}")
        except DeployerError as exc:
            journal_safe(journal, phase="error", message=exc.message)
            raise
        journal.finish(phase="done", verdict=Verdict.PROMOTED.value,
                       verified_version=self.verified_version)
        return Outcome(Verdict.PROMOTED, ExitCode.OK,
                       f"{plan.app.name} is running {journal.record.to_image}",
                       verified_version=self.verified_version, downtime_seconds=self.downtime)

    def _roll_back(self, plan: Plan, journal: Journal, failure: StepFailed) -> Outcome:
        if failure.evaluation:
            self.reporter.measured(failure.evaluation.measurements)
        self.reporter.heading(f"Release rejected: {failure.message}")
        self.reporter.heading("Rolling back")
        journal_safe(journal, phase="rolling-back", message=failure.message)
        self.verified_version = None
        try:
            # The rollback gets its own budget: a run that timed out must still restore.
            self.settings.deadline = max(self.settings.deadline, self.clock() + 300)
            for step in plan.rollback:
                journal.update(step=step.describe())
                self.execute(step)
        except (StepFailed, DeployerError) as exc:
            message = getattr(exc, "message", str(exc))
            journal_safe(journal, phase="failed", verdict=Verdict.UNSAFE.value,
                         message=f"rollback failed: {message}", finish=True)
            return Outcome(Verdict.UNSAFE, ExitCode.UNSAFE,
                           f"release rejected ({failure.message}) and the rollback failed: "
                           f"{message}",
                           next_command=f"deployer status --app {plan.app.name} "
                                        f"-n {plan.app.namespace}")
        journal.finish(phase="done", verdict=Verdict.REJECTED.value, message=failure.message,
                       verified_version=self.verified_version)
        code = ExitCode.TIMEOUT if failure.timed_out else ExitCode.REJECTED
        restored = f"; rolled back, {self.verified_version} is serving" \
            if self.verified_version else "; rolled back"
        return Outcome(Verdict.REJECTED if code == ExitCode.REJECTED else Verdict.TIMEOUT,
                       code, failure.message + restored,
                       verified_version=self.verified_version, downtime_seconds=self.downtime)

    # --------------------------------------------------------------------- steps

    def execute(self, step: Step) -> None:
        record = self.reporter.step_started(step)
        try:
            note = self._dispatch(step)
        except StepFailed as exc:
            self.reporter.step_finished(record, "failed", exc.message)
            raise
        except DeployerError as exc:
            self.reporter.step_finished(record, "error", exc.message)
            raise
        self.reporter.step_finished(record, "done", note)

    def _dispatch(self, step: Step) -> str | None:
        if isinstance(step, UpdateDeployment):
            return self._update(step)
        if isinstance(step, SetRolloutStrategy):
            return self._set_strategy(step.deployment, step.strategy)
        if isinstance(step, UndoRollout):
            return self._undo(step)
        if isinstance(step, AwaitRollout):
            return self._await(step)
        raise UnsafeState(f"the runner cannot execute step {step.kind}")

    def _read(self, name: str) -> dict[str, Any]:
        dep = self.gateway.get_deployment(name)
        if dep is None:
            raise StepFailed(f"deployment {name} no longer exists")
        return dep

    def _write(self, name: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> bool:
        """Read, compute the new object, write it conditionally; on 409 read again.

        ``change`` returns None when the object already is as wanted: re-running a
        step (a retry, a resumed run) never applies it twice.
        """
        for _ in range(CONFLICT_RETRIES):
            dep = self._read(name)
            body = change(copy.deepcopy(dep))
            if body is None:
                return False
            try:
                self.gateway.replace_deployment(body)
                return True
            except Conflict:
                continue
        raise UnsafeState(f"deployment {name} kept changing while deployer tried to update it",
                          id="conflict")

    def _update(self, step: UpdateDeployment) -> str | None:
        def change(dep: dict[str, Any]) -> dict[str, Any] | None:
            containers = dep["spec"]["template"]["spec"]["containers"]
            target = next(c for c in containers if c["name"] == step.container)
            same_strategy = step.strategy is None or _strategy_matches(
                dep["spec"].get("strategy") or {}, step.strategy)
            if target["image"] == step.image and same_strategy:
                return None
            target["image"] = step.image
            if step.strategy is not None:
                dep["spec"]["strategy"] = _clean_strategy(step.strategy)
            dep["metadata"].setdefault("annotations", {})[CHANGE_CAUSE_ANNOTATION] = \
                step.change_cause
            return dep

        changed = self._write(step.deployment, change)
        return None if changed else "already set; nothing to change"

    def _set_strategy(self, name: str, strategy: dict[str, Any]) -> str | None:
        def change(dep: dict[str, Any]) -> dict[str, Any] | None:
            if _strategy_matches(dep["spec"].get("strategy") or {}, strategy):
                return None
            dep["spec"]["strategy"] = _clean_strategy(strategy)
            return dep

        return None if self._write(name, change) else "already set"

    def _undo(self, step: UndoRollout) -> str | None:
        dep = self._read(step.deployment)
        uid = dep["metadata"].get("uid")
        wanted = None
        for rs in self.gateway.list_replicasets(selector_of(dep)):
            owners = rs["metadata"].get("ownerReferences") or []
            revision = (rs["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION)
            if any(o.get("uid") == uid for o in owners) and revision == str(step.to_revision):
                wanted = rs
        if wanted is None:
            raise StepFailed(f"revision {step.to_revision} of {step.deployment} no longer exists "
                             "(revisionHistoryLimit may have pruned it)")
        template = copy.deepcopy(wanted["spec"]["template"])
        (template["metadata"].get("labels") or {}).pop("pod-template-hash", None)

        def change(current: dict[str, Any]) -> dict[str, Any] | None:
            if _same_template(current["spec"]["template"], template):
                return None
            current["spec"]["template"] = template
            current["metadata"].setdefault("annotations", {})[CHANGE_CAUSE_ANNOTATION] = \
                step.change_cause
            return current

        changed = self._write(step.deployment, change)
        return None if changed else "already at that revision"

    def _await(self, step: AwaitRollout) -> str | None:
        start_wall = self.wall()
        start = self.clock()
        dep = self._read(step.deployment)
        progress = self.settings.progress_deadline or float(
            dep["spec"].get("progressDeadlineSeconds", 600))
        deadline = min(start + progress, self.settings.deadline)
        timed_out_overall = self.settings.deadline <= start + progress
        verifier = RolloutVerifier(self.gateway, step.deployment, step.expected_version,
                                   clock=self.clock, since=start_wall,
                                   options=self.settings.verify)
        selector = selector_of(dep)
        evaluation = None
        unavailable_since: float | None = None
        try:
            with self.gateway.changes(deployment=step.deployment, pod_selector=selector) as feed:
                while True:
                    evaluation = verifier.evaluate()
                    self.reporter.measured(evaluation.measurements)
                    if step.measure_downtime and evaluation.deployment is not None:
                        available = (evaluation.deployment.get("status") or {}).get(
                            "availableReplicas", 0)
                        if not available and unavailable_since is None:
                            unavailable_since = self.clock()
                        elif available and unavailable_since is not None and \
                                self.downtime is None:
                            self.downtime = self.clock() - unavailable_since
                    if evaluation.phase is Phase.SUCCESSFUL:
                        if step.expected_version and verifier.version_check is not None:
                            self.verified_version = step.expected_version
                        return evaluation.message
                    if evaluation.completed:
                        self._explain(evaluation.failures)
                        raise StepFailed(evaluation.message, evaluation)
                    self.reporter.waiting(evaluation.message)
                    remaining = deadline - self.clock()
                    if remaining <= 0:
                        break
                    # HTTP samples need a steady pace; otherwise a change wakes us at once.
                    wait = 1.0 if "verified as" in evaluation.message else \
                        self.settings.poll_interval
                    feed.wait(min(wait, remaining))
        finally:
            verifier.close()
        raise self._deadline_failure(step, dep, progress, evaluation, timed_out_overall)

    def _deadline_failure(self, step: AwaitRollout, dep: dict[str, Any], progress: float,
                          evaluation: Evaluation | None, overall: bool) -> StepFailed:
        pods = []
        if evaluation is not None and evaluation.deployment is not None:
            pods = RolloutVerifier(self.gateway, step.deployment, None, clock=self.clock,
                                   since=0).new_pods(evaluation.deployment) or []
        reasons = not_ready_reasons(pods)
        failures = [PodFailure(p["metadata"]["name"], None, "NotReady", "never became Ready")
                    for p in pods if any(r.startswith(p["metadata"]["name"]) for r in reasons)]
        self._explain(failures)
        probe = next((e for f in self.reporter.failures for e in f.events if "probe" in e.lower()),
                     None)
        what = "the run's --timeout" if overall else f"{progress:.0f}s"
        message = f"{step.deployment} did not become healthy within {what}: " + (
            evaluation.message if evaluation else "no progress")
        if probe:
            message += f"; {probe}"
        return StepFailed(message, evaluation, timed_out=overall)

    def _explain(self, failures: tuple[PodFailure, ...] | list[PodFailure]) -> None:
        """Attach the events and last log lines of each failed pod to the report."""
        detailed = []
        for f in failures[:5]:
            events = tuple(
                f"{e.get('reason')}: {e.get('message', '').strip()}"
                for e in self.gateway.list_events(f.pod)[-5:])
            logs: tuple[str, ...] = ()
            if f.container:
                crashed = f.reason == "CrashLoopBackOff"
                logs = tuple(self.gateway.pod_logs(f.pod, f.container, previous=crashed))
            detailed.append(PodFailure(f.pod, f.container, f.reason, f.message, f.image,
                                       f.exit_code, events, logs))
        self.reporter.failed_pods(detailed)


def journal_safe(journal: Journal, *, finish: bool = False, **changes: Any) -> None:
    """Record a state change but never let a failing write hide the original problem."""
    try:
        if finish:
            journal.finish(**changes)
        else:
            journal.update(**changes)
    except DeployerError:
        pass


def _clean_strategy(strategy: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in strategy.items() if v is not None}
    if out.get("type") == "Recreate":
        out.pop("rollingUpdate", None)
    return out


def _strategy_matches(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    wanted = _clean_strategy(wanted)
    if current.get("type", "RollingUpdate") != wanted.get("type", "RollingUpdate"):
        return False
    want_rolling = wanted.get("rollingUpdate") or {}
    have_rolling = current.get("rollingUpdate") or {}
    return all(str(have_rolling.get(k)) == str(v) for k, v in want_rolling.items())


def _same_template(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def strip(t: dict[str, Any]) -> dict[str, Any]:
        t = copy.deepcopy(t)
        (t.get("metadata") or {}).get("labels", {}).pop("pod-template-hash", None)
        return t

    return strip(a) == strip(b)


def deadline_error(what: str) -> DeadlineExceeded:
    return DeadlineExceeded(f"timed out {what}")
