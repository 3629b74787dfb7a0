"""A fake of deployer's own gateway (never of the Kubernetes API) for unit tests."""

from __future__ import annotations

import copy
from typing import Any

from deployer.errors import Conflict


def deployment(name: str = "hello", image: str = "hello:v1", *, replicas: int = 3,
               generation: int = 1, observed: int = 1, updated: int | None = None,
               current: int | None = None, available: int | None = None,
               revision: int = 1, conditions: list[dict[str, Any]] | None = None,
               strategy: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "generation": generation,
                     "resourceVersion": "1",
                     "annotations": {"deployment.kubernetes.io/revision": str(revision)}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name, "track": "stable"}},
            "strategy": strategy or {"type": "RollingUpdate",
                                     "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "progressDeadlineSeconds": 120,
            "template": {"metadata": {"labels": {"app": name, "track": "stable"}},
                         "spec": {"containers": [{"name": name, "image": image,
                                                  "ports": [{"name": "http",
                                                             "containerPort": 8080}]}]}},
        },
        "status": {
            "observedGeneration": observed,
            "replicas": replicas if current is None else current,
            "updatedReplicas": replicas if updated is None else updated,
            "availableReplicas": replicas if available is None else available,
            "readyReplicas": replicas if available is None else available,
            "conditions": conditions or [],
        },
    }


def pod(name: str, *, waiting: str | None = None, message: str = "", restarts: int = 0,
        exit_code: int | None = None, ready: bool = True, phase: str = "Running",
        unschedulable: str | None = None, image: str = "hello:v2") -> dict[str, Any]:
    state: dict[str, Any] = {"running": {}} if waiting is None else {
        "waiting": {"reason": waiting, "message": message}}
    last = {"terminated": {"exitCode": exit_code, "reason": "Error"}} if exit_code is not None \
        else {}
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if unschedulable:
        conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                           "message": unschedulable})
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "hello", "image": image}]},
        "status": {"phase": phase, "conditions": conditions,
                   "containerStatuses": [] if unschedulable else [
                       {"name": "hello", "state": state, "lastState": last,
                        "restartCount": restarts, "image": image}]},
    }


class FakeGateway:
    """Holds Deployments in memory and counts writes; can be told to conflict."""

    namespace = "test"

    def __init__(self, *deployments: dict[str, Any]):
        self.deployments = {d["metadata"]["name"]: copy.deepcopy(d) for d in deployments}
        self.writes: list[tuple[str, dict[str, Any]]] = []
        self.conflicts_left = 0

    def get_deployment(self, name: str) -> dict[str, Any] | None:
        d = self.deployments.get(name)
        return copy.deepcopy(d) if d else None

    def replace_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        current = self.deployments[name]
        if self.conflicts_left:
            self.conflicts_left -= 1
            current["metadata"]["resourceVersion"] = str(
                int(current["metadata"]["resourceVersion"]) + 1)
            raise Conflict(f"deployment {name} changed")
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise Conflict(f"deployment {name} changed")
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
        self.deployments[name] = body
        self.writes.append(("replace", body))
        return copy.deepcopy(body)

    def patch_deployment(self, name: str, patch: dict[str, Any], *,
                         resource_version: str | None = None,
                         idempotent: bool = False) -> dict[str, Any]:
        current = self.deployments[name]
        annotations = current["metadata"].setdefault("annotations", {})
        for k, v in (patch.get("metadata") or {}).get("annotations", {}).items():
            if v is None:
                annotations.pop(k, None)
            else:
                annotations[k] = v
        self.writes.append(("patch", patch))
        return copy.deepcopy(current)

    def list_replicasets(self, selector: str) -> list[dict[str, Any]]:
        return []

    def list_pods(self, selector: str) -> list[dict[str, Any]]:
        return []

    def list_events(self, name: str) -> list[dict[str, Any]]:
        return []

    def pod_logs(self, *args: Any, **kwargs: Any) -> list[str]:
        return []
