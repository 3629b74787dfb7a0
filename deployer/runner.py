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

from deployer.analysis import TrafficVerifier
from deployer.errors import (
    ApiRejected,
    ClusterUnreachable,
    Conflict,
    DeployerError,
    Interrupted,
    LockHeld,
    StepFailed,
    UnsafeState,
)
from deployer.exitcodes import ExitCode
from deployer.health.pods import not_ready_reasons
from deployer.health.rollout import rollout_status
from deployer.health.verifier import (
    Evaluation,
    RolloutVerifier,
    VerifyOptions,
    is_ready,
    selector_of,
)
from deployer.interrupt import StopFlag
from deployer.lock import Lock
from deployer.model import (
    CHANGE_CAUSE_ANNOTATION,
    REVISION_ANNOTATION,
    ApplyDeployment,
    AwaitRollout,
    DeleteDeployment,
    Gate,
    Hold,
    Outcome,
    Phase,
    Plan,
    PodFailure,
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
from deployer.outage import Outage
from deployer.record import Journal
from deployer.report import Reporter
from deployer.weights import split

if TYPE_CHECKING:
    from deployer.cluster import Gateway

CONFLICT_RETRIES = 5
KUBE_PROXY_SYNC = 2.0


@dataclass
class RunSettings:
    deadline: float  # monotonic time by which the whole run must end
    progress_deadline: float | None = None  # seconds new pods may take; default: the Deployment's
    verify: VerifyOptions = VerifyOptions()
    poll_interval: float = 2.0
    client_addresses: tuple[str, ...] = ()
    atomic: bool = False  # on SIGINT/SIGTERM, roll back before exiting


ATOMIC_ROLLBACK_BUDGET = 300.0  # seconds an --atomic rollback may take after a signal


class Runner:
    def __init__(self, gateway: Gateway, reporter: Reporter, settings: RunSettings, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 lock: Lock | None = None, stop: StopFlag | None = None):
        self.lock = lock
        self.stop = stop
        self.gateway = gateway
        self.reporter = reporter
        self.settings = settings
        self.clock = clock
        self.wall = wall
        self.downtime: float | None = None
        self.verified_version: str | None = None
        self.traffic = TrafficVerifier(self)

    # ------------------------------------------------------------------ the plan

    def run(self, plan: Plan, journal: Journal, *, start: int = 0) -> Outcome:
        """Execute ``plan.steps[start:]``; on failure run the plan's rollback steps."""
        self.reporter.heading(f"Deploying: {plan.summary}")
        self._lock_note()
        journal.before_write = self._check_lock
        for note in plan.notes:
            self.reporter.note(note)
        if journal.record.plan is None:
            journal.record = journal.record.with_(plan=plan.to_json())
        try:
            for index in range(start, len(plan.steps)):
                step = plan.steps[index]
                self.checkpoint()
                journal.update(step=step.describe(), phase="running", position=index)
                if isinstance(step, Gate):
                    return self._pause(plan, journal, step, index)
                self.execute(step)
        except StepFailed as failure:
            return self._roll_back(plan, journal, failure)
        except LockHeld:
            raise  # someone else owns the app now: not one more write
        except Interrupted:
            if self.settings.atomic and self.stop is not None and self.stop.signals == 1:
                return self._atomic_rollback(plan, journal)
            journal_safe(journal, phase="interrupted")
            return Outcome(Verdict.INTERRUPTED, ExitCode.INTERRUPTED,
                           f"interrupted during: {journal.record.step}; nothing was rolled back",
                           next_command=f"deployer rollback --app {plan.app.name} "
                                        f"-n {plan.app.namespace}")
        except ClusterUnreachable as exc:
            # Nothing destructive without the API: the run stays recorded at its step.
            journal_safe(journal, phase="error", message=exc.message)
            app = f"--app {plan.app.name} -n {plan.app.namespace}"
            return Outcome(Verdict.UNKNOWN, ExitCode.UNREACHABLE,
                           f"the API server stopped answering during '{journal.record.step}': "
                           f"{exc.message}; the outcome is unknown and nothing was rolled back",
                           next_command=f"deployer status {app}; then re-run the same command "
                                        f"to continue, or deployer rollback {app}")
        except DeployerError as exc:
            journal_safe(journal, phase="error", message=exc.message)
            raise
        journal.finish(phase="done", verdict=Verdict.PROMOTED.value,
                       verified_version=self.verified_version)
        return Outcome(Verdict.PROMOTED, ExitCode.OK,
                       f"{plan.app.name} is running {journal.record.to_image}",
                       verified_version=self.verified_version, downtime_seconds=self.downtime)

    def _pause(self, plan: Plan, journal: Journal, gate: Gate, index: int) -> Outcome:
        journal.update(phase="paused", position=index + 1, step=gate.describe())
        app = f"--app {plan.app.name} -n {plan.app.namespace}"
        self.reporter.heading(f"Paused at the promotion gate: {gate.label}")
        return Outcome(Verdict.PAUSED, ExitCode.PAUSED,
                       f"paused at the promotion gate ({gate.label}); the analysed steps passed",
                       verified_version=self.verified_version,
                       next_command=f"deployer promote {app}   (or: deployer abort {app})")

    def abort(self, plan: Plan, journal: Journal, why: str) -> Outcome:
        """Run only the rollback steps (``deployer abort``, or rollback of an unfinished run)."""
        self.reporter.heading(f"Aborting: {why}")
        self._lock_note()
        journal.before_write = self._check_lock
        failed = self._rollback_steps(plan, journal)
        if failed:
            return Outcome(Verdict.UNSAFE, ExitCode.UNSAFE, f"the rollback failed: {failed}",
                           next_command=f"deployer status --app {plan.app.name} "
                                        f"-n {plan.app.namespace}")
        journal.finish(phase="done", verdict=Verdict.ROLLED_BACK.value, message=why,
                       verified_version=self.verified_version)
        return Outcome(Verdict.ROLLED_BACK, ExitCode.OK, f"rolled back: {why}",
                       verified_version=self.verified_version)

    def _atomic_rollback(self, plan: Plan, journal: Journal) -> Outcome:
        """--atomic: a signal stopped the run at a safe point; undo it before exiting."""
        assert self.stop is not None
        self.stop.acknowledge()
        reason = self.stop.reason
        app = f"--app {plan.app.name} -n {plan.app.namespace}"
        self.reporter.heading(f"Interrupted by {reason}: --atomic, rolling back before exiting "
                              "(a second signal stops at once)")
        journal_safe(journal, phase="rolling-back", message=f"interrupted by {reason}; "
                                                            "--atomic rollback")
        self.verified_version = None
        self.settings.deadline = self.clock() + ATOMIC_ROLLBACK_BUDGET
        try:
            failed = self._rollback_steps(plan, journal, interruptible=True)
        except Interrupted:
            journal_safe(journal, phase="interrupted")
            return Outcome(Verdict.INTERRUPTED, ExitCode.INTERRUPTED,
                           f"interrupted again during the --atomic rollback, at: "
                           f"{journal.record.step}", next_command=f"deployer rollback {app}")
        if failed:
            return Outcome(Verdict.UNSAFE, ExitCode.UNSAFE,
                           f"interrupted by {reason}, and the --atomic rollback failed: {failed}",
                           next_command=f"deployer status {app}")
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
        try:
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
        self.reporter.heading(f"Release rejected: {failure.message}")
        self.reporter.heading("Rolling back")
        self._check_lock()  # a run that lost its lock leaves the app to the new holder
        journal_safe(journal, phase="rolling-back", message=failure.message)
        self.verified_version = None
        # The rollback gets its own budget: a run that timed out must still restore.
        self.settings.deadline = max(self.settings.deadline, self.clock() + 300)
        failed = self._rollback_steps(plan, journal)
        if failed:
            return Outcome(Verdict.UNSAFE, ExitCode.UNSAFE,
                           f"release rejected ({failure.message}) and the rollback failed: "
                           f"{failed}",
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

    def _lock_note(self) -> None:
        if self.lock is not None and self.lock.note:
            self.reporter.note(self.lock.note)

    def _check_lock(self) -> None:
        if self.lock is not None:
            self.lock.ensure_held()

    def checkpoint(self) -> None:
        """A safe point: stop if asked to, and never write without holding the lock."""
        if self.stop is not None:
            self.stop.check()
        if self.lock is not None:
            self.lock.ensure_held()

    def pause(self, seconds: float) -> None:
        """Sleep a little, then pass a safe point."""
        time.sleep(seconds)
        self.checkpoint()

    def execute(self, step: Step) -> None:
        self.checkpoint()
        record = self.reporter.step_started(step)
        try:
            note = self._dispatch(step)
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
        except DeployerError as exc:
            self.reporter.step_finished(record, "error", exc.message)
            raise
        self.reporter.step_finished(record, "done", note)

    def _dispatch(self, step: Step) -> str | None:
        handlers: dict[type[Step], Callable[[Any], str | None]] = {
            UpdateDeployment: self._update,
            SetRolloutStrategy: lambda s: self._set_strategy(s.deployment, s.strategy),
            UndoRollout: self._undo,
            AwaitRollout: self._await,
            ApplyDeployment: self._apply,
            ScaleDeployment: self._scale,
            DeleteDeployment: self._delete,
            SetServiceAffinity: self._service_affinity,
            SetServiceSelector: self._service_selector,
            VerifyTraffic: self.traffic.verify,
            Hold: self._hold,
        }
        handler = handlers.get(type(step))
        if handler is None:
            raise UnsafeState(f"the runner cannot execute step {step.kind}")
        return handler(step)

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

    def _apply(self, step: ApplyDeployment) -> str | None:
        body = step.body
        if step.weight is not None and step.ratio_of:
            _, replicas, _ = self.replicas_for_weight(step.ratio_of, step.weight,
                                                      body["spec"]["replicas"])
            if replicas != body["spec"]["replicas"]:
                body = copy.deepcopy(body)
                body["spec"]["replicas"] = replicas
        existing = self.gateway.get_deployment(step.name)
        if existing is None:
            try:
                self.gateway.create_deployment(body)
                return "created"
            except Conflict:  # created by a replay of our own request, or raced: adopt it
                existing = self._read(step.name)
        owner = (existing["metadata"].get("annotations") or {})
        mine = body["metadata"].get("annotations") or {}
        if any(owner.get(k) != v for k, v in mine.items()):
            raise StepFailed(f"deployment {step.name} exists and was not made by deployer for "
                             "this app; refusing to take it over")

        def change(dep: dict[str, Any]) -> dict[str, Any] | None:
            if (dep["spec"].get("replicas") == body["spec"]["replicas"]
                    and _same_template(dep["spec"]["template"], body["spec"]["template"])):
                return None
            dep["spec"]["replicas"] = body["spec"]["replicas"]
            dep["spec"]["template"] = copy.deepcopy(body["spec"]["template"])
            return dep

        return None if self._write(step.name, change) else "already as planned"

    def replicas_for_weight(self, stable: str, weight: int,
                            planned: int) -> tuple[int, int, float]:
        """Canary pods for ``weight`` beside ``stable`` as it is now, saying so if that
        differs from the plan (the stable Deployment was resized, e.g. by an autoscaler).

        Returns the stable size, the canary pod count and the share it gives.
        """
        size = int(self._read(stable)["spec"].get("replicas", 1))
        replicas, share = split(size, weight)
        if replicas != planned:
            self.reporter.note(f"{stable} now has {size} replicas: {replicas} canary pods "
                               f"(instead of {planned}) keep the weight at {weight}% "
                               f"({share:.0%} of new clients)")
        return size, replicas, share

    def _scale(self, step: ScaleDeployment) -> str | None:
        if step.missing_ok and self.gateway.get_deployment(step.deployment) is None:
            return "not present"

        def change(dep: dict[str, Any]) -> dict[str, Any] | None:
            if dep["spec"].get("replicas") == step.replicas:
                return None
            dep["spec"]["replicas"] = step.replicas
            return dep

        return None if self._write(step.deployment, change) else "already at that size"

    def _delete(self, step: DeleteDeployment) -> str | None:
        dep = self.gateway.get_deployment(step.deployment)
        if dep is None:
            return "already gone"
        if dep["spec"].get("replicas"):
            self._scale(ScaleDeployment(step.deployment, 0))
        selector = selector_of(dep)
        deadline = self.clock() + 120
        addresses: set[str] = set()
        with self.gateway.changes(pod_selector=selector) as feed:
            while True:
                listed = self.gateway.list_pods(selector)
                addresses |= {ip for p in listed if (ip := (p.get("status") or {}).get("podIP"))}
                pods = [p for p in listed if not p["metadata"].get("deletionTimestamp")]
                if not pods:
                    break
                if self.clock() > deadline:
                    raise StepFailed(f"{len(pods)} pods of {step.deployment} did not stop")
                self.reporter.waiting(f"{len(pods)} pods of {step.deployment} still running")
                feed.wait(self.settings.poll_interval)
                self.checkpoint()
        if step.service:
            self._await_endpoints_without(step.service, addresses, deadline)
        self.gateway.delete_deployment(step.deployment)
        # Its pods already left the Service when they began to terminate; the garbage
        # collector removes the ReplicaSet and their remains in the background.
        while self.gateway.get_deployment(step.deployment) is not None:
            if self.clock() > deadline:
                raise StepFailed(f"deployment {step.deployment} was not deleted")
            self.reporter.waiting(f"deployment {step.deployment} is being deleted")
            self.pause(0.5)
        return None

    def _await_endpoints_without(self, service: str, addresses: set[str],
                                 deadline: float) -> None:
        """Wait until none of ``addresses`` is an endpoint of ``service`` any more."""
        while True:
            left = self.gateway.endpoint_addresses(service) & addresses
            if not left:
                if addresses:
                    self._let_kube_proxy_follow()
                return
            if self.clock() > deadline:
                raise StepFailed(f"service {service} still sends traffic to "
                                 f"{', '.join(sorted(left))}")
            self.reporter.waiting(f"{len(left)} terminating pods still endpoints of "
                                  f"service {service}")
            self.pause(0.5)

    @staticmethod
    def _let_kube_proxy_follow() -> None:
        """kube-proxy applies an endpoints change about a second later (its iptables sync);
        that moment cannot be observed through the API, so it is waited for."""
        time.sleep(KUBE_PROXY_SYNC)

    def _service(self, name: str) -> dict[str, Any]:
        svc = self.gateway.get_service(name)
        if svc is None:
            raise StepFailed(f"service {name} no longer exists")
        return svc

    def _service_affinity(self, step: SetServiceAffinity) -> str | None:
        for _ in range(CONFLICT_RETRIES):
            svc = self._service(step.service)
            if (svc["spec"].get("sessionAffinity") or "None") == step.affinity:
                return "already set"
            try:
                self.gateway.patch_service(step.service,
                                           {"spec": {"sessionAffinity": step.affinity}},
                                           resource_version=svc["metadata"]["resourceVersion"])
                return None
            except Conflict:
                continue
        raise UnsafeState(f"service {step.service} kept changing", id="conflict")

    def _service_selector(self, step: SetServiceSelector) -> str | None:
        if step.require_ready:
            self._await_ready_to_switch(step)
        for _ in range(CONFLICT_RETRIES):
            svc = self._service(step.service)
            current = svc["spec"].get("selector") or {}
            if current == step.selector:
                return "already pointing there"
            patch = {k: None for k in current if k not in step.selector}
            patch.update(step.selector)
            try:
                self.gateway.patch_service(step.service, {"spec": {"selector": patch}},
                                           resource_version=svc["metadata"]["resourceVersion"])
            except Conflict:
                continue
            return self._await_endpoints(step)
        raise UnsafeState(f"service {step.service} kept changing", id="conflict")

    def _await_ready_to_switch(self, step: SetServiceSelector) -> None:
        """Never switch to a side that is not fully rolled out and available.

        Our own journal writes bump the Deployment's generation, so give the controller a
        moment to observe it; a side that is really not ready fails after the wait.
        """
        name = str(step.require_ready)
        deadline = self.clock() + 30
        while True:
            dep = self._read(name)
            status = dep.get("status") or {}
            desired = dep["spec"].get("replicas", 1)
            available = status.get("availableReplicas", 0)
            if desired and available >= desired and \
                    rollout_status(dep).phase is Phase.SUCCESSFUL:
                return
            if self.clock() > deadline:
                raise StepFailed(f"refusing to switch service {step.service}: {name} has "
                                 f"{available} of {desired} pods available and rolled out")
            self.reporter.waiting(f"{name}: {available} of {desired} pods available")
            self.pause(0.5)

    def _await_endpoints(self, step: SetServiceSelector) -> str | None:
        """Wait until the Service's endpoints are exactly the selected, Ready pods."""
        selector = ",".join(f"{k}={v}" for k, v in sorted(step.selector.items()))
        deadline = self.clock() + 60
        while self.clock() < deadline:
            wanted = {p["status"].get("podIP") for p in self.gateway.list_pods(selector)
                      if is_ready(p) and not p["metadata"].get("deletionTimestamp")}
            have = self.gateway.endpoint_addresses(step.service)
            if wanted and have == wanted:
                self._let_kube_proxy_follow()
                return f"endpoints are the {len(have)} selected pods"
            self.reporter.waiting(f"service endpoints {len(have)}, selected Ready pods "
                                  f"{len(wanted)}")
            self.pause(0.5)
        raise StepFailed(f"service {step.service}'s endpoints did not follow the new selector "
                         "within 60s")

    def _hold(self, step: Hold) -> str | None:
        end = self.clock() + step.seconds
        while (left := end - self.clock()) > 0:
            self.reporter.waiting(f"{step.reason}: {left:.0f}s left")
            self.pause(min(left, 5.0))
        return None

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
                outage = Outage(self)
                while True:
                    try:
                        evaluation = verifier.evaluate()
                    except ClusterUnreachable as exc:
                        outage.failed(exc)  # polling goes on through a short API outage
                        continue
                    outage.clear()
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
                    try:
                        self.checkpoint()
                    except ClusterUnreachable as exc:
                        outage.failed(exc)
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
