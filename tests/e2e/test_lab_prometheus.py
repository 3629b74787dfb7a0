"""The lab's Prometheus scrapes the demo app's pods, and hello:v6 fails about a fifth of its
requests: what analysis by metrics is judged against."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.lab import _http_get, live_pods, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

PROMETHEUS = "http://127.0.0.1:9090"  # inside the lab's network namespace


def query(promql: str) -> list[dict]:
    answer = httpx.get(f"{PROMETHEUS}/api/v1/query", params={"query": promql}, timeout=5,
                       trust_env=False).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_prometheus_has_each_pods_requests_by_code_with_its_namespace_and_labels(
        namespace, deploy_hello, kube):
    deploy_hello(namespace, image="hello:v6", replicas=1, labels={
        "app": "hello", "track": "canary", "version": "6.0.0"})
    (pod,) = live_pods(kube, namespace)
    ip = pod.status.pod_ip
    assert _http_get(f"http://{ip}:8080/version") == "6.0.0"
    codes = []
    for _ in range(200):
        try:
            _http_get(f"http://{ip}:8080/")
            codes.append(200)
        except httpx.HTTPStatusError as exc:
            codes.append(exc.response.status_code)
    errors = codes.count(500)
    assert set(codes) == {200, 500} and 10 <= errors <= 80, f"{errors} of 200 failed"

    def scraped() -> list[dict] | None:
        series = query(f'http_requests_total{{namespace="{namespace}"}}')
        return series if sum(int(float(x["value"][1])) for x in series) == 200 else None

    served = wait_for(scraped, 60, 1.0, "Prometheus to have scraped the 200 requests")
    by_code = {s["metric"]["code"]: int(float(s["value"][1])) for s in served}
    assert by_code == {"200": 200 - errors, "500": errors}
    labels = served[0]["metric"]
    assert labels["namespace"] == namespace and labels["pod"] == pod.metadata.name
    assert (labels["app"], labels["track"], labels["version"]) == ("hello", "canary", "6.0.0")
    assert labels["pod_template_hash"] == pod.metadata.labels["pod-template-hash"]
