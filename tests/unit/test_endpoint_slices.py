"""A Service's endpoints come from its EndpointSlices (discovery.k8s.io/v1 where served,
v1beta1 on older servers), Endpoints only as the last fallback."""

from __future__ import annotations

from typing import Any

from deployer.cluster import Gateway
from deployer.errors import NotAuthorised, NotFound

SLICE = {"items": [
    {"endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
                   {"addresses": ["10.0.0.2"], "conditions": {"ready": False}},
                   {"addresses": ["10.0.0.3"]}]},  # no conditions: ready
    {"endpoints": [{"addresses": ["fd00::4"], "conditions": {"ready": True}}]},
]}
ENDPOINTS = {"subsets": [{"addresses": [{"ip": "10.0.0.9"}]}]}


def gateway(served: list[str] | None, *, slices_forbidden: bool = False):
    calls: list[tuple[str, dict[str, Any] | None]] = []

    class Answering(Gateway):
        """The gateway's edge logic with the API server's answers made up."""

        def __init__(self) -> None:  # no kubeconfig, no connection
            self.namespace = "shop"
            self._slices = None

        def _call(self, what, method, path, *, params=None, query=None, **kw):
            calls.append((path, query))
            if path == "/apis/discovery.k8s.io":
                if served is None:
                    raise NotFound("no such group")
                return {"versions": [{"version": v} for v in served]}
            if path.endswith("/endpointslices"):
                if slices_forbidden:
                    raise NotAuthorised("forbidden")
                return SLICE
            return ENDPOINTS

    return Answering(), calls


def test_the_union_of_all_slices_counts_endpoints_not_marked_unready():
    gw, calls = gateway(["v1beta1", "v1"])
    assert gw.endpoint_addresses("hello") == {"10.0.0.1", "10.0.0.3", "fd00::4"}
    path, query = calls[-1]
    assert path == "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
    assert query == {"labelSelector": "kubernetes.io/service-name=hello"}
    gw.endpoint_addresses("hello")
    assert sum(p == "/apis/discovery.k8s.io" for p, _ in calls) == 1, "discovered once"


def test_a_server_without_v1_slices_is_read_through_v1beta1():
    gw, calls = gateway(["v1beta1"])
    gw.endpoint_addresses("hello")
    assert calls[-1][0] == "/apis/discovery.k8s.io/v1beta1/namespaces/{namespace}/endpointslices"


def test_endpoints_are_the_fallback_without_slices_or_permission_to_read_them():
    gw, calls = gateway(None)
    assert gw.endpoint_addresses("hello") == {"10.0.0.9"}
    gw, calls = gateway(["v1"], slices_forbidden=True)
    assert gw.endpoint_addresses("hello") == {"10.0.0.9"}
    assert gw.endpoint_addresses("hello") == {"10.0.0.9"}
    assert sum(p.endswith("/endpointslices") for p, _ in calls) == 1, "not asked again"
