"""Pod failure reasons: decide in seconds what ``kubectl rollout status`` only
notices when the progress deadline passes.

Some reasons are final the moment they appear (an image that does not exist, an
invalid image name). Others are only final when they persist, because a healthy
rollout shows them too, briefly: a container that crashes once and then runs, a
config map cache that syncs a second late, a pod waiting a moment for room on a
node. Those are tracked by how long they have been seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from deployer.model import Measurement, Phase, PodFailure

CHECK = "pod-failures"

FINAL_WAITING = {"InvalidImageName", "ErrImageNeverPull", "ImagePullBackOff"}
PULL_NOT_FOUND = ("not found", "failed to resolve reference", "pull access denied",
                  "manifest unknown", "repository does not exist", "no such host")
# reason -> seconds it must persist before it is final
PERSISTENT = {
    "ErrImagePull": 10.0,
    "CreateContainerConfigError": 15.0,
    "CreateContainerError": 15.0,
    "RunContainerError": 15.0,
    "Unschedulable": 10.0,
    "ReplicaFailure": 10.0,
}
TRANSIENT_FAILED_PHASE = {"Evicted", "Preempting", "Shutdown", "NodeShutdown", "Terminated"}


def _containers(pod: dict[str, Any]) -> Iterable[dict[str, Any]]:
    status = pod.get("status") or {}
    yield from status.get("initContainerStatuses") or []
    yield from status.get("containerStatuses") or []


def _image_of(pod: dict[str, Any], container: str) -> str | None:
    spec = pod.get("spec") or {}
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        if c.get("name") == container:
            return str(c.get("image"))
    return None


@dataclass
class PodFailureCheck:
    """Stateful across evaluations so that persistence can be measured."""

    clock: Callable[[], float]
    crashloop_restarts: int = 1
    _first_seen: dict[tuple[str, str, str], float] = field(default_factory=dict)

    def evaluate(self, pods: list[dict[str, Any]],
                 deployment: dict[str, Any] | None = None) -> tuple[Measurement, list[PodFailure]]:
        now = self.clock()
        seen: set[tuple[str, str, str]] = set()
        failures: list[PodFailure] = []
        pending: list[str] = []

        def persisted(key: tuple[str, str, str]) -> float:
            seen.add(key)
            return now - self._first_seen.setdefault(key, now)

        for pod in pods:
            name = pod["metadata"]["name"]
            if pod["metadata"].get("deletionTimestamp"):
                continue
            status = pod.get("status") or {}
            if status.get("phase") == "Failed":
                if status.get("reason") not in TRANSIENT_FAILED_PHASE:
                    failures.append(PodFailure(name, None, status.get("reason") or "Failed",
                                               status.get("message") or "pod failed"))
                continue
            for cond in status.get("conditions") or []:
                if (cond.get("type") == "PodScheduled" and cond.get("status") == "False"
                        and cond.get("reason") == "Unschedulable"):
                    key = (name, "", "Unschedulable")
                    age = persisted(key)
                    if age >= PERSISTENT["Unschedulable"]:
                        failures.append(PodFailure(name, None, "Unschedulable",
                                                   cond.get("message") or "unschedulable"))
                    else:
                        pending.append(f"{name} unschedulable for {age:.0f}s")
            for cs in _containers(pod):
                container = cs.get("name", "")
                waiting = (cs.get("state") or {}).get("waiting") or {}
                reason = waiting.get("reason")
                if not reason or reason in ("ContainerCreating", "PodInitializing"):
                    continue
                message = waiting.get("message") or ""
                image = _image_of(pod, container) or cs.get("image")
                last = (cs.get("lastState") or {}).get("terminated") or {}
                exit_code = last.get("exitCode")
                final = False
                not_found = any(m in message.lower() for m in PULL_NOT_FOUND)
                if reason in FINAL_WAITING or (reason == "ErrImagePull" and not_found):
                    final = True
                elif reason == "CrashLoopBackOff":
                    final = int(cs.get("restartCount", 0)) >= self.crashloop_restarts
                    if not final:
                        pending.append(f"{name}/{container} crashed once (exit {exit_code})")
                elif reason in PERSISTENT:
                    age = persisted((name, container, reason))
                    final = age >= PERSISTENT[reason]
                    if not final:
                        pending.append(f"{name}/{container} {reason} for {age:.0f}s")
                if final:
                    if reason == "CrashLoopBackOff" and exit_code is not None:
                        message = (f"container exited with code {exit_code}"
                                   f" ({last.get('reason', 'Error')}), restarted "
                                   f"{cs.get('restartCount', 0)} times")
                    failures.append(PodFailure(name, container, reason, message, image=image,
                                               exit_code=exit_code))

        if deployment is not None:
            for cond in (deployment.get("status") or {}).get("conditions") or []:
                if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
                    age = persisted((deployment["metadata"]["name"], "", "ReplicaFailure"))
                    if age >= PERSISTENT["ReplicaFailure"]:
                        failures.append(PodFailure(
                            deployment["metadata"]["name"], None,
                            cond.get("reason") or "ReplicaFailure", cond.get("message") or ""))
                    else:
                        pending.append(f"cannot create pods for {age:.0f}s: "
                                       f"{cond.get('message', '')}")

        for key in list(self._first_seen):
            if key not in seen:
                del self._first_seen[key]

        if failures:
            first = failures[0]
            what = f"{first.pod}/{first.container}" if first.container else first.pod
            image = f" (image {first.image})" if first.image else ""
            return (Measurement(CHECK, Phase.FAILED,
                                f"{what}: {first.reason}{image}: {first.message}".rstrip(": "),
                                {"failures": [f.to_json() for f in failures]}), failures)
        if pending:
            return Measurement(CHECK, Phase.RUNNING, "; ".join(pending)), []
        return Measurement(CHECK, Phase.SUCCESSFUL, f"no failure reason on {len(pods)} pods"), []


def not_ready_reasons(pods: list[dict[str, Any]]) -> list[str]:
    """Why pods are not Ready, in words: for the report when a deadline passes."""
    out = []
    for pod in pods:
        status = pod.get("status") or {}
        for cond in status.get("conditions") or []:
            if cond.get("type") == "Ready" and cond.get("status") != "True":
                out.append(f"{pod['metadata']['name']}: not Ready "
                           f"({cond.get('reason') or 'probe failing'})")
    return out
