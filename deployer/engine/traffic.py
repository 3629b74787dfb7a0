"""The analysis behind a canary step or a blue-green switch (the VerifyTraffic step).

Each round checks, per pod, that the new track answers the new version and the old
track the old one; that no new pod shows a failure reason; and, through the Service
from many client addresses, that the share of clients on the new version matches
the plan and that every client stays on one version. Rounds repeat until the step's
analysis time has passed; any failed round rejects the release.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from deployer.errors import ClusterUnreachable, StepFailed
from deployer.health.http import sample_version
from deployer.health.pods import PodFailureCheck
from deployer.health.traffic import (
    SHARE,
    STICKY,
    ServiceTraffic,
    share_check,
    stickiness,
    unreachable,
)
from deployer.health.verifier import container_port, is_ready, selector_of
from deployer.model import AwaitRollout, Measurement, Phase, ScaleDeployment, VerifyTraffic
from deployer.outage import Outage

if TYPE_CHECKING:
    from deployer.runner import Runner

ROUND_INTERVAL = 3.0


class TrafficVerifier:
    def __init__(self, runner: Runner):
        self.runner = runner
        self.client_versions: dict[str, str] = {}  # what each client got at earlier steps
        self.stable_size: int | None = None

    def _pod_versions(self, deployment: str, expected: str | None,
                      track: str) -> tuple[Measurement, list[dict[str, Any]]]:
        gw = self.runner.gateway
        dep = gw.get_deployment(deployment)
        check = f"{track}-pods"
        if dep is None:
            return Measurement(check, Phase.FAILED, f"deployment {deployment} is gone"), []
        pods = [p for p in gw.list_pods(selector_of(dep))
                if not p["metadata"].get("deletionTimestamp")]
        if expected is None:
            return Measurement(check, Phase.INCONCLUSIVE,
                               f"no expected version for {deployment}; not checked"), pods
        port = container_port(dep, None, self.runner.settings.verify.port)
        answers: dict[str, str] = {}
        with gw.api_http_client() as client:
            for pod in (p for p in pods if is_ready(p)):
                name = pod["metadata"]["name"]
                s = sample_version(client, gw.pod_proxy_path(name, port or 8080, "/version"),
                                   name)
                answers[name] = s.version or f"error: {s.error}"
        if answers and all(v.startswith("error: ConnectError") for v in answers.values()):
            # Through the pod proxy a refused connection is the API server's, not the pod's.
            raise ClusterUnreachable(f"the API server's pod proxy is unreachable: "
                                     f"{next(iter(answers.values()))}")
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

    def _traffic(self, step: VerifyTraffic) -> list[Measurement]:
        addresses = self.runner.settings.client_addresses
        if not addresses:
            return [Measurement(SHARE, Phase.INCONCLUSIVE,
                                "not measured: no --client-addresses to call the Service from")]
        svc = self.runner.gateway.get_service(step.service)
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
        sticky, seen = stickiness(answers, self.client_versions)
        self.client_versions.update(seen)
        share = share_check({a: seen[a] for a in fresh if a in seen}, step.new_version,
                            step.old_version, step.share)
        return [sticky, share]

    def verify(self, step: VerifyTraffic) -> str | None:
        runner = self.runner
        failures_check = PodFailureCheck(clock=runner.clock)
        end = runner.clock() + step.duration
        rounds = 0
        outage = Outage(runner)
        while True:
            try:
                step = self._follow_resize(step)
                measurements, failures = self._round(step, failures_check)
            except ClusterUnreachable as exc:
                outage.failed(exc)
                continue
            outage.clear()
            rounds += 1
            runner.reporter.measured(measurements)
            bad = [m for m in measurements if m.phase in (Phase.FAILED, Phase.ERROR)]
            if bad:
                runner._explain(failures)
                raise StepFailed(bad[0].message)
            left = end - runner.clock()
            if left <= 0:
                break
            runner.reporter.waiting(f"analysing: round {rounds} passed, {left:.0f}s left")
            runner.pause(min(ROUND_INTERVAL, left))
        summary = [m.message for m in measurements
                   if m.check in (SHARE, STICKY) or m.phase is Phase.INCONCLUSIVE]
        return f"{rounds} round(s) passed; " + "; ".join(dict.fromkeys(summary))

    def _follow_resize(self, step: VerifyTraffic) -> VerifyTraffic:
        """Keep a canary's weight when the stable Deployment is resized during the analysis.

        An autoscaler may change the stable size at any time: the canary is scaled to the
        pod count that keeps the step's weight, the expected share follows, and since
        clients of removed pods meet new ones, what each client got so far is forgotten.
        """
        if step.weight is None or not step.old_deployment:
            return step
        runner = self.runner
        canary = runner.gateway.get_deployment(step.new_deployment)
        if canary is None:
            return step  # the per-pod check reports it gone
        current = int(canary["spec"].get("replicas", 1))
        size, replicas, share = runner.replicas_for_weight(step.old_deployment, step.weight,
                                                           current)
        if self.stable_size is not None and size != self.stable_size:
            self.client_versions.clear()
        self.stable_size = size
        if replicas != current:
            runner.execute(ScaleDeployment(step.new_deployment, replicas))
            runner.execute(AwaitRollout(step.new_deployment, step.new_version))
        return replace(step, share=share)

    def _round(self, step: VerifyTraffic,
               failures_check: PodFailureCheck) -> tuple[list[Measurement], list[Any]]:
        new_m, new_pods = self._pod_versions(step.new_deployment, step.new_version, "new")
        measurements = [new_m]
        pod_m, failures = failures_check.evaluate(new_pods)
        measurements.append(pod_m)
        if step.old_deployment and step.old_deployment != step.new_deployment:
            measurements.append(
                self._pod_versions(step.old_deployment, step.old_version, "old")[0])
        measurements += self._traffic(step)
        return measurements, failures
