"""The prometheus and web providers: what they ask, and what they make of the answers."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from deployer.analysis import providers as p


def client(handler) -> tuple[httpx.Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return httpx.Client(transport=httpx.MockTransport(record)), seen


def vector(*values: str) -> dict:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"track": "canary"}, "value": [1765000000.0, v]} for v in values]}}


PROM = {"address": "http://127.0.0.1:9090/", "query": 'sum(rate(x{app="hello"}[1m]))',
        "headers": [{"key": "X-Scope-OrgID", "value": "tenant_a"}], "timeout": 40}


def test_an_instant_query_gives_the_vectors_values_nan_included():
    http, seen = client(lambda r: httpx.Response(200, json=vector("0.25", "NaN", "+Inf")))
    value, asked = p.prometheus(http, PROM)
    assert value[0] == 0.25 and math.isnan(value[1]) and value[2] == math.inf
    (request,) = seen
    assert request.url.path == "/api/v1/query"
    assert request.url.params["query"] == PROM["query"]
    assert request.headers["X-Scope-OrgID"] == "tenant_a"
    assert asked == 'prometheus http://127.0.0.1:9090: sum(rate(x{app="hello"}[1m]))'


def test_no_series_is_an_empty_result_and_a_scalar_is_its_number():
    http, _ = client(lambda r: httpx.Response(200, json=vector()))
    assert p.prometheus(http, PROM)[0] == []
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}}
    http, _ = client(lambda r: httpx.Response(200, json=scalar))
    assert p.prometheus(http, PROM)[0] == 3.0


@pytest.mark.parametrize(("answer", "said"), [
    (httpx.Response(400, json={"status": "error", "errorType": "bad_data",
                               "error": "parse error at char 5"}),
     "HTTP 400, bad_data: parse error at char 5"),
    (httpx.Response(502, text="<html>bad gateway</html>"), "HTTP 502, not JSON"),
    (httpx.Response(200, json={"status": "success", "data": {"resultType": "matrix",
                                                              "result": []}}),
     "the query gives a matrix"),
    (httpx.Response(200, json={"status": "success", "data": {"resultType": "vector",
                                                              "result": [{"value": [1]}]}}),
     "a vector deployer cannot read"),
])
def test_an_answer_that_is_no_measurement_is_an_error(answer, said):
    http, _ = client(lambda r: answer)
    with pytest.raises(p.MeasureError, match=said):
        p.prometheus(http, PROM)


def test_prometheus_unreachable_is_an_error_naming_it():
    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    http, _ = client(refuse)
    with pytest.raises(p.MeasureError, match=r"prometheus http://127.0.0.1:9090: .*ConnectError"):
        p.prometheus(http, PROM)


def test_web_gives_what_the_json_path_selects():
    body = {"data": {"ok": True, "successPercent": 0.95}, "items": [{"v": 1}, {"v": 2}]}
    http, seen = client(lambda r: httpx.Response(200, json=body))
    assert p.web(http, {"url": "http://10.0.0.5/m", "jsonPath": "{$.data.ok}"})[0] is True
    assert p.web(http, {"url": "http://10.0.0.5/m", "jsonPath": "{$.data}"})[0] == body["data"]
    assert p.web(http, {"url": "http://10.0.0.5/m", "jsonPath": "{.items[*].v}"})[0] == [1, 2]
    assert p.web(http, {"url": "http://10.0.0.5/m"})[0] == body
    assert seen[0].method == "GET" and seen[0].content == b""


def test_web_posts_a_body_or_a_json_body_with_its_headers():
    http, seen = client(lambda r: httpx.Response(200, json={"ok": "true"}))
    p.web(http, {"url": "http://10.0.0.5/m", "method": "POST", "body": '{"key": "v"}',
                 "headers": [{"key": "Content-Type", "value": "application/json"}]})
    p.web(http, {"url": "http://10.0.0.5/m", "method": "PUT", "jsonBody": {"key": ["v"]}})
    assert seen[0].method == "POST" and seen[0].content == b'{"key": "v"}'
    assert seen[0].headers["Content-Type"] == "application/json"
    assert seen[1].method == "PUT" and json.loads(seen[1].content) == {"key": ["v"]}
    assert seen[1].headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(("answer", "settings", "said"), [
    (httpx.Response(503, text="down"), {}, "HTTP 503: down"),
    (httpx.Response(200, text="ok"), {}, "the answer is not JSON"),
    (httpx.Response(200, json={"data": {}}), {"jsonPath": "{$.data.ok}"}, "selects nothing"),
])
def test_a_web_answer_that_is_no_measurement_is_an_error(answer, settings, said):
    http, _ = client(lambda r: answer)
    with pytest.raises(p.MeasureError, match=said):
        p.web(http, {"url": "http://10.0.0.5/m", **settings})


def test_a_web_timeout_is_an_error():
    def slow(request):
        raise httpx.ReadTimeout("timed out", request=request)

    http, _ = client(slow)
    with pytest.raises(p.MeasureError, match="ReadTimeout"):
        p.web(http, {"url": "http://10.0.0.5/m", "timeoutSeconds": 1})


def test_a_json_path_that_is_none_is_refused():
    with pytest.raises(ValueError):
        p.json_path("{$.data[}")
