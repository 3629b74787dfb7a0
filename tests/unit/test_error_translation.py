"""The gateway's edge: client exceptions become deployer's errors; only safe calls retry."""

import time

import pytest
import urllib3
from kubernetes.client import ApiException

from deployer.cluster import Gateway, RetryBudget, translate
from deployer.errors import (
    ApiRejected,
    ClusterUnreachable,
    Conflict,
    NotAuthorised,
    NotFound,
)
from deployer.gateway import RequestCount


def api_error(status: int, retry_after: str | None = None) -> ApiException:
    exc = ApiException(status=status, reason="x")
    exc.body = '{"kind":"Status","message":"the server said no"}'
    exc.headers = {"Retry-After": retry_after} if retry_after else {}
    return exc


@pytest.mark.parametrize(("status", "kind"), [
    (401, NotAuthorised), (403, NotAuthorised), (404, NotFound), (409, Conflict),
    (400, ApiRejected), (422, ApiRejected), (500, ClusterUnreachable), (503, ClusterUnreachable),
])
def test_status_codes_map_to_deployer_errors(status, kind):
    err = translate(api_error(status), "reading deployment hello")
    assert isinstance(err, kind)
    assert err.message == "reading deployment hello: the server said no"


def test_tls_failure_is_not_authorised_never_unreachable():
    exc = urllib3.exceptions.MaxRetryError(None, "/", urllib3.exceptions.SSLError(
        "CERTIFICATE_VERIFY_FAILED"))
    err = translate(exc, "listing pods")
    assert isinstance(err, NotAuthorised) and err.id == "tls-error"


class Response:
    def read(self) -> bytes:
        return b'{"ok": true}'


def gateway(send=None, attempts: int = 4) -> Gateway:
    """The edge logic only: no kubeconfig, no connection; ``send`` stands in for the wire."""
    gw = Gateway.__new__(Gateway)
    import kubernetes.client

    gw._client_mod = kubernetes.client
    gw.budget = RetryBudget(attempts=attempts, seconds=30, initial=0.01, maximum=0.05)
    gw.request_timeout = (1.0, 1.0)
    gw.requests = RequestCount()
    if send is not None:
        gw._send = send
    return gw


def flaky(*failures: BaseException):
    calls = []

    def call(*args, **kwargs):
        calls.append(time.monotonic())
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return Response()

    return call, calls


def test_reads_retry_5xx_and_connection_errors():
    call, calls = flaky(api_error(503), urllib3.exceptions.ProtocolError("reset"))
    assert gateway(call)._call("reading", "GET", "/x") == {"ok": True}
    assert len(calls) == 3


def test_retry_after_is_honoured():
    call, calls = flaky(api_error(429, retry_after="1"))
    assert gateway(call)._call("reading", "GET", "/x") == {"ok": True}
    assert calls[1] - calls[0] >= 1.0


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_final_answers_are_never_retried(status):
    call, calls = flaky(api_error(status))
    with pytest.raises((ApiRejected, NotAuthorised, NotFound, Conflict)):
        gateway(call)._call("writing", "PUT", "/x")
    assert len(calls) == 1


def test_an_unsafe_write_is_not_replayed_after_a_reset():
    call, calls = flaky(urllib3.exceptions.ProtocolError("reset after send"))
    with pytest.raises(ClusterUnreachable):
        gateway(call)._call("patching", "PATCH", "/x", safe=False)
    assert len(calls) == 1


def test_the_budget_ends_the_retries():
    call, calls = flaky(*[api_error(503)] * 10)
    with pytest.raises(ClusterUnreachable):
        gateway(call, attempts=3)._call("reading", "GET", "/x")
    assert len(calls) == 3


class Wire:
    """The client's transport with the network cut: records what would be sent."""

    def __init__(self, status: int = 200, data: bytes = b"{}"):
        self.sent: list[dict] = []
        self.status, self.data = status, data

    def __call__(self, method, url, headers, body, post, _request_timeout=None):
        self.sent.append({"method": method, "url": url, "headers": headers, "body": body,
                          "timeout": _request_timeout})
        response = urllib3.HTTPResponse(body=self.data, status=self.status,
                                        headers={"Content-Type": "application/json"},
                                        preload_content=False)
        from kubernetes.client.rest import RESTResponse

        return RESTResponse(response)


def wired(wire: Wire) -> Gateway:
    from kubernetes.client import ApiClient, Configuration

    cfg = Configuration(host="https://api.test", api_key={"BearerToken": "Bearer t0k"})
    gw = gateway()
    gw.namespace = "shop"
    gw.api_client = ApiClient(cfg)
    gw.api_client.call_api = wire
    return gw


def test_a_request_names_its_path_query_credentials_and_timeout():
    wire = Wire(data=b'{"items": [{"metadata": {"name": "web-1"}}]}')
    pods = wired(wire).list_pods("app=web,track in (canary)")
    assert [p["metadata"]["name"] for p in pods] == ["web-1"]
    sent = wire.sent[0]
    assert sent["method"] == "GET"
    assert sent["url"] == ("https://api.test/api/v1/namespaces/shop/pods"
                           "?labelSelector=app%3Dweb%2Ctrack%20in%20%28canary%29")
    assert sent["headers"]["authorization"] == "Bearer t0k"
    assert sent["headers"]["Accept"] == "application/json"
    assert sent["timeout"] == (1.0, 1.0)


def test_a_write_sends_its_body_and_content_type():
    wire = Wire(data=b'{"metadata": {"name": "web"}}')
    wired(wire).patch_service("web", {"spec": {"selector": {"app": "web"}}},
                              resource_version="7")
    sent = wire.sent[0]
    assert (sent["method"], sent["url"]) == (
        "PATCH", "https://api.test/api/v1/namespaces/shop/services/web")
    assert sent["headers"]["Content-Type"] == "application/merge-patch+json"
    assert sent["body"] == {"spec": {"selector": {"app": "web"}},
                            "metadata": {"resourceVersion": "7"}}


def test_a_refusal_from_the_server_is_raised_in_deployers_words():
    wire = Wire(status=422, data=b'{"kind":"Status","message":"spec.replicas: Invalid"}')
    with pytest.raises(ApiRejected, match="replacing deployment web: spec.replicas: Invalid"):
        wired(wire).replace_deployment({"metadata": {"name": "web", "resourceVersion": "3"}})
    assert len(wire.sent) == 1


def test_a_missing_object_reads_as_none():
    wire = Wire(status=404, data=b'{"kind":"Status","message":"not found"}')
    assert wired(wire).get_deployment("web") is None


def test_verbose_traces_every_request_without_credentials():
    from structlog.testing import capture_logs

    wire = Wire(data=b'{"items": []}')
    with capture_logs() as logs:
        wired(wire).list_pods("app=web")
    traces = [e for e in logs if e["event"] == "api request"]
    assert traces and traces[0]["method"] == "GET" and traces[0]["status"] == 200
    assert traces[0]["path"] == "/api/v1/namespaces/shop/pods?labelSelector=app=web"
    assert isinstance(traces[0]["ms"], int)
    assert "t0k" not in repr(logs)


def test_every_request_is_counted_as_its_trace_line_is_written():
    from structlog.testing import capture_logs

    wire = Wire(status=503, data=b'{"kind":"Status","message":"busy"}')
    gw = wired(wire)
    with capture_logs() as logs, pytest.raises(ClusterUnreachable):
        gw.list_pods("app=web")  # every attempt is a request of its own
    traces = [e for e in logs if e["event"] == "api request"]
    assert len(traces) == len(wire.sent) == 4
    assert gw.requests.to_json() == {"api": 4, "podProxy": 0}
