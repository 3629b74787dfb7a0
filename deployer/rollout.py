"""Rollout status, by the same rule as ``kubectl rollout status``.

A Deployment is rolled out when the controller has observed the latest spec
(observedGeneration >= generation), every desired replica runs the new template
(updatedReplicas == spec.replicas), no old replicas are left (status.replicas ==
updatedReplicas) and every updated replica is available. A Progressing condition
with reason ProgressDeadlineExceeded fails the rollout, unless it was set before
this run began (an old failure is not blamed on the new rollout).
"""

from __future__ import annotations

from typing import Any

from deployer import timestamps
from deployer.model import Measurement, Phase

CHECK = "rollout"


def condition(deployment: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (deployment.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def rollout_status(deployment: dict[str, Any], *, since: float | None = None) -> Measurement:
    name = deployment["metadata"]["name"]
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    generation = deployment["metadata"].get("generation", 0)
    observed = status.get("observedGeneration", 0)
    counts = {
        "desired": spec.get("replicas", 1),
        "updated": status.get("updatedReplicas", 0),
        "current": status.get("replicas", 0),
        "available": status.get("availableReplicas", 0),
        "ready": status.get("readyReplicas", 0),
    }
    if observed < generation:
        return Measurement(CHECK, Phase.RUNNING,
                           f"waiting for the controller to observe {name} "
                           f"(generation {generation}, observed {observed})", counts)
    progressing = condition(deployment, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        changed = timestamps.parse(progressing.get("lastUpdateTime"))
        if since is None or changed is None or changed >= since - 1:
            return Measurement(CHECK, Phase.FAILED,
                               f"deployment {name} exceeded its progress deadline: "
                               f"{progressing.get('message', '')}".rstrip(": "), counts)
    if spec.get("replicas") is not None and counts["updated"] < counts["desired"]:
        return Measurement(CHECK, Phase.RUNNING,
                           f"{counts['updated']} of {counts['desired']} new replicas "
                           "have been updated", counts)
    if counts["current"] > counts["updated"]:
        return Measurement(CHECK, Phase.RUNNING,
                           f"{counts['current'] - counts['updated']} old replicas are "
                           "pending termination", counts)
    if counts["available"] < counts["updated"]:
        return Measurement(CHECK, Phase.RUNNING,
                           f"{counts['available']} of {counts['updated']} updated replicas "
                           "are available", counts)
    return Measurement(CHECK, Phase.SUCCESSFUL, f"deployment {name} successfully rolled out",
                       counts)
