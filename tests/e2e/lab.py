"""Helpers for end-to-end tests against the lab cluster (see lab/up and lab/run).

Importable on their own (`from tests.e2e.lab import ...`); tests/e2e/conftest.py builds
its fixtures on them. Everything assumes the caller runs inside the lab's network
namespace (`lab/run ...`), where KUBECONFIG points at the lab's admin kubeconfig and the
client addresses below exist.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import secrets
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests" / "hello"
NOT_IN_LAB = "run through lab/run (make test-e2e)"

# Addresses on the lab's node bridge that a test may bind to, one per simulated client.
CLIENT_ADDRESSES = [f"10.200.0.{i}" for i in range(2, 42)]
# The source address deploy_hello calls a new Service from, to know that kube-proxy serves
# it: the last of the lab's client network, which no test and no deployer run uses (ClientIP
# affinity pins an address to the pod it met).
PROBE_ADDRESS = "10.201.3.254"

HELLO_PORT = 8080
DEFAULT_TIMEOUT = 120.0

T = TypeVar("T")


class LabUnavailable(RuntimeError):
    """The lab cannot be reached from here (not under lab/run, or the lab is down)."""


class WaitTimeout(AssertionError):
    """wait_for ran out of time (an AssertionError, so a test reports it as a failure)."""


# ----------------------------------------------------------------------------- client


@dataclass(frozen=True)
class Kube:
    """A Kubernetes client for the lab with the API groups the tests use."""

    api_client: client.ApiClient
    core: client.CoreV1Api
    apps: client.AppsV1Api
    coordination: client.CoordinationV1Api

    @classmethod
    def from_api_client(cls, api_client: client.ApiClient) -> Kube:
        return cls(api_client, client.CoreV1Api(api_client), client.AppsV1Api(api_client),
                   client.CoordinationV1Api(api_client))


def connect(timeout: float = 5.0) -> Kube:
    """Load KUBECONFIG and check that the API server answers; raise LabUnavailable if not."""
    if not os.environ.get("KUBECONFIG"):
        raise LabUnavailable(f"KUBECONFIG is not set: {NOT_IN_LAB}")
    try:
        config.load_kube_config()
        kube = Kube.from_api_client(client.ApiClient())
        client.VersionApi(kube.api_client).get_code(_request_timeout=timeout)
    except Exception as e:  # noqa: BLE001 - any failure here means "no lab"
        raise LabUnavailable(f"the lab's API server is unreachable ({e}): {NOT_IN_LAB}") from e
    return kube


@functools.lru_cache(maxsize=1)
def default_kube() -> Kube:
    """One shared, checked client (what the `kube` fixture returns)."""
    return connect()


# ----------------------------------------------------------------------------- waiting


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 60.0,
    interval: float = 0.5,
    message: str | Callable[[], str] = "condition",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call predicate until it returns something truthy, and return that.

    Exceptions of the types in `ignore` count as "not yet". On timeout raise WaitTimeout
    with `message` (a string, or a callable evaluated then, e.g. to describe the pods)
    and the last value or exception seen.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
        except ignore as e:
            last = e
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise WaitTimeout(
                f"timed out after {timeout:.0f} s waiting for {text} (last: {last!r})"
            )
        time.sleep(interval)


# ----------------------------------------------------------------------------- namespaces


def namespace_name(test_name: str, prefix: str = "e2e") -> str:
    """`e2e-<short test name>-<4 hex>`: a valid, unique namespace name (RFC 1123, <= 63)."""
    base = re.sub(r"^test_?", "", test_name.lower())
    base = re.sub(r"[^a-z0-9]+", "-", base).strip("-")[:40].strip("-") or "test"
    return f"{prefix}-{base}-{secrets.token_hex(2)}"


def create_namespace(kube: Kube, name: str, timeout: float = 30.0) -> str:
    """Create a namespace and wait until pods can be created in it.

    That is when its `default` ServiceAccount exists and, on clusters that still use
    token Secrets (the lab's 1.20), when its token has been added.
    """
    kube.core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, labels={"deployer.lab/e2e": "true"})
        )
    )

    def sa_ready() -> bool:
        sa = kube.core.read_namespaced_service_account("default", name)
        return bool(sa.secrets) or _server_minor(kube) >= 24

    wait_for(sa_ready, timeout, 0.2, f"the default ServiceAccount of {name}", (ApiException,))
    return name


def delete_namespace(kube: Kube, name: str) -> None:
    """Start deleting a namespace (and everything in it); do not wait for it to go."""
    try:
        kube.core.delete_namespace(
            name, body=client.V1DeleteOptions(propagation_policy="Background")
        )
    except ApiException as e:
        if e.status != 404:
            raise


@functools.lru_cache(maxsize=4)
def _server_minor(kube: Kube) -> int:
    info = client.VersionApi(kube.api_client).get_code()
    return int(re.sub(r"\D", "", info.minor) or 0)


# ----------------------------------------------------------------------------- hello app


def hello_manifests() -> tuple[dict[str, Any], dict[str, Any]]:
    """The demo app's Deployment and Service from manifests/hello/, as dicts."""
    docs = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    service = next(d for d in docs if d["kind"] == "Service")
    return deployment, service


def hello_deployment(
    image: str = "hello:v1",
    replicas: int = 3,
    name: str = "hello",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The manifest's Deployment with another image, size, name or pod labels.

    `image` may be a full reference ("hello:v2") or just a tag ("v2"). `labels` replaces
    the pod labels and the selector (e.g. {"app": "hello", "track": "canary"}).
    """
    dep = copy.deepcopy(hello_manifests()[0])
    dep["metadata"]["name"] = name
    dep["spec"]["replicas"] = replicas
    if labels is not None:
        dep["spec"]["selector"] = {"matchLabels": dict(labels)}
        dep["spec"]["template"]["metadata"]["labels"] = dict(labels)
        dep["metadata"]["labels"] = {**dep["metadata"].get("labels", {}), **labels}
    container = dep["spec"]["template"]["spec"]["containers"][0]
    container["image"] = image if ":" in image else f"hello:{image}"
    return dep


def deploy_hello(
    kube: Kube,
    namespace: str,
    image: str = "hello:v1",
    replicas: int = 3,
    name: str = "hello",
    labels: dict[str, str] | None = None,
    wait: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    service: bool = True,
) -> client.V1Deployment:
    """Create the demo app in a namespace, as `kubectl apply -f manifests/hello/` would.

    Creates the Deployment (see hello_deployment for the overrides) and, unless
    service=False, the `hello` Service when it does not exist yet. With wait=True, waits
    until the Deployment is available and, when this call created the Service, until it
    answers through kube-proxy (which follows the endpoints a moment later): a test's
    traffic starts on a Service that serves. Returns the Deployment as last read.
    """
    body = hello_deployment(image, replicas, name, labels)
    kube.apps.create_namespaced_deployment(namespace, body)
    created = False
    if service:
        try:
            kube.core.create_namespaced_service(namespace, hello_manifests()[1])
            created = True
        except ApiException as e:
            if e.status != 409:
                raise
    if not wait:
        return kube.apps.read_namespaced_deployment(name, namespace)
    dep = wait_deployment_available(kube, namespace, name, timeout)
    if created:
        wait_for(lambda: version_via_service(namespace, "hello", PROBE_ADDRESS, kube=kube,
                                             timeout=2.0),
                 30, 0.2, f"service {namespace}/hello to answer through kube-proxy",
                 ignore=(httpx.HTTPError, OSError))
    return dep


def deployment_available(dep: client.V1Deployment) -> bool:
    """Every replica updated, ready and available, and the status is current."""
    want = dep.spec.replicas if dep.spec.replicas is not None else 1
    st = dep.status
    return (
        (st.observed_generation or 0) >= (dep.metadata.generation or 0)
        and (st.replicas or 0) == want
        and (st.updated_replicas or 0) == want
        and (st.ready_replicas or 0) == want
        and (st.available_replicas or 0) == want
        and not st.unavailable_replicas
    )


def wait_deployment_available(
    kube: Kube, namespace: str, name: str, timeout: float = DEFAULT_TIMEOUT
) -> client.V1Deployment:
    def check() -> client.V1Deployment | None:
        dep = kube.apps.read_namespaced_deployment(name, namespace)
        return dep if deployment_available(dep) else None

    selector = None
    with_sel = kube.apps.read_namespaced_deployment(name, namespace).spec.selector
    if with_sel and with_sel.match_labels:
        selector = ",".join(f"{k}={v}" for k, v in sorted(with_sel.match_labels.items()))
    return wait_for(
        check,
        timeout,
        0.5,
        lambda: f"deployment {namespace}/{name} to be available; pods: "
        + describe_pods(kube, namespace, selector),
    )


# ----------------------------------------------------------------------------- pods


def live_pods(kube: Kube, namespace: str, selector: str | None = None) -> list[client.V1Pod]:
    """Pods of a namespace (optionally by label selector) that are not being deleted."""
    pods = kube.core.list_namespaced_pod(namespace, label_selector=selector or "").items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def pod_ready(pod: client.V1Pod) -> bool:
    return any(
        c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or [])
    )


def waiting_reasons(pod: client.V1Pod) -> list[str]:
    """Why the pod's containers wait (ErrImagePull, CrashLoopBackOff, ...), if they do."""
    return [
        c.state.waiting.reason
        for c in (pod.status.container_statuses or [])
        if c.state and c.state.waiting and c.state.waiting.reason
    ]


def describe_pods(kube: Kube, namespace: str, selector: str | None = None) -> str:
    try:
        pods = live_pods(kube, namespace, selector)
    except ApiException as e:
        return f"(cannot list pods: {e.status})"
    if not pods:
        return "none"
    parts = []
    for p in pods:
        reasons = ",".join(waiting_reasons(p)) or "-"
        parts.append(
            f"{p.metadata.name} phase={p.status.phase} ready={pod_ready(p)} waiting={reasons}"
        )
    return "; ".join(parts)


def events_for(kube: Kube, namespace: str, name: str) -> list[client.CoreV1Event]:
    """Events about one object (e.g. a pod), oldest first."""
    events = kube.core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}"
    ).items
    return sorted(
        events, key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp
    )


# ----------------------------------------------------------------------------- the app's answer


@functools.lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    """One default TLS context for every transport: building one loads the CA bundle, about
    50 ms of CPU, which per request would load the lab's two cores more than the requests
    themselves (the URLs here are plain http; each call still opens its own connection)."""
    return ssl.create_default_context()


def _http_get(url: str, local_address: str | None = None, timeout: float = 5.0) -> str:
    transport = httpx.HTTPTransport(local_address=local_address, verify=_tls_context())
    with httpx.Client(transport=transport, timeout=timeout, trust_env=False) as http:
        resp = http.get(url)
        resp.raise_for_status()
        return resp.text.strip()


def service_url(kube: Kube, namespace: str, service: str, path: str = "/version") -> str:
    """http://CLUSTER-IP:PORT/path of a Service (its port named http, else its first)."""
    svc = kube.core.read_namespaced_service(service, namespace)
    ports = svc.spec.ports or []
    port = next((p.port for p in ports if p.name == "http"), ports[0].port if ports else 80)
    return f"http://{svc.spec.cluster_ip}:{port}{path}"


def version_via_service(
    namespace: str,
    service: str,
    client_ip: str,
    path: str = "/version",
    *,
    kube: Kube | None = None,
    timeout: float = 5.0,
) -> str:
    """GET path through the Service's ClusterIP from client_ip (one of CLIENT_ADDRESSES).

    Each call is a new connection, so kube-proxy's ClientIP affinity decides the pod.
    Returns the body, stripped.
    """
    url = service_url(kube or default_kube(), namespace, service, path)
    return _http_get(url, local_address=client_ip, timeout=timeout)


def version_via_pod_proxy(
    kube: Kube, namespace: str, pod_name: str, path: str = "version", port: int = HELLO_PORT
) -> str:
    """GET path of one pod through the API server's pod proxy (works from anywhere)."""
    answer = kube.core.connect_get_namespaced_pod_proxy_with_path(
        f"{pod_name}:{port}", namespace, path=path.lstrip("/"), _request_timeout=(5, 10)
    )
    return str(answer).strip()


def version_via_pod_ip(
    pod_ip: str, path: str = "/version", port: int = HELLO_PORT, timeout: float = 5.0
) -> str:
    """GET path straight from a pod's IP (inside the lab's network namespace)."""
    return _http_get(f"http://{pod_ip}:{port}{path}", timeout=timeout)


def ready_endpoint_ips(kube: Kube, namespace: str, service: str) -> list[str]:
    """Ready addresses of a Service's Endpoints (core/v1, served by every version)."""
    try:
        ep = kube.core.read_namespaced_endpoints(service, namespace)
    except ApiException as e:
        if e.status == 404:
            return []
        raise
    return sorted(a.ip for s in (ep.subsets or []) for a in (s.addresses or []))
