"""The rollout verifier: rollout status + pod failure reasons + ``/version`` per new pod.

``evaluate(feed)`` looks at the current state once and returns an :class:`Evaluation`;
the engine calls it each time a watch wakes it (or an interval passes) until the
evaluation is completed or a deadline passes. The state comes from the feed's watches
when they are in step with the server (no request), else from reads.

New pods are asked for their version as soon as their containers run, while the
rollout goes on, not after it: a pod that is not Ready yet may not answer (its errors
are not counted against it), but what it answers counts. A pod that answered a version is
asked again ANSWER_SPACING seconds later, so its consecutive samples are in before it is
Ready (the kubelet probes readiness every few seconds) and verification ends with the
rollout, not samples later; one that did not answer (not listening yet, an error) waits
SAMPLE_SPACING seconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from deployer.health.http import ProbeOptions, VersionCheck, VersionProbe
from deployer.health.pods import QUOTA_EXCEEDED, PodFailureCheck, unscheduled, wants_room
from deployer.labels import CANARY_TRACK, TRACK_KEY
from deployer.model import REVISION_ANNOTATION, Measurement, Phase, PodFailure
from deployer.rollout import rollout_status
from deployer.validation import quantity

if TYPE_CHECKING:
    from deployer.gateway import ClusterGateway

SCALE_UP_LOOKUPS = 3  # unschedulable pods whose events are read, per evaluation
SCALE_UP_RECHECK = 2.0  # seconds before an unschedulable pod's events are read again
SAMPLE_SPACING = 1.0  # seconds before a pod that did not answer /version is asked again
ANSWER_SPACING = 0.25  # seconds before a pod that answered a version is asked again


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
    next_sample: float | None = None  # seconds until a pod is due to be asked again

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


DEFAULT_PORT = 8080  # where a pod is asked when its container declares no port


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


def is_running(pod: dict[str, Any], container: str | None) -> bool:
    """Whether the pod has an address and its (deployed) container runs: it may answer."""
    status = pod.get("status") or {}
    states = [c for c in status.get("containerStatuses") or []
              if not container or c.get("name") == container]
    return bool(status.get("podIP")) and bool(states) and \
        all("running" in (c.get("state") or {}) for c in states)


def _unscheduled_message(pod: dict[str, Any]) -> str:
    return next((c.get("message") or "" for c in (pod.get("status") or {}).get("conditions")
                 or [] if c.get("type") == "PodScheduled"), "")


class Source(Protocol):
    """What the verifier may take from a watch: a source's objects, or None when that
    watch is not in step with the server (see cluster.ChangeFeed)."""

    def current(self, source: str) -> list[dict[str, Any]] | None: ...


def _labels_match(selector: dict[str, str], obj: dict[str, Any]) -> bool:
    labels = obj["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


class RolloutVerifier:
    def __init__(self, gateway: ClusterGateway, deployment: str, expected_version: str | None, *,
                 clock: Callable[[], float], since: float, container: str | None = None,
                 options: VerifyOptions | None = None, see_through: bool = False):
        """``see_through``: a wrong (or unreadable) answer to /version ends the evaluation
        only once the rollout is complete, not while it goes on (a rollback's wait)."""
        self.gateway = gateway
        self.name = deployment
        self.expected_version = expected_version
        self.since = since
        self.options = options or VerifyOptions()
        self.container = container or self.options.container
        self.see_through = see_through
        self.clock = clock
        self.pod_check = PodFailureCheck(clock=clock)
        self._due: dict[str, float] = {}  # pod -> when it may be asked its version again
        self._scale_ups: dict[str, tuple[float, bool]] = {}  # pod -> (looked at, found)
        self.version_check = (VersionCheck(expected_version, self.options.samples,
                                           self.options.failure_limit, self.options.error_limit)
                              if expected_version and self.options.http_mode != "off" else None)
        self._uid: str | None = None
        self.probe = VersionProbe(gateway, self.options.probe)

    def close(self) -> None:
        self.probe.close()

    def new_pods(self, deployment: dict[str, Any],
                 feed: Source | None = None) -> list[dict[str, Any]] | None:
        """The pods of the Deployment's current ReplicaSet that are not terminating (None
        before the controller made that ReplicaSet)."""
        selector = selector_of(deployment)
        replicasets = feed.current("replicasets") if feed is not None else None
        rs = new_replicaset(deployment, self.gateway.list_replicasets(selector)
                            if replicasets is None else replicasets)
        if rs is None:
            return None
        hash_ = (rs["metadata"].get("labels") or {}).get("pod-template-hash")
        pods = self._pods(deployment, feed, {"pod-template-hash": str(hash_)})
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")]

    def _pods(self, deployment: dict[str, Any], feed: Source | None,
              labels: dict[str, str]) -> list[dict[str, Any]]:
        """The Deployment's pods (with these labels too), from the watch when it is in step."""
        seen = feed.current("pods") if feed is not None else None
        if seen is None:
            terms = ",".join(f"{k}={v}" for k, v in labels.items())
            selector = selector_of(deployment)
            return self.gateway.list_pods(f"{selector},{terms}" if terms else selector)
        return sorted((p for p in seen if _labels_match(labels, p)),
                      key=lambda p: str(p["metadata"]["name"]))

    def _deployment(self, feed: Source | None) -> dict[str, Any] | None:
        seen = feed.current("deployment") if feed is not None else None
        if seen is None:
            return self.gateway.get_deployment(self.name)
        return next((d for d in seen if d["metadata"]["name"] == self.name), None)

    def scaling_up(self, pods: list[dict[str, Any]], terminating: int = 0) -> frozenset[str]:
        """The unschedulable pods a cluster autoscaler is adding a node for (its
        TriggeredScaleUp event on the pod): read only while some pod is unschedulable, at
        most every SCALE_UP_RECHECK seconds per pod, and not while the app's own pods
        terminate and the pod waits for the room they free."""
        if terminating and all(wants_room(_unscheduled_message(p)) for p in pods
                               if p["metadata"]["name"] in unscheduled([p])):
            return frozenset()
        now = self.clock()
        for name in unscheduled(pods)[:SCALE_UP_LOOKUPS]:
            looked, found = self._scale_ups.get(name, (None, False))
            if not found and (looked is None or now - looked >= SCALE_UP_RECHECK):
                found = any(e.get("reason") == "TriggeredScaleUp"
                            for e in self.gateway.list_events(name))
                self._scale_ups[name] = (now, found)
        return frozenset(n for n in unscheduled(pods) if self._scale_ups.get(n, (0, False))[1])

    def terminating(self, deployment: dict[str, Any], pods: list[dict[str, Any]],
                    feed: Source | None = None) -> int:
        """How many of the app's own pods are terminating; read only while a new pod is
        unschedulable."""
        if not unscheduled(pods):
            return 0
        return sum(1 for p in self._pods(deployment, feed, {})
                   if p["metadata"].get("deletionTimestamp"))

    def quota_freeing(self, deployment: dict[str, Any], feed: Source | None = None) -> bool:
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
               for p in self._pods(deployment, feed, {})):
            return True
        return quota_has_room(self.gateway, refusal)

    def evaluate(self, feed: Source | None = None) -> Evaluation:
        dep = self._deployment(feed)
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
        pods = [] if observed else (self.new_pods(dep, feed) or [])
        terminating = self.terminating(dep, pods, feed)
        pod_m, failures = self.pod_check.evaluate(pods, dep,
                                                  quota_freeing=self.quota_freeing(dep, feed),
                                                  scaling_up=self.scaling_up(pods, terminating),
                                                  terminating=terminating)
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
        version_m, next_sample = None, None
        if self.version_check is not None:
            port = container_port(dep, self.container, self.options.port)
            if port is None:
                m = Measurement("http-version", Phase.ERROR,
                                "the container declares no port; pass --port for /version "
                                "checks")
                return Evaluation(Phase.ERROR, m.message, (*measurements, m), (), names, dep)
            version_m, next_sample = self._ask(pods, port, dep)
            if version_m.phase in (Phase.FAILED, Phase.ERROR) and (
                    rollout.phase is Phase.SUCCESSFUL or not self.see_through):
                return Evaluation(version_m.phase, version_m.message,
                                  (*measurements, version_m), (), names, dep)
        if rollout.phase is not Phase.SUCCESSFUL:
            # what the pods wait for, when it may still pass (a busy registry, a crash
            # once), is said beside the rollout's count
            message = rollout.message if pod_m.phase is not Phase.RUNNING else \
                f"{rollout.message}; {pod_m.message}"
            return Evaluation(Phase.RUNNING, message, tuple(measurements), (), names, dep,
                              next_sample)
        if version_m is None:
            return Evaluation(Phase.SUCCESSFUL, rollout.message, tuple(measurements), (), names,
                              dep)
        measurements.append(version_m)
        return Evaluation(version_m.phase, version_m.message, tuple(measurements), (), names,
                          dep, next_sample)

    def _ask(self, pods: list[dict[str, Any]], port: int | str,
             dep: dict[str, Any]) -> tuple[Measurement, float | None]:
        """Ask the new pods that may answer (and are due) for their version; the check's
        verdict over the Ready ones, and when the next pod is due."""
        assert self.version_check is not None
        check, now = self.version_check, self.clock()
        due: list[float] = []
        for pod in pods:
            name = pod["metadata"]["name"]
            if check.verified(name) or not is_running(pod, self.container):
                continue
            wait = self._due.get(name, now) - now
            if wait > 0:
                due.append(wait)
                continue
            sample = self.probe.sample(pod, port)
            check.record(sample, count_errors=is_ready(pod))
            spacing = ANSWER_SPACING if sample.ok else SAMPLE_SPACING
            self._due[name] = now + spacing
            if not check.verified(name):
                due.append(spacing)
        ready = [p["metadata"]["name"] for p in pods if is_ready(p)]
        starting = [p["metadata"]["name"] for p in pods if not is_ready(p)]
        # a pod the Deployment counts may not have reached the watch yet: all of them
        wanted = int((dep.get("status") or {}).get("updatedReplicas") or 0)
        return check.evaluate(ready, at_least=wanted, starting=starting), min(due, default=None)


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
