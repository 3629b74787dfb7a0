"""What deployer needs of the cluster, as a typed Protocol.

:class:`deployer.cluster.Gateway` is the real one (the only module that talks to the
API server); the unit tests' ``FakeGateway`` is checked against this Protocol by mypy,
so the fake cannot drift from the real gateway unnoticed. Objects travel as the JSON
dicts the API server sends.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from deployer.model import HttpAnswer

K8sObject = dict[str, Any]


class RequestCount:
    """Requests sent to the API server, counted where each -v trace line is written: those
    to a pod through the proxy (an app's /version, one per pod and sample, which grow with
    the replicas by design) apart from the rest."""

    def __init__(self) -> None:
        self.api = 0
        self.pod_proxy = 0
        self._mutex = threading.Lock()  # the watches and the Lease's renewals count too

    def add(self, path: str) -> None:
        with self._mutex:
            if "/proxy/" in path and "/pods/" in path:
                self.pod_proxy += 1
            else:
                self.api += 1

    def to_json(self) -> dict[str, int]:
        return {"api": self.api, "podProxy": self.pod_proxy}


class ChangeFeed(Protocol):
    def wait(self, timeout: float) -> bool: ...

    def current(self, source: str) -> list[K8sObject] | None: ...

    def close(self) -> None: ...

    def __enter__(self) -> ChangeFeed: ...

    def __exit__(self, *exc: object) -> None: ...


class ClusterGateway(Protocol):
    namespace: str
    context: str | None  # the kubeconfig context, as chosen when connecting
    requests: RequestCount  # what was sent so far

    # reads
    def identity(self) -> str | None: ...

    def namespace_exists(self) -> bool | None: ...

    def get_deployment(self, name: str) -> K8sObject | None: ...

    def list_deployments(self, selector: str | None = None) -> list[K8sObject]: ...

    def list_replicasets(self, selector: str) -> list[K8sObject]: ...

    def list_pods(self, selector: str) -> list[K8sObject]: ...

    def get_service(self, name: str) -> K8sObject | None: ...

    def endpoint_addresses(self, service: str) -> set[str]: ...

    def list_events(self, object_name: str) -> list[K8sObject]: ...

    def list_resource_quotas(self) -> list[K8sObject]: ...

    def list_autoscalers(self) -> list[K8sObject]: ...

    def list_disruption_budgets(self) -> list[K8sObject]: ...

    def pod_logs(self, pod: str, container: str, *, tail_lines: int = 10,
                 previous: bool = False) -> list[str]: ...

    def pod_get(self, pod: str, port: int | str, path: str) -> HttpAnswer: ...

    def get_config_map(self, name: str) -> K8sObject | None: ...

    def get_lease(self, name: str) -> K8sObject | None: ...

    def access_rules(self) -> tuple[list[K8sObject], bool]: ...

    def can_i(self, verb: str, group: str, resource: str, subresource: str = "") -> bool: ...

    # writes
    def replace_deployment(self, body: K8sObject) -> K8sObject: ...

    def create_deployment(self, body: K8sObject) -> K8sObject: ...

    def delete_deployment(self, name: str) -> None: ...

    def create_job(self, body: K8sObject) -> K8sObject: ...

    def get_job(self, name: str) -> K8sObject | None: ...

    def delete_job(self, name: str) -> None: ...

    def patch_service(self, name: str, patch: K8sObject, *,
                      resource_version: str | None = None) -> K8sObject: ...

    def create_config_map(self, body: K8sObject) -> K8sObject: ...

    def replace_config_map(self, body: K8sObject) -> K8sObject: ...

    def create_lease(self, body: K8sObject) -> K8sObject: ...

    def replace_lease(self, body: K8sObject) -> K8sObject: ...

    # watches
    def changes(self, *, deployment: str | None = None, replicasets: str | None = None,
                pod_selector: str | None = None, service: str | None = None,
                config_map: str | None = None) -> ChangeFeed: ...
