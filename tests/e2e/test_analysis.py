"""Analysis on the lab: releases judged by what users get, from the lab's Prometheus, a web
endpoint, Jobs and deployer's own probe.

hello:v6 is Ready and answers 6.0.0 but fails about a fifth of its requests to / with
HTTP 500: only an analysis catches it. The variations (conditions, limits, template
checks, each provider's answers) are unit tests; here is one real case per behaviour.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from kubernetes import client

from tests.e2e.app_checks import (
    ServiceClient,
    deployment_image,
    resource_versions,
    versions_by_pod,
)
from tests.e2e.deployer_cli import deployer, run_printed
from tests.e2e.lab import CLIENT_ADDRESSES, version_via_service

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
ERROR_RATE = str(ROOT / "examples" / "analysis" / "error-rate.yaml")
PROMETHEUS = "http://127.0.0.1:9090"  # the lab's, inside its network namespace


def compare_query(namespace: str) -> str:
    selector = f'namespace="{namespace}",app="hello",track="{{{{track}}}}"'
    return (f'sum(rate(http_requests_total{{{selector},code=~"5.."}}[20s]) or vector(0)) / '
            f'sum(rate(http_requests_total{{{selector}}}[20s]))')


def template(tmp_path: Path, name: str, metrics: list[dict], args: list[dict] | None = None
             ) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps({"apiVersion": "argoproj.io/v1alpha1",
                                "kind": "AnalysisTemplate", "metadata": {"name": name},
                                "spec": {"args": args or [], "metrics": metrics}}))
    return str(path)


def canary_gone(kube, namespace: str) -> bool:
    return "hello-canary" not in [d.metadata.name for d in
                                  kube.apps.list_namespaced_deployment(namespace).items]


def users_on(kube, namespace: str) -> set[str]:
    return {version_via_service(namespace, "hello", ip, kube=kube) for ip in CLIENT_ADDRESSES}


def only_server_errors(client: ServiceClient) -> list[str]:
    """Failed requests of the background client other than the app's own HTTP 500s: a
    refused or timed-out connection would mean the stable version stopped serving."""
    return [e for e in client.errors if "500" not in e]


@pytest.fixture
def web_answers() -> Iterator[tuple[str, list[bool]]]:
    """A small JSON endpoint in the lab's network: {"ok": X} where X is taken in turn from
    the list the test fills (the last one repeats); it counts the requests it got."""
    answers: list[bool] = [True]
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            asked.append(self.path)
            ok = answers[min(len(asked), len(answers)) - 1]
            body = json.dumps({"ok": ok, "asked": len(asked)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/health", answers
    finally:
        server.shutdown()


def web_metric(url: str, **extra: object) -> dict:
    return {"name": "health", "successCondition": "result == true",
            "provider": {"web": {"url": url, "jsonPath": "{$.ok}", "timeoutSeconds": 5}},
            **extra}


# ------------------------------------------------------------------ Prometheus, canary


def test_canary_of_v6_is_rejected_by_its_5xx_ratio_in_prometheus_while_users_call_it(
        namespace, deploy_hello, kube):
    deploy_hello(namespace, replicas=4)

    with ServiceClient(kube, namespace, clients=40, pause=0.2, path="/") as users:
        result = deployer(namespace, "-o", "json", "canary", "--app", "hello", "--image", "v6",
                          "--weight", "50", "--interval", "45s", "--analysis", ERROR_RATE)

    assert result.code == 1, result
    report = result.report
    assert report["verdict"] == "rejected"
    assert "metric 'error-rate' Failed" in report["message"], report["message"]
    (analysis,) = report["analyses"]
    (metric,) = analysis["metrics"]
    failed = [m for m in metric["measurements"] if m["result"] == "Failed"]
    assert len(failed) == 2  # failureLimit 1: the second failure decides
    for m in failed:
        assert m["value"][0] > 0.05 and m["at"] and f'namespace="{namespace}"' in m["asked"]
        assert "failureCondition" in m["message"]
    assert canary_gone(kube, namespace)
    assert deployment_image(kube, namespace) == "hello:v1"
    assert set(versions_by_pod(kube, namespace).values()) == {"1.0.0"}
    assert users.answers and not only_server_errors(users), users.errors[:5]


def test_canary_of_v2_passes_the_template_the_comparison_and_the_probe(namespace,
                                                                       deploy_hello, kube):
    deploy_hello(namespace, replicas=4)

    with ServiceClient(kube, namespace, clients=40, pause=0.2, path="/") as users:
        result = deployer(namespace, "-o", "json", "canary", "--app", "hello", "--image", "v2",
                          "--weight", "50", "--interval", "30s", "--analysis", ERROR_RATE,
                          "--compare", compare_query(namespace), "--prometheus", PROMETHEUS,
                          "--probe", "/", "--max-error-rate", "5")

    assert result.code == 0, result
    (analysis,) = result.report["analyses"]
    assert analysis["result"] == "Successful", analysis
    (metric,) = analysis["metrics"]
    assert len(metric["measurements"]) >= 3
    assert all(m["result"] == "Successful" and m["value"] == [0.0]
               for m in metric["measurements"]), metric
    (comparison,) = analysis["comparisons"]
    assert comparison["result"] == "Successful"
    assert comparison["canary"]["samples"] >= 8 and comparison["stable"]["samples"] >= 8
    assert comparison["canary"]["median"] == 0 and comparison["pValue"] is not None
    probe = analysis["probe"]
    assert probe["result"] == "Successful"
    assert probe["new"]["requests"] == 100 and probe["new"]["errors"] == 0
    assert probe["old"]["requests"] == 100 and probe["old"]["pods"] == 2
    assert set(versions_by_pod(kube, namespace).values()) == {"2.0.0"}
    assert users.answers and not users.errors, users.errors[:5]


def test_compare_rejects_v6_against_stable_without_a_threshold(namespace, deploy_hello, kube):
    deploy_hello(namespace, replicas=4)

    with ServiceClient(kube, namespace, clients=40, pause=0.2, path="/") as users:
        result = deployer(namespace, "-o", "json", "canary", "--app", "hello", "--image", "v6",
                          "--weight", "50", "--interval", "24s",
                          "--compare", compare_query(namespace), "--prometheus", PROMETHEUS)

    assert result.code == 1, result
    (analysis,) = result.report["analyses"]
    (comparison,) = analysis["comparisons"]
    assert comparison["result"] == "Failed", comparison
    assert comparison["canary"]["median"] > comparison["stable"]["median"]
    assert comparison["pValue"] < 0.05 and comparison["u"] is not None
    assert "significantly higher" in result.report["message"]
    assert canary_gone(kube, namespace)
    assert users_on(kube, namespace) == {"1.0.0"}
    assert not only_server_errors(users), users.errors[:5]


# ------------------------------------------------------------- without Prometheus


def test_the_probe_catches_v6_before_a_blue_green_switch(namespace, deploy_hello, kube):
    deploy_hello(namespace)
    service_before = kube.core.read_namespaced_service("hello", namespace).spec.selector

    result = deployer(namespace, "-o", "json", "blue-green", "--app", "hello", "--image", "v6",
                      "--probe", "/", "--max-error-rate", "5")

    assert result.code == 1, result
    (analysis,) = result.report["analyses"]
    assert analysis["step"].startswith("pre-promotion")
    probe = analysis["probe"]
    assert probe["result"] == "Failed" and probe["new"]["errorPercent"] > 5
    assert probe["new"]["errorKinds"].get("HTTP 500", 0) == probe["new"]["errors"]
    assert probe["old"]["requests"] == 100 and probe["old"]["errors"] == 0
    steps = [s["step"] for s in result.report["steps"]]
    assert not any(s.startswith("switch service") and "green" in s for s in steps), steps
    assert kube.core.read_namespaced_service("hello", namespace).spec.selector in (
        service_before, {"app": "hello", "track": "stable"})
    assert users_on(kube, namespace) == {"1.0.0"}


def test_a_web_metric_and_an_empty_query_pass_a_rolling_update(namespace, deploy_hello, kube,
                                                               tmp_path, web_answers):
    url, _ = web_answers
    deploy_hello(namespace)
    path = template(tmp_path, "web", [
        web_metric(url),
        # a query that matches no series gives []: the condition says what that means
        {"name": "no-such-series", "successCondition": "len(result) == 0",
         "provider": {"prometheus": {"address": PROMETHEUS,
                                     "query": 'deployer_e2e_never_exported{app="hello"}'}}}])

    result = deployer(namespace, "-o", "json", "rolling", "--app", "hello", "--image", "v2",
                      "--analysis", path)

    assert result.code == 0, result
    (analysis,) = result.report["analyses"]
    assert analysis["step"].startswith("after the rollout")
    metrics = {m["name"]: m for m in analysis["metrics"]}
    (web,) = metrics["health"]["measurements"]
    assert web["result"] == "Successful" and web["value"] is True
    assert web["asked"] == f"web GET {url} {{$.ok}}"
    (empty,) = metrics["no-such-series"]["measurements"]
    assert empty["result"] == "Successful" and empty["value"] == []
    assert set(versions_by_pod(kube, namespace).values()) == {"2.0.0"}


def test_job_metrics_decide_and_a_failing_job_undoes_the_rolling_update(namespace,
                                                                        deploy_hello, kube,
                                                                        tmp_path):
    deploy_hello(namespace)

    def job(name: str, code: int) -> dict:
        command = f"echo {name} checks {{{{args.new-version}}}}; exit {code}"
        return {"name": name, "provider": {"job": {"spec": {
            "backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "check", "image": "hello:v1",
                                "command": ["sh", "-c", command]}]}}}}}}

    path = template(tmp_path, "jobs", [job("smoke", 0), job("contract", 1)],
                    args=[{"name": "new-version"}])

    result = deployer(namespace, "-o", "json", "rolling", "--app", "hello", "--image", "v2",
                      "--analysis", path)

    assert result.code == 1, result
    assert "metric 'contract' Failed" in result.report["message"]
    assert "contract checks 2.0.0" in result.report["message"]  # its log, in the verdict
    metrics = {m["name"]: m for m in result.report["analyses"][0]["metrics"]}
    (smoke,) = metrics["smoke"]["measurements"]
    assert smoke["result"] == "Successful" and smoke["value"]["logs"] == ["smoke checks 2.0.0"]
    (contract,) = metrics["contract"]["measurements"]
    assert contract["result"] == "Failed" and contract["value"]["succeeded"] is False
    assert deployment_image(kube, namespace) == "hello:v1"  # undone
    assert set(versions_by_pod(kube, namespace).values()) == {"1.0.0"}
    jobs = client.BatchV1Api(kube.api_client).list_namespaced_job(namespace).items
    assert jobs == []  # each Job deleted after it decided


def test_an_unreachable_prometheus_is_an_error_after_the_limit_never_a_pass(
        namespace, deploy_hello, kube, tmp_path):
    deploy_hello(namespace)
    path = template(tmp_path, "down", [{
        "name": "error-rate", "interval": "1s", "consecutiveErrorLimit": 2,
        "successCondition": "result[0] < 0.05",
        "provider": {"prometheus": {"address": "http://127.0.0.1:9", "query": "vector(0)"}}}])

    result = deployer(namespace, "-o", "json", "rolling", "--app", "hello", "--image", "v2",
                      "--interval", "30s", "--analysis", path)

    assert result.code == 1, result
    assert result.report["verdict"] == "rejected"
    assert "analysis error" in result.report["message"]
    assert "consecutiveErrorLimit 2" in result.report["message"]
    (metric,) = result.report["analyses"][0]["metrics"]
    assert [m["result"] for m in metric["measurements"]] == ["Error"] * 3
    assert "ConnectError" in metric["measurements"][0]["message"]
    assert deployment_image(kube, namespace) == "hello:v1"


# -------------------------------------------------------------- the other outcomes


def test_an_inconclusive_analysis_stops_at_a_gate_and_promote_goes_on(namespace, deploy_hello,
                                                                      kube, tmp_path):
    deploy_hello(namespace)
    path = template(tmp_path, "undecided", [{
        "name": "neither", "successCondition": "result[0] > 2",
        "failureCondition": "result[0] < 0",
        "provider": {"prometheus": {"address": PROMETHEUS, "query": "vector(1)"}}}])

    paused = deployer(namespace, "-o", "json", "rolling", "--app", "hello", "--image", "v2",
                      "--analysis", path)

    assert paused.code == 5, paused
    assert paused.report["verdict"] == "paused"
    assert "analysis inconclusive: metric 'neither'" in paused.report["message"]
    assert set(versions_by_pod(kube, namespace).values()) == {"2.0.0"}  # left as it is
    promoted = run_printed(paused.report["next"])
    assert promoted.code == 0, promoted
    assert "verified:         every pod answers 2.0.0" in promoted.stdout, promoted


def test_a_failure_after_the_blue_green_switch_switches_back_at_once(namespace, deploy_hello,
                                                                     kube, tmp_path,
                                                                     web_answers):
    url, answers = web_answers
    answers[:] = [True, False]  # fine before the switch, failing after it
    deploy_hello(namespace)
    path = template(tmp_path, "post", [web_metric(url, interval="2s")])

    result = deployer(namespace, "-o", "json", "blue-green", "--app", "hello", "--image", "v2",
                      "--keep-old", "30s", "--analysis", path)

    assert result.code == 1, result
    pre, post = result.report["analyses"]
    assert pre["step"].startswith("pre-promotion") and pre["result"] == "Successful"
    assert post["step"].startswith("keep hello up") and post["result"] == "Failed"
    assert "rollback window" in result.report["message"]
    assert users_on(kube, namespace) == {"1.0.0"}  # switched back to the old side
    # the Service as it was before the run: narrowed to the blue side for it, widened back
    assert kube.core.read_namespaced_service("hello", namespace).spec.selector == {
        "app": "hello"}


BAD_TEMPLATES = [
    ({"name": "m", "successCondition": "result[0] >= 0.95 and __import__('os')",
      "provider": {"prometheus": {"address": PROMETHEUS, "query": "vector(1)"}}},
     "successCondition"),
    ({"name": "m", "provider": {"datadog": {"query": "avg:errors"}}},
     "provider 'datadog' is not supported"),
    ({"name": "m", "dryRun": True,
      "provider": {"prometheus": {"address": PROMETHEUS, "query": "vector(1)"}}},
     "field 'dryRun' is not supported"),
]


def test_bad_templates_exit_2_and_change_nothing(shared_hello, kube, tmp_path):
    for i, (metric, named) in enumerate(BAD_TEMPLATES):
        path = template(tmp_path, f"bad{i}", [metric])
        before = resource_versions(kube, shared_hello)

        result = deployer(shared_hello, "canary", "--app", "hello", "--image", "v2",
                          "--analysis", path)

        assert result.code == 2, result
        assert named in result.stderr and path in result.stderr, result
        assert resource_versions(kube, shared_hello) == before
