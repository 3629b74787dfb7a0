"""Step handlers that change or watch Deployments."""

from __future__ import annotations

import copy
from typing import Any

from deployer.engine.context import StepContext, must_exist
from deployer.engine.outage import Outage
from deployer.engine.services import (
    ENDPOINTS_BUDGET,
    STOP_BUDGET,
    await_pods_stopped,
    endpoints_route_to,
    endpoints_without,
)
from deployer.errors import ClusterUnreachable, Conflict, StepFailed
from deployer.health.pods import not_ready_reasons
from deployer.health.verifier import Evaluation, RolloutVerifier, selector_of
from deployer.model import (
    CHANGE_CAUSE_ANNOTATION,
    REVISION_ANNOTATION,
    ApplyDeployment,
    AwaitRollout,
    DeleteDeployment,
    Phase,
    PodFailure,
    RestartDeployment,
    ScaleDeployment,
    SetRolloutStrategy,
    UndoRollout,
    UpdateDeployment,
)
from deployer.weights import split
from deployer.writes import conditional_write

K8sObject = dict[str, Any]


def read(ctx: StepContext, name: str) -> K8sObject:
    return must_exist(ctx.gateway.get_deployment(name), "deployment", name)


def write(ctx: StepContext, name: str, change: Any) -> bool:
    """``change`` applied to a fresh read of the Deployment, conditionally (see writes)."""
    return conditional_write(lambda: read(ctx, name), ctx.gateway.replace_deployment, change,
                             f"deployment {name}")


def update(ctx: StepContext, step: UpdateDeployment) -> str | None:
    def change(dep: K8sObject) -> K8sObject | None:
        containers = dep["spec"]["template"]["spec"]["containers"]
        target = next(c for c in containers if c["name"] == step.container)
        same_strategy = step.strategy is None or strategy_matches(
            dep["spec"].get("strategy") or {}, step.strategy)
        labels = dep["spec"]["template"]["metadata"].setdefault("labels", {})
        same_labels = all(labels.get(k) == v for k, v in (step.labels or {}).items())
        if target["image"] == step.image and same_strategy and same_labels:
            return None
        target["image"] = step.image
        labels.update(step.labels or {})
        if step.strategy is not None:
            dep["spec"]["strategy"] = clean_strategy(step.strategy)
        dep["metadata"].setdefault("annotations", {})[CHANGE_CAUSE_ANNOTATION] = \
            step.change_cause
        return dep

    return None if write(ctx, step.deployment, change) else "already set; nothing to change"


RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"  # the annotation kubectl's restart sets


def restart(ctx: StepContext, step: RestartDeployment) -> str | None:
    def change(dep: K8sObject) -> K8sObject | None:
        meta = dep["spec"]["template"].setdefault("metadata", {})
        annotations = meta.setdefault("annotations", {})
        if annotations.get(RESTARTED_AT) == step.restarted_at:
            return None  # this run's restart is already written (a resumed run)
        annotations[RESTARTED_AT] = step.restarted_at
        dep["metadata"].setdefault("annotations", {})[CHANGE_CAUSE_ANNOTATION] = \
            step.change_cause
        return dep

    return None if write(ctx, step.deployment, change) else "already restarted by this run"


def set_strategy(ctx: StepContext, step: SetRolloutStrategy) -> str | None:
    def change(dep: K8sObject) -> K8sObject | None:
        if strategy_matches(dep["spec"].get("strategy") or {}, step.strategy):
            return None
        dep["spec"]["strategy"] = clean_strategy(step.strategy)
        return dep

    return None if write(ctx, step.deployment, change) else "already set"


def undo(ctx: StepContext, step: UndoRollout) -> str | None:
    dep = read(ctx, step.deployment)
    uid = dep["metadata"].get("uid")
    wanted = None
    for rs in ctx.gateway.list_replicasets(selector_of(dep)):
        owners = rs["metadata"].get("ownerReferences") or []
        revision = (rs["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION)
        if any(o.get("uid") == uid for o in owners) and revision == str(step.to_revision):
            wanted = rs
    if wanted is None:
        raise StepFailed(f"revision {step.to_revision} of {step.deployment} no longer exists "
                         "(revisionHistoryLimit may have pruned it)")
    template = copy.deepcopy(wanted["spec"]["template"])
    (template["metadata"].get("labels") or {}).pop("pod-template-hash", None)

    def change(current: K8sObject) -> K8sObject | None:
        if same_template(current["spec"]["template"], template):
            return None
        current["spec"]["template"] = template
        current["metadata"].setdefault("annotations", {})[CHANGE_CAUSE_ANNOTATION] = \
            step.change_cause
        return current

    return None if write(ctx, step.deployment, change) else "already at that revision"


def replicas_for_weight(ctx: StepContext, stable: str, weight: int,
                        planned: int) -> tuple[int, int, float]:
    """Canary pods for ``weight`` beside ``stable`` as it is now, saying so if that
    differs from the plan (the stable Deployment was resized, e.g. by an autoscaler).

    Returns the stable size, the canary pod count and the share it gives.
    """
    size = int(read(ctx, stable)["spec"].get("replicas", 1))
    replicas, share = split(size, weight)
    if replicas != planned:
        ctx.reporter.note(f"{stable} now has {size} replicas: {replicas} canary pods "
                          f"(instead of {planned}) keep the weight at {weight}% "
                          f"({share:.0%} of new clients)")
    return size, replicas, share


def apply(ctx: StepContext, step: ApplyDeployment) -> str | None:
    body = step.body
    if step.weight is not None and step.ratio_of:
        _, replicas, _ = replicas_for_weight(ctx, step.ratio_of, step.weight,
                                             body["spec"]["replicas"])
        if replicas != body["spec"]["replicas"]:
            body = copy.deepcopy(body)
            body["spec"]["replicas"] = replicas
    existing = ctx.gateway.get_deployment(step.name)
    if existing is None:
        try:
            ctx.gateway.create_deployment(body)
            return "created"
        except Conflict:  # created by a replay of our own request, or raced: adopt it
            existing = read(ctx, step.name)
    owner = existing["metadata"].get("annotations") or {}
    mine = body["metadata"].get("annotations") or {}
    if any(owner.get(k) != v for k, v in mine.items()):
        raise StepFailed(f"deployment {step.name} exists and was not made by deployer for "
                         "this app; refusing to take it over")

    def change(dep: K8sObject) -> K8sObject | None:
        if (dep["spec"].get("replicas") == body["spec"]["replicas"]
                and same_template(dep["spec"]["template"], body["spec"]["template"])):
            return None
        dep["spec"]["replicas"] = body["spec"]["replicas"]
        dep["spec"]["template"] = copy.deepcopy(body["spec"]["template"])
        return dep

    return None if write(ctx, step.name, change) else "already as planned"


def scale(ctx: StepContext, step: ScaleDeployment) -> str | None:
    if step.missing_ok and ctx.gateway.get_deployment(step.deployment) is None:
        return "not present"

    def change(dep: K8sObject) -> K8sObject | None:
        if dep["spec"].get("replicas") == step.replicas:
            return None
        dep["spec"]["replicas"] = step.replicas
        return dep

    before = read(ctx, step.deployment) if step.service else None
    if not write(ctx, step.deployment, change):
        return "already at that size"
    if step.service and before is not None and \
            step.replicas < int(before["spec"].get("replicas") or 0):
        # Pods taken from a side that keeps serving: done once they left the Service.
        deadline = ctx.clock() + STOP_BUDGET
        addresses = await_pods_stopped(ctx, before, deadline, keep=step.replicas)
        endpoints_without(ctx, step.service, addresses, deadline)
    return None


def delete(ctx: StepContext, step: DeleteDeployment) -> str | None:
    dep = ctx.gateway.get_deployment(step.deployment)
    if dep is None:
        return "already gone"
    if dep["spec"].get("replicas"):
        scale(ctx, ScaleDeployment(step.deployment, 0))
    deadline = ctx.clock() + STOP_BUDGET
    addresses = await_pods_stopped(ctx, dep, deadline)
    if step.service:
        endpoints_without(ctx, step.service, addresses, deadline)
    ctx.gateway.delete_deployment(step.deployment)
    # Its pods already left the Service when they began to terminate; the garbage
    # collector removes the ReplicaSet and their remains in the background.
    ctx.wait_until(lambda: None if ctx.gateway.get_deployment(step.deployment) is None
                   else f"deployment {step.deployment} is being deleted",
                   deadline=deadline,
                   failure=lambda: f"deployment {step.deployment} was not deleted")
    return None


def await_rollout(ctx: StepContext, step: AwaitRollout) -> str | None:
    start_wall = ctx.wall()
    start = ctx.clock()
    dep = read(ctx, step.deployment)
    progress = ctx.settings.progress_deadline or float(
        dep["spec"].get("progressDeadlineSeconds", 600))
    deadline = min(start + progress, ctx.settings.deadline)
    timed_out_overall = ctx.settings.deadline <= start + progress
    verifier = RolloutVerifier(ctx.gateway, step.deployment, step.expected_version,
                               clock=ctx.clock, since=start_wall, options=ctx.settings.verify,
                               see_through=ctx.restoring)
    evaluation = None
    downtime = DowntimeMeter(ctx, until_routed=bool(step.service)) \
        if step.measure_downtime else None
    try:
        with ctx.gateway.changes(deployment=step.deployment, replicasets=selector_of(dep),
                                 pod_selector=selector_of(dep)) as feed:
            outage = Outage(ctx)
            while True:
                try:
                    evaluation = verifier.evaluate(feed)
                except ClusterUnreachable as exc:
                    outage.failed(exc)  # polling goes on through a short API outage
                    continue
                outage.clear()
                ctx.reporter.measured(evaluation.measurements)
                if downtime is not None:
                    downtime.observe(evaluation.deployment)
                if evaluation.phase is Phase.SUCCESSFUL:
                    if step.expected_version and verifier.version_check is not None:
                        ctx.results.verified_version = step.expected_version
                    if step.service:
                        served = endpoints_route_to(ctx, step.service,
                                                    evaluation.deployment or dep,
                                                    ctx.clock() + ENDPOINTS_BUDGET)
                        if downtime is not None:
                            downtime.ended(served)
                        return f"{evaluation.message}; service {step.service} routes to them"
                    return evaluation.message
                if evaluation.completed:
                    ctx.explain(evaluation.failures)
                    raise StepFailed(evaluation.message, evaluation)
                ctx.reporter.waiting(evaluation.message)
                remaining = deadline - ctx.clock()
                if remaining <= 0:
                    break
                # a change wakes us at once; a pod due to be asked its version again, too
                wait = ctx.settings.poll_interval if evaluation.next_sample is None else \
                    min(ctx.settings.poll_interval, evaluation.next_sample)
                feed.wait(min(wait, remaining))
                try:
                    ctx.checkpoint()
                except ClusterUnreachable as exc:
                    outage.failed(exc)
    finally:
        verifier.close()
    raise deadline_failure(ctx, step, verifier, progress, evaluation, timed_out_overall)


class DowntimeMeter:
    """From the first moment no pod is available to the first moment one is again, across
    the steps that measure it (a rejected release's wait, then its rollback's)."""

    def __init__(self, ctx: StepContext, until_routed: bool = False):
        self.results = ctx.results
        self.clock = ctx.clock
        self.until_routed = until_routed  # it ends when the Service routes to a pod again

    def observe(self, deployment: K8sObject | None) -> None:
        if deployment is None or self.results.downtime is not None:
            return
        available = (deployment.get("status") or {}).get("availableReplicas", 0)
        if not available and self.results.downtime_since is None:
            self.results.downtime_since = self.clock()
        elif available and self.results.downtime_since is not None and not self.until_routed:
            self.results.downtime = self.clock() - self.results.downtime_since

    def ended(self, at: float) -> None:
        if self.results.downtime is None and self.results.downtime_since is not None:
            self.results.downtime = max(0.0, at - self.results.downtime_since)


def deadline_failure(ctx: StepContext, step: AwaitRollout, verifier: RolloutVerifier,
                     progress: float, evaluation: Evaluation | None,
                     overall: bool) -> StepFailed:
    pods = []
    if evaluation is not None and evaluation.deployment is not None:
        pods = verifier.new_pods(evaluation.deployment) or []
    reasons = not_ready_reasons(pods)
    failures = [PodFailure(p["metadata"]["name"], None, "NotReady", "never became Ready")
                for p in pods if any(r.startswith(p["metadata"]["name"]) for r in reasons)]
    ctx.explain(failures)
    probe = next((e for f in ctx.reporter.failures for e in f.events if "probe" in e.lower()),
                 None)
    what = "the run's --timeout" if overall else f"{progress:.0f}s"
    message = f"{step.deployment} did not become healthy within {what}: " + (
        evaluation.message if evaluation else "no progress")
    if probe:
        message += f"; {probe}"
    return StepFailed(message, evaluation, timed_out=overall)


def clean_strategy(strategy: K8sObject) -> K8sObject:
    out = {k: v for k, v in strategy.items() if v is not None}
    if out.get("type") == "Recreate":
        out.pop("rollingUpdate", None)
    return out


def strategy_matches(current: K8sObject, wanted: K8sObject) -> bool:
    wanted = clean_strategy(wanted)
    if current.get("type", "RollingUpdate") != wanted.get("type", "RollingUpdate"):
        return False
    want_rolling = wanted.get("rollingUpdate") or {}
    have_rolling = current.get("rollingUpdate") or {}
    return all(str(have_rolling.get(k)) == str(v) for k, v in want_rolling.items())


def same_template(a: K8sObject, b: K8sObject) -> bool:
    def strip(t: K8sObject) -> K8sObject:
        t = copy.deepcopy(t)
        (t.get("metadata") or {}).get("labels", {}).pop("pod-template-hash", None)
        return t

    return strip(a) == strip(b)
