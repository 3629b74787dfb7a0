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
    data = b'{"ok": true}'


def gateway(attempts: int = 4) -> Gateway:
    gw = Gateway.__new__(Gateway)  # the edge logic only; no kubeconfig, no connection
    import kubernetes.client

    gw._client_mod = kubernetes.client
    gw.budget = RetryBudget(attempts=attempts, seconds=30, initial=0.01, maximum=0.05)
    gw.request_timeout = (1.0, 1.0)
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
    assert gateway()._call("reading", call) == {"ok": True}
    assert len(calls) == 3


def test_retry_after_is_honoured():
    call, calls = flaky(api_error(429, retry_after="1"))
    assert gateway()._call("reading", call) == {"ok": True}
    assert calls[1] - calls[0] >= 1.0


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_final_answers_are_never_retried(status):
    call, calls = flaky(api_error(status))
    with pytest.raises((ApiRejected, NotAuthorised, NotFound, Conflict)):
        gateway()._call("writing", call)
    assert len(calls) == 1


def test_an_unsafe_write_is_not_replayed_after_a_reset():
    call, calls = flaky(urllib3.exceptions.ProtocolError("reset after send"))
    with pytest.raises(ClusterUnreachable):
        gateway()._call("patching", call, safe=False)
    assert len(calls) == 1


def test_the_budget_ends_the_retries():
    call, calls = flaky(*[api_error(503)] * 10)
    with pytest.raises(ClusterUnreachable):
        gateway(attempts=3)._call("reading", call)
    assert len(calls) == 3


def test_every_call_carries_a_request_timeout():
    seen = {}

    def call(*args, **kwargs):
        seen.update(kwargs)
        return Response()

    gateway()._call("reading", call)
    assert seen["_request_timeout"] == (1.0, 1.0)
