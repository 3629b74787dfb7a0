"""What the app really serves, read independently of deployer (through the API server)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from kubernetes.client.rest import ApiException

from tests.e2e.lab import (
    CLIENT_ADDRESSES,
    live_pods,
    version_via_pod_proxy,
    version_via_service,
    wait_for,
)


def versions_by_pod(kube: Any, namespace: str, selector: str = "app=hello") -> dict[str, str]:
    """Every live pod's /version answer (or its error), via the API server's pod proxy."""
    out = {}
    for pod in live_pods(kube, namespace, selector):
        try:
            out[pod.metadata.name] = version_via_pod_proxy(kube, namespace, pod.metadata.name)
        except Exception as exc:  # noqa: BLE001 - the answer is what the test inspects
            out[pod.metadata.name] = f"error: {type(exc).__name__}"
    return out


def journal(kube: Any, namespace: str, app: str = "hello") -> dict[str, str]:
    """The data of the app's journal ConfigMap (deployer-<app>), or {} if there is none."""
    try:
        cm = kube.core.read_namespaced_config_map(f"deployer-{app}", namespace)
    except ApiException as exc:
        if exc.status == 404:
            return {}
        raise
    return dict(cm.data or {})


def run_record(kube: Any, namespace: str, app: str = "hello") -> dict[str, Any] | None:
    """The run in progress as deployer records it in the app's journal, or None."""
    raw = journal(kube, namespace, app).get("run")
    return json.loads(raw) if raw else None


def analysing(kube: Any, namespace: str, app: str = "hello") -> bool:
    """The recorded run is at a traffic analysis step (a canary step's VerifyTraffic)."""
    record = run_record(kube, namespace, app) or {}
    steps = (record.get("plan") or {}).get("steps") or []
    at = record.get("position")
    return isinstance(at, int) and 0 <= at < len(steps) and \
        steps[at].get("type") == "VerifyTraffic"


def deployment_image(kube: Any, namespace: str, name: str = "hello") -> str:
    dep = kube.apps.read_namespaced_deployment(name, namespace)
    return str(dep.spec.template.spec.containers[0].image)


def resource_versions(kube: Any, namespace: str) -> dict[str, str]:
    """resourceVersion of every Deployment, ReplicaSet, Service, ConfigMap and Lease: proof
    that nothing changed.

    Taken once the garbage collector has nothing left to do: a ReplicaSet whose Deployment
    was deleted (background propagation) is removed by the cluster a moment later, which
    is no one's write and would otherwise look like a change between two snapshots.
    """
    def snapshot() -> dict[str, str] | None:
        out = {}
        deployments = {d.metadata.uid: d for d in
                       kube.apps.list_namespaced_deployment(namespace).items}
        for d in deployments.values():
            out[f"deployment/{d.metadata.name}"] = d.metadata.resource_version
        for rs in kube.apps.list_namespaced_replica_set(namespace).items:
            owners = [o.uid for o in rs.metadata.owner_references or []
                      if o.kind == "Deployment"]
            if owners and not any(uid in deployments for uid in owners):
                return None  # an orphan the garbage collector is about to remove
            out[f"replicaset/{rs.metadata.name}"] = rs.metadata.resource_version
        for s in kube.core.list_namespaced_service(namespace).items:
            out[f"service/{s.metadata.name}"] = s.metadata.resource_version
        for cm in kube.core.list_namespaced_config_map(namespace).items:
            if cm.metadata.name != "kube-root-ca.crt":  # the cluster's own, in every namespace
                out[f"configmap/{cm.metadata.name}"] = cm.metadata.resource_version
        for lease in kube.coordination.list_namespaced_lease(namespace).items:
            out[f"lease/{lease.metadata.name}"] = lease.metadata.resource_version
        return out

    return wait_for(snapshot, 60, 0.3, "the garbage collector to remove orphaned ReplicaSets")


class ServiceClient:
    """A background client of the Service: it calls it from the lab's client addresses in
    turn, records every answer and every failed request, and stops by itself at the latest
    after `limit` seconds. Use it as a context manager around what it should watch."""

    def __init__(self, kube: Any, namespace: str, service: str = "hello", *,
                 clients: int = 8, pause: float = 0.2, limit: float = 400,
                 path: str = "/version"):
        self.kube, self.namespace, self.service = kube, namespace, service
        self.path = path
        self.addresses = CLIENT_ADDRESSES[:clients]
        self.pause, self.limit = pause, limit
        self.answers: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def failed(self) -> int:
        return len(self.errors)

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        i = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            ip = self.addresses[i % len(self.addresses)]
            i += 1
            try:
                self.answers.append(version_via_service(self.namespace, self.service, ip,
                                                        self.path, kube=self.kube,
                                                        timeout=2))
            except Exception as exc:  # noqa: BLE001 - a failed request is counted, not raised
                self.errors.append(f"{time.strftime('%H:%M:%S')} {ip}: {exc!r}"[:300])
            time.sleep(self.pause)

    def __enter__(self) -> ServiceClient:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        print(f"background client: {len(self.answers)} answers "
              f"{sorted(set(self.answers))}, {self.failed} failed requests")
        for error in self.errors:
            print(f"  failed: {error}")


class PodCounter:
    """Watches the pods a selector matches and keeps the most that ran at once: pods not
    yet finished and not being deleted (Kubernetes' own surge counts them the same way;
    a terminating pod has left the Service already). Use it as a context manager."""

    def __init__(self, kube: Any, namespace: str, selector: str = "app=hello"):
        self.kube, self.namespace, self.selector = kube, namespace, selector
        self.most = 0
        self.events = 0
        self._alive: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for event in w.stream(self.kube.core.list_namespaced_pod, self.namespace,
                                      label_selector=self.selector, timeout_seconds=5):
                    pod = event["object"]
                    name = pod.metadata.name
                    done = pod.status.phase in ("Succeeded", "Failed")
                    if event["type"] == "DELETED" or pod.metadata.deletion_timestamp or done:
                        self._alive.discard(name)
                    else:
                        self._alive.add(name)
                    self.events += 1
                    self.most = max(self.most, len(self._alive))
                    if self._stop.is_set():
                        break
            except Exception:  # noqa: BLE001 - a dropped watch is started again
                time.sleep(0.2)
            finally:
                w.stop()

    def __enter__(self) -> PodCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        print(f"pod counter: at most {self.most} pods of {self.selector} at once "
              f"({self.events} events)")
