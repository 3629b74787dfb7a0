"""The lab cluster itself: Given the lab is up, When the demo app runs, Then it behaves
like the real thing (readiness probes, Service routing with ClientIP affinity, and real
image-pull, crash-loop and readiness failures)."""

from __future__ import annotations

import time

import pytest

from tests.e2e.lab import (
    CLIENT_ADDRESSES,
    Kube,
    events_for,
    live_pods,
    pod_ready,
    ready_endpoint_ips,
    version_via_pod_ip,
    version_via_pod_proxy,
    wait_for,
    waiting_reasons,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

STABLE = "app=hello,track=stable"


def test_given_the_lab_when_listing_nodes_then_lab_node_is_ready(kube: Kube) -> None:
    """Given the lab is up, When nodes are listed, Then lab-node is there and Ready."""
    nodes = {n.metadata.name: n for n in kube.core.list_node().items}

    assert "lab-node" in nodes, sorted(nodes)
    ready = [c for c in nodes["lab-node"].status.conditions if c.type == "Ready"]
    assert ready and ready[0].status == "True", ready


def test_given_hello_v1_when_deployed_then_three_pods_become_ready_through_probes(
    kube: Kube, namespace: str, deploy_hello
) -> None:
    """Given the demo manifests, When hello:v1 is deployed, Then it becomes available with
    3 Running, Ready pods whose readiness and liveness probes are real HTTP probes."""
    dep = deploy_hello(namespace)

    assert dep.status.available_replicas == 3
    pods = live_pods(kube, namespace, STABLE)
    assert len(pods) == 3, [p.metadata.name for p in pods]
    for pod in pods:
        assert pod.status.phase == "Running"
        assert pod_ready(pod), pod.status.conditions
        container = pod.spec.containers[0]
        assert container.image == "hello:v1"
        assert container.readiness_probe.http_get.path == "/healthz"
        assert container.readiness_probe.http_get.port == "http"
        assert container.readiness_probe.period_seconds == 2
        assert container.liveness_probe.http_get.path == "/healthz"
        status = pod.status.container_statuses[0]
        assert status.ready and status.restart_count == 0, status
        assert status.state.running is not None


def test_given_hello_v1_when_asking_three_ways_then_version_is_1_0_0(
    kube: Kube, namespace: str, deploy_hello, version_via_service
) -> None:
    """Given hello:v1 is available, When /version is read through the ClusterIP Service,
    the API server's pod proxy and each pod's IP, Then every answer is 1.0.0."""
    deploy_hello(namespace)
    pods = live_pods(kube, namespace, STABLE)

    via_service = version_via_service(namespace, "hello", CLIENT_ADDRESSES[0])
    via_proxy = {p.metadata.name: version_via_pod_proxy(kube, namespace, p.metadata.name)
                 for p in pods}
    via_ip = {p.status.pod_ip: version_via_pod_ip(p.status.pod_ip) for p in pods}

    assert via_service == "1.0.0"
    assert set(via_proxy.values()) == {"1.0.0"} and len(via_proxy) == 3, via_proxy
    assert set(via_ip.values()) == {"1.0.0"} and len(via_ip) == 3, via_ip


def test_given_canary_behind_the_service_when_clients_repeat_calls_then_each_sticks_to_a_version(
    kube: Kube, namespace: str, deploy_hello, version_via_service
) -> None:
    """Given 3 stable v1 pods and 1 canary v2 pod behind the ClientIP-affine Service,
    When each of 40 client addresses calls /version 5 times,
    Then every client always gets the same version, and both versions are served."""
    deploy_hello(namespace, image="hello:v1", replicas=3)
    deploy_hello(namespace, image="hello:v2", replicas=1, name="hello-canary",
                 labels={"app": "hello", "track": "canary"})
    assert len(live_pods(kube, namespace, "app=hello,track=canary")) == 1
    wait_for(lambda: len(ready_endpoint_ips(kube, namespace, "hello")) == 4, 30, 0.2,
             "4 ready endpoints behind the hello Service")
    time.sleep(2)  # kube-proxy applies endpoint changes at most once a second

    seen: dict[str, list[str]] = {}
    for client_ip in CLIENT_ADDRESSES:
        seen[client_ip] = [version_via_service(namespace, "hello", client_ip) for _ in range(5)]

    assert len(seen) >= 20
    unsteady = {ip: answers for ip, answers in seen.items() if len(set(answers)) != 1}
    assert not unsteady, f"clients that switched versions: {unsteady}"
    per_client = {ip: answers[0] for ip, answers in seen.items()}
    assert set(per_client.values()) == {"1.0.0", "2.0.0"}, per_client


def test_given_missing_tag_v9_when_deployed_then_image_pull_error_within_30s(
    kube: Kube, namespace: str, deploy_hello
) -> None:
    """Given hello:v9 was never imported, When it is deployed,
    Then its pod waits with ErrImagePull/ImagePullBackOff within 30 s."""
    deploy_hello(namespace, image="hello:v9", replicas=1, wait=False)

    def pull_error() -> list[str]:
        pods = live_pods(kube, namespace, STABLE)
        return [r for p in pods for r in waiting_reasons(p)
                if r in ("ErrImagePull", "ImagePullBackOff")]

    reasons = wait_for(pull_error, 30, 0.5, "ErrImagePull or ImagePullBackOff")
    assert reasons
    pod = live_pods(kube, namespace, STABLE)[0]
    assert not pod_ready(pod)


def test_given_crashing_v4_when_deployed_then_crash_loop_backoff_within_60s(
    kube: Kube, namespace: str, deploy_hello
) -> None:
    """Given hello:v4 exits 3 at start, When it is deployed,
    Then its pod is in CrashLoopBackOff within 60 s, with exit code 3 and its log line."""
    deploy_hello(namespace, image="hello:v4", replicas=1, wait=False)

    def crash_looping():
        pods = live_pods(kube, namespace, STABLE)
        return [p for p in pods if "CrashLoopBackOff" in waiting_reasons(p)]

    pod = wait_for(crash_looping, 60, 0.5, "CrashLoopBackOff")[0]
    status = pod.status.container_statuses[0]
    assert status.restart_count >= 1
    assert status.last_state.terminated.exit_code == 3, status.last_state
    log = kube.core.read_namespaced_pod_log(pod.metadata.name, namespace, previous=True)
    assert "hello v4: fatal: config missing" in log


def test_given_v3_without_healthz_when_deployed_then_it_runs_but_is_not_ready_after_15s(
    kube: Kube, namespace: str, deploy_hello
) -> None:
    """Given hello:v3 has no /healthz, When it is deployed,
    Then after 15 s its pod is Running but not Ready, with failed readiness probes."""
    deploy_hello(namespace, image="hello:v3", replicas=1, wait=False)

    def running():
        pods = live_pods(kube, namespace, STABLE)
        return [p for p in pods if p.status.container_statuses
                and p.status.container_statuses[0].state.running]

    pod = wait_for(running, 30, 0.5, "the v3 container to run")[0]
    started = pod.status.container_statuses[0].state.running.started_at
    time.sleep(max(0.0, 15 - (time.time() - started.timestamp())))

    pod = kube.core.read_namespaced_pod(pod.metadata.name, namespace)
    assert pod.status.phase == "Running"
    assert not pod_ready(pod), pod.status.conditions
    assert not pod.status.container_statuses[0].ready

    def probe_failures():  # the kubelet's event can lag the probe on a loaded node
        return [e.message for e in events_for(kube, namespace, pod.metadata.name)
                if e.reason == "Unhealthy" and "Readiness probe failed" in e.message]

    wait_for(probe_failures, 30, 1.0, "an Unhealthy event: Readiness probe failed")
