"""The gateway's pod proxy: the same door, credentials and error translation as every
other request to the API server; what the pod answers is returned, not judged."""

import threading

import httpx
import pytest

from deployer.cluster import Gateway, RetryBudget
from deployer.errors import ClusterUnreachable, NotAuthorised
from deployer.gateway import RequestCount
from deployer.health.http import ProbeOptions, VersionProbe
from tests.unit.fakes import FakeGateway


class Configuration:
    """The parts of the client's Configuration the pod proxy uses; a refresh hook (exec
    plugin, expiring token) hands out a new token on every call, as the client's does."""

    def __init__(self):
        self.tokens = 0

    def auth_settings(self):
        self.tokens += 1
        return {"BearerToken": {"in": "header", "key": "authorization",
                                "value": f"Bearer token-{self.tokens}"}}


def gateway(handler) -> tuple[Gateway, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    gw = Gateway.__new__(Gateway)  # the edge logic only; no kubeconfig, no connection
    gw.namespace = "shop"
    gw.configuration = Configuration()
    gw.budget = RetryBudget(attempts=3, seconds=30, initial=0.01, maximum=0.02)
    gw._http = httpx.Client(base_url="https://api.test", transport=httpx.MockTransport(record))
    gw._http_mutex = threading.Lock()
    gw.requests = RequestCount()
    return gw, seen


def test_the_pod_answer_comes_back_with_a_fresh_token_on_every_request():
    gw, seen = gateway(lambda r: httpx.Response(200, text="2.0.0\n"))
    first = gw.pod_get("web-1", 8080, "/version")
    gw.pod_get("web-1", 8080, "/version")
    assert (first.status, first.body, first.error) == (200, b"2.0.0\n", None)
    assert seen[0].url.path == "/api/v1/namespaces/shop/pods/web-1:8080/proxy/version"
    assert [r.headers["authorization"] for r in seen] == ["Bearer token-1", "Bearer token-2"]
    assert gw.requests.to_json() == {"api": 0, "podProxy": 2}  # counted apart


def test_a_pod_that_hangs_is_an_answer_with_an_error_not_a_retry():
    def hang(request):
        raise httpx.ReadTimeout("read timed out", request=request)

    gw, seen = gateway(hang)
    got = gw.pod_get("web-1", 8080, "/version")
    assert (got.status, got.error) == (None, "timed out")
    assert len(seen) == 1


def test_an_api_server_that_refuses_connections_is_retried_then_unreachable():
    def refuse(request):
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    gw, seen = gateway(refuse)
    with pytest.raises(ClusterUnreachable, match="pod proxy is unreachable"):
        gw.pod_get("web-1", 8080, "/version")
    assert len(seen) == 3  # the gateway's retry budget


def test_a_tls_failure_is_never_retried():
    def bad_cert(request):
        raise httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed",
                                 request=request)

    gw, seen = gateway(bad_cert)
    with pytest.raises(NotAuthorised):
        gw.pod_get("web-1", 8080, "/version")
    assert len(seen) == 1


@pytest.mark.parametrize(("response", "version", "error"), [
    (httpx.Response(200, text="2.0.0"), "2.0.0", None),
    (httpx.Response(503, text="no endpoints"), None, "HTTP 503"),
    (httpx.Response(302, headers={"location": "/login"}), None,
     "HTTP 302 redirect to /login (not followed)"),
    (httpx.Response(200, text="<html>hi</html>"), None,
     "answer is not a version string: '<html>hi</html>'"),
])
def test_the_probe_judges_what_the_pod_answered(response, version, error):
    gw, _ = gateway(lambda r: response)
    sample = VersionProbe(gw).sample({"metadata": {"name": "web-1"}}, 8080)
    assert (sample.target, sample.version, sample.error) == ("web-1", version, error)


def test_the_probe_reads_pod_ips_and_url_templates_without_the_api_server():
    gw, seen = gateway(lambda r: httpx.Response(500))
    probe = VersionProbe(gw, ProbeOptions("url", url_template="https://{pod_ip}:{port}/v"))
    pod = {"metadata": {"name": "web-1", "namespace": "shop"}, "status": {"podIP": "10.0.0.7"}}
    assert probe._url(pod, 8443) == "https://10.0.0.7:8443/v"
    assert VersionProbe(gw, ProbeOptions("pod-ip"))._url(pod, 8080) == \
        "http://10.0.0.7:8080/version"
    assert seen == []


def test_the_pods_of_a_deploy_are_asked_side_by_side_each_answer_kept_with_its_pod():
    class Meeting(FakeGateway):
        """Each answer waits until 4 pods are being asked at the same time: asked one
        after the other, the first would wait forever (the barrier times out)."""

        def __init__(self) -> None:
            super().__init__()
            self.barrier = threading.Barrier(4, timeout=10)

        def pod_get(self, pod, port, path):
            self.barrier.wait()
            return super().pod_get(pod, port, path)

    gw = Meeting()
    pods = [{"metadata": {"name": f"web-{i}"}} for i in range(4)]
    gw.pod_answers = {"web-0": "1.0.0", "web-1": "1.0.0", "web-2": "2.0.0"}  # web-3: none
    with VersionProbe(gw) as probe:
        answers = probe.versions(pods, 8080)
    assert answers["web-0"] == answers["web-1"] == "1.0.0" and answers["web-2"] == "2.0.0"
    assert answers["web-3"].startswith("error: ")
