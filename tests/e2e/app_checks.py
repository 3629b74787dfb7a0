"""What the app really serves, read independently of deployer (through the API server)."""

from __future__ import annotations

from typing import Any

from tests.e2e.lab import live_pods, version_via_pod_proxy


def versions_by_pod(kube: Any, namespace: str, selector: str = "app=hello") -> dict[str, str]:
    """Every live pod's /version answer (or its error), via the API server's pod proxy."""
    out = {}
    for pod in live_pods(kube, namespace, selector):
        try:
            out[pod.metadata.name] = version_via_pod_proxy(kube, namespace, pod.metadata.name)
        except Exception as exc:  # noqa: BLE001 - the answer is what the test inspects
            out[pod.metadata.name] = f"error: {type(exc).__name__}"
    return out


def deployment_image(kube: Any, namespace: str, name: str = "hello") -> str:
    dep = kube.apps.read_namespaced_deployment(name, namespace)
    return str(dep.spec.template.spec.containers[0].image)


def resource_versions(kube: Any, namespace: str) -> dict[str, str]:
    """resourceVersion of every Deployment, ReplicaSet and Service: proof that nothing changed."""
    out = {}
    for d in kube.apps.list_namespaced_deployment(namespace).items:
        out[f"deployment/{d.metadata.name}"] = d.metadata.resource_version
    for rs in kube.apps.list_namespaced_replica_set(namespace).items:
        out[f"replicaset/{rs.metadata.name}"] = rs.metadata.resource_version
    for s in kube.core.list_namespaced_service(namespace).items:
        out[f"service/{s.metadata.name}"] = s.metadata.resource_version
    return out
