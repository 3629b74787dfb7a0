"""The rollout verifier: rollout status + pod failure reasons + ``/version`` per new pod.

``evaluate()`` reads the current state once and returns an :class:`Evaluation`;
the engine calls it each time a watch wakes it (or an interval passes) until the
evaluation is completed or a deadline passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deployer.health.http import ProbeOptions, VersionCheck, VersionProbe
from deployer.health.pods import QUOTA_EXCEEDED, PodFailureCheck, unscheduled
from deployer.labels import CANARY_TRACK, TRACK_KEY
from deployer.model import REVISION_ANNOTATION, Measurement, Phase, PodFailure
from deployer.rollout import rollout_status
from deployer.validation import quantity

if TYPE_CHECKING:
    from deployer.gateway import ClusterGateway

SCALE_UP_LOOKUPS = 3  # unschedulable pods whose events are read, per evaluation


@dataclass(frozen=True)
class VerifyOptions:
    samples: int = 3
    failure_limit: int = 3
    error_limit: int = 5
    http_mode: str = "proxy"  # "proxy" (through the API server), "pod-ip", "url" or "off"
    url_template: str | None = None  # for "url": e.g. https://{pod_ip}:8443/version
    port: int | str | None = None
    path: str = "/version"
    container: str | None = None  # the container deployed: its port answers /version

    @property
    def probe(self) -> ProbeOptions:
        via = self.http_mode if self.http_mode in ("pod-ip", "url") else "proxy"
        return ProbeOptions(via, self.path, self.url_template)


@dataclass(frozen=True)
class Evaluation:
    phase: Phase
    message: str
    measurements: tuple[Measurement, ...] = ()
    failures: tuple[PodFailure, ...] = ()
    pods: tuple[str, ...] = ()
    deployment: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def completed(self) -> bool:
        return self.phase.completed


def selector_of(deployment: dict[str, Any]) -> str:
    """A label selector for the Deployment's own pods and ReplicaSets. A selector without a
    track label (app: hello only) also matches a canary's pods, which carry the app's labels
    plus track: canary; those are left out (Kubernetes itself tells them apart by owner)."""
    labels = (deployment["spec"].get("selector") or {}).get("matchLabels") or {}
    terms = [f"{k}={v}" for k, v in sorted(labels.items())]
    if labels and TRACK_KEY not in labels:
        terms.append(f"{TRACK_KEY}!={CANARY_TRACK}")
    return ",".join(terms)


def new_replicaset(deployment: dict[str, Any],
                   replicasets: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The ReplicaSet of the Deployment's current revision (once the controller saw it)."""
    revision = (deployment["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION)
    uid = deployment["metadata"].get("uid")
    for rs in replicasets:
        owners = rs["metadata"].get("ownerReferences") or []
        if uid and not any(o.get("uid") == uid for o in owners):
            continue
        if (rs["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION) == revision:
            return rs
    return None


def container_port(deployment: dict[str, Any], container: str | None,
                   override: int | str | None) -> int | str | None:
    if override:
        return override
    containers = deployment["spec"]["template"]["spec"].get("containers") or []
    for c in containers:
        if container and c.get("name") != container:
            continue
        ports = c.get("ports") or []
        named = [p for p in ports if p.get("name") == "http"]
        chosen = (named or ports or [None])[0]
        if chosen:
            return int(chosen["containerPort"])
    return None


def is_ready(pod: dict[str, Any]) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


class RolloutVerifier:
    def __init__(self, gateway: ClusterGateway, deployment: str, expected_version: str | None, *,
                 clock: Callable[[], float], since: float, container: str | None = None,
                 options: VerifyOptions | None = None):
        self.gateway = gateway
        self.name = deployment
        self.expected_version = expected_version
        self.since = since
        self.options = options or VerifyOptions()
        self.container = container or self.options.container
        self.pod_check = PodFailureCheck(clock=clock)
        self.version_check = (VersionCheck(expected_version, self.options.samples,
                                           self.options.failure_limit, self.options.error_limit)
                              if expected_version and self.options.http_mode != "off" else None)
        self._uid: str | None = None
        self.probe = VersionProbe(gateway, self.options.probe)

    def close(self) -> None:
        self.probe.close()

    def new_pods(self, deployment: dict[str, Any]) -> list[dict[str, Any]] | None:
        selector = selector_of(deployment)
        rs = new_replicaset(deployment, self.gateway.list_replicasets(selector))
        if rs is None:
            return None
        hash_ = (rs["metadata"].get("labels") or {}).get("pod-template-hash")
        pods = self.gateway.list_pods(f"{selector},pod-template-hash={hash_}")
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")]

    def scaling_up(self, pods: list[dict[str, Any]]) -> frozenset[str]:
        """The unschedulable pods a cluster autoscaler is adding a node for (its
        TriggeredScaleUp event on the pod); read only while some pod is unschedulable."""
        return frozenset(name for name in unscheduled(pods)[:SCALE_UP_LOOKUPS]
                         if any(e.get("reason") == "TriggeredScaleUp"
                                for e in self.gateway.list_events(name)))

    def quota_freeing(self, deployment: dict[str, Any]) -> bool:
        """Whether a quota refusal is passing: the app's own old pods are still terminating
        (the quota counts them until they are gone), or the quota has room again and the
        ReplicaSet controller has yet to retry (it backs off). Read only while refused."""
        refusal = next((c.get("message") or "" for c in
                        (deployment.get("status") or {}).get("conditions") or []
                        if c.get("type") == "ReplicaFailure" and c.get("status") == "True"
                        and QUOTA_EXCEEDED in (c.get("message") or "")), None)
        if refusal is None:
            return False
        if any(p["metadata"].get("deletionTimestamp")
               for p in self.gateway.list_pods(selector_of(deployment))):
            return True
        return quota_has_room(self.gateway, refusal)

    def evaluate(self) -> Evaluation:
        dep = self.gateway.get_deployment(self.name)
        if dep is None:
            return Evaluation(Phase.FAILED, f"deployment {self.name} was deleted during the run")
        uid = dep["metadata"].get("uid")
        if self._uid is None:
            self._uid = uid
        elif uid != self._uid:
            return Evaluation(Phase.FAILED, f"deployment {self.name} was deleted and recreated "
                              "during the run; not following the new object")
        rollout = rollout_status(dep, since=self.since)
        measurements = [rollout]
        observed = rollout.message.startswith("waiting for the controller")
        pods = [] if observed else (self.new_pods(dep) or [])
        pod_m, failures = self.pod_check.evaluate(pods, dep,
                                                  quota_freeing=self.quota_freeing(dep),
                                                  scaling_up=self.scaling_up(pods))
        measurements.append(pod_m)
        names = tuple(p["metadata"]["name"] for p in pods)
        if failures:
            return Evaluation(Phase.FAILED, pod_m.message, tuple(measurements), tuple(failures),
                              names, dep)
        if rollout.phase is Phase.FAILED:
            return Evaluation(Phase.FAILED, rollout.message, tuple(measurements), (), names, dep)
        if dep["spec"].get("paused"):
            return Evaluation(Phase.RUNNING, f"deployment {self.name} is paused: Kubernetes does "
                              "not make or check progress while paused",
                              tuple(measurements), (), names, dep)
        if rollout.phase is not Phase.SUCCESSFUL:
            # what the pods wait for, when it may still pass (a busy registry, a crash
            # once), is said beside the rollout's count
            message = rollout.message if pod_m.phase is not Phase.RUNNING else \
                f"{rollout.message}; {pod_m.message}"
            return Evaluation(Phase.RUNNING, message, tuple(measurements), (), names, dep)
        if self.version_check is None:
            return Evaluation(Phase.SUCCESSFUL, rollout.message, tuple(measurements), (), names,
                              dep)
        port = container_port(dep, self.container, self.options.port)
        if port is None:
            m = Measurement("http-version", Phase.ERROR,
                            "the container declares no port; pass --port for /version checks")
            return Evaluation(Phase.ERROR, m.message, (*measurements, m), (), names, dep)
        ready = [p for p in pods if is_ready(p)]
        for pod in ready:
            if not self.version_check.verified(pod["metadata"]["name"]):
                self.version_check.record(self.probe.sample(pod, port))
        version_m = self.version_check.evaluate([p["metadata"]["name"] for p in ready])
        measurements.append(version_m)
        return Evaluation(version_m.phase, version_m.message, tuple(measurements), (), names, dep)


_REFUSAL = re.compile(r"exceeded quota: ([^,]+), requested: ([^,]+(?:,[^,:=]+=[^,]+)*)")


def quota_has_room(gateway: ClusterGateway, refusal: str) -> bool:
    """Whether the quota a pod was refused by (``exceeded quota: NAME, requested: a=1,b=2,
    used: ...``) would take that pod now; False when it cannot be read."""
    match = _REFUSAL.search(refusal)
    if match is None or not gateway.can_i("list", "", "resourcequotas"):
        return False
    name = match.group(1).strip()
    requested = dict(part.split("=", 1) for part in match.group(2).split(",") if "=" in part)
    quota = next((q for q in gateway.list_resource_quotas()
                  if q["metadata"]["name"] == name), None)
    status = (quota or {}).get("status") or {}
    hard, used = status.get("hard") or {}, status.get("used") or {}
    try:
        return quota is not None and all(
            quantity(used.get(k, 0)) + quantity(v) <= quantity(hard[k])
            for k, v in requested.items() if k in hard)
    except ValueError:
        return False
