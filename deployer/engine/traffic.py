"""The analysis behind a canary step or a blue-green switch (the VerifyTraffic step).

Each round checks, per pod, that the new track answers the new version and the old
track the old one; that no new pod shows a failure reason; and, through the Service
from many client addresses, that the share of clients on the new version matches
the plan and that every client stays on one version. Rounds repeat until the step's
analysis time has passed; any failed round rejects the release.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from deployer.engine.context import StepContext
from deployer.engine.deployments import replicas_for_weight
from deployer.engine.outage import Outage
from deployer.errors import ClusterUnreachable, StepFailed
from deployer.health.http import VersionProbe
from deployer.health.pods import PodFailureCheck
from deployer.health.traffic import (
    SHARE,
    STICKY,
    ServiceTraffic,
    request_errors,
    share_check,
    stickiness,
    unreachable,
)
from deployer.health.verifier import DEFAULT_PORT, container_port, is_ready, selector_of
from deployer.model import (
    AwaitRollout,
    Measurement,
    Phase,
    PodFailure,
    ScaleDeployment,
    VerifyTraffic,
)

if TYPE_CHECKING:
    from deployer.engine.analysing import Sides, StepAnalysis

ROUND_INTERVAL = 3.0


def verify(ctx: StepContext, step: VerifyTraffic, *,
           before_round: Callable[[], None] | None = None,
           label: str | None = None, sides: Sides | None = None) -> str | None:
    """``label``: the step as the report names its analysis (the step's own line);
    ``sides``: what the analysis compares, when not the step's two Deployments."""
    failures_check = PodFailureCheck(clock=ctx.clock)
    end = ctx.clock() + step.duration
    rounds = 0
    outage = Outage(ctx)
    metrics: StepAnalysis | None = None
    if step.analysis:
        # only a run that asks for analysis pays for importing it (not every deploy)
        from deployer.engine.analysing import Sides, StepAnalysis
    with contextlib.ExitStack() as stack:
        probe = stack.enter_context(VersionProbe(ctx.gateway, ctx.settings.verify.probe))
        while True:
            if before_round is not None:
                before_round()
            over = ctx.clock() >= end
            try:
                step = follow_resize(ctx, step)
                if step.analysis and metrics is None:
                    metrics = stack.enter_context(StepAnalysis(
                        ctx, step.analysis, sides or Sides(
                            step.service, step.new_deployment, step.new_version,
                            step.old_deployment, step.old_version),
                        label or step.describe()))
                measurements, failures = analysis_round(ctx, probe, step, failures_check)
                if metrics is not None:
                    metrics.tick(over)
            except ClusterUnreachable as exc:
                outage.failed(exc)
                continue
            outage.clear()
            rounds += 1
            ctx.reporter.measured(measurements)
            bad = [m for m in measurements if m.phase in (Phase.FAILED, Phase.ERROR)]
            if bad:
                ctx.explain(failures)
                raise StepFailed(bad[0].message)
            done = metrics.settle(over) if metrics is not None else over
            left = end - ctx.clock()
            if done or (metrics is None and left <= 0):
                break
            ctx.reporter.waiting(f"analysing: round {rounds} passed, {left:.0f}s left"
                                 if metrics is None or left > 0 else
                                 f"round {rounds} passed; {metrics.waiting(end)}")
            pause = min(ROUND_INTERVAL, left) if left > 0 else ROUND_INTERVAL
            if metrics is not None:
                pause = min(pause, metrics.wait(end))
            ctx.pause(max(pause, 0.2))
    summary = [m.message for m in measurements
               if m.check in (SHARE, STICKY) or m.phase is Phase.INCONCLUSIVE]
    if metrics is not None:
        summary.append(metrics.summary())
    return f"{rounds} round(s) passed; " + "; ".join(dict.fromkeys(summary))


def follow_resize(ctx: StepContext, step: VerifyTraffic) -> VerifyTraffic:
    """Keep a canary's weight when the stable Deployment is resized during the analysis
    (a weight step), or note that stable changed size (a canary that takes its pods).

    An autoscaler may change the stable size at any time: the canary is scaled to the
    pod count that keeps the step's weight, the expected share follows, and since
    clients of removed pods meet new ones, what each client got so far is forgotten.
    """
    if not step.old_deployment:
        return step
    if step.weight is None:
        # The canary took pods from stable: clients of the removed stable pods met new
        # ones, so what each client got before stable changed size is forgotten.
        stable = ctx.gateway.get_deployment(step.old_deployment)
        size = int((stable or {}).get("spec", {}).get("replicas") or 0)
        if ctx.traffic.stable_size is not None and size != ctx.traffic.stable_size:
            ctx.traffic.client_versions.clear()
        ctx.traffic.stable_size = size
        return step
    canary = ctx.gateway.get_deployment(step.new_deployment)
    if canary is None:
        return step  # the per-pod check reports it gone
    current = int(canary["spec"].get("replicas", 1))
    size, replicas, share = replicas_for_weight(ctx, step.old_deployment, step.weight, current)
    memory = ctx.traffic
    if memory.stable_size is not None and size != memory.stable_size:
        memory.client_versions.clear()
    memory.stable_size = size
    if replicas != current:
        ctx.execute(ScaleDeployment(step.new_deployment, replicas))
        ctx.execute(AwaitRollout(step.new_deployment, step.new_version))
    return replace(step, share=share)


def analysis_round(ctx: StepContext, probe: VersionProbe, step: VerifyTraffic,
                   failures_check: PodFailureCheck) -> tuple[list[Measurement], list[PodFailure]]:
    new_m, new_pods = pod_versions(ctx, probe, step.new_deployment, step.new_version, "new")
    measurements = [new_m]
    pod_m, failures = failures_check.evaluate(new_pods)
    measurements.append(pod_m)
    if step.old_deployment and step.old_deployment != step.new_deployment:
        measurements.append(
            pod_versions(ctx, probe, step.old_deployment, step.old_version, "old")[0])
    measurements += service_traffic(ctx, step)
    return measurements, failures


def pod_versions(ctx: StepContext, probe: VersionProbe, deployment: str, expected: str | None,
                 track: str) -> tuple[Measurement, list[dict[str, Any]]]:
    """Which version each Ready pod of one track answers."""
    dep = ctx.gateway.get_deployment(deployment)
    check = f"{track}-pods"
    if dep is None:
        return Measurement(check, Phase.FAILED, f"deployment {deployment} is gone"), []
    pods = [p for p in ctx.gateway.list_pods(selector_of(dep))
            if not p["metadata"].get("deletionTimestamp")]
    if expected is None:
        return Measurement(check, Phase.INCONCLUSIVE,
                           f"no expected version for {deployment}; not checked"), pods
    port = container_port(dep, ctx.settings.verify.container,
                          ctx.settings.verify.port) or DEFAULT_PORT
    answers = probe.versions([p for p in pods if is_ready(p)], port)
    wrong = {p: v for p, v in answers.items() if not v.startswith("error") and v != expected}
    details = {"expected": expected, "answers": answers}
    if wrong:
        return Measurement(check, Phase.FAILED,
                           f"{track} pods answer another version than {expected}: {wrong}",
                           details), pods
    if not answers or all(v.startswith("error") for v in answers.values()):
        return Measurement(check, Phase.ERROR, f"no Ready {track} pod of {deployment} "
                           "answered", details), pods
    return Measurement(check, Phase.SUCCESSFUL,
                       f"{len(answers)} {track} pods answer {expected}", details), pods


def service_traffic(ctx: StepContext, step: VerifyTraffic) -> list[Measurement]:
    """The share of clients on the new version through the Service, and stickiness."""
    addresses = ctx.settings.client_addresses
    if not addresses:
        return [Measurement(SHARE, Phase.INCONCLUSIVE,
                            "not measured: no --client-addresses to call the Service from")]
    svc = ctx.gateway.get_service(step.service)
    if svc is None:
        return [Measurement(SHARE, Phase.FAILED, f"service {step.service} is gone")]
    ports = svc["spec"].get("ports") or []
    port = next((p["port"] for p in ports if p.get("name") == "http"),
                ports[0]["port"] if ports else 80)
    start, end = step.fresh_clients
    fresh = list(addresses[start:end]) if end > start else list(addresses)
    used = list(dict.fromkeys([*addresses[:start], *fresh]))
    traffic = ServiceTraffic(f"http://{svc['spec']['clusterIP']}:{port}")
    answers = traffic.sample(used)
    if unreachable(answers):
        return [Measurement(SHARE, Phase.INCONCLUSIVE,
                            f"unsupported here: service {step.service}'s ClusterIP "
                            f"{svc['spec']['clusterIP']} is not reachable from this machine")]
    memory = ctx.traffic
    sticky, seen = stickiness(answers, memory.client_versions)
    memory.client_versions.update(seen)
    share = share_check({a: seen[a] for a in fresh if a in seen}, step.new_version,
                        step.old_version, step.share)
    return [sticky, share, request_errors(answers)]
