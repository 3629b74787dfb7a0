"""Canary against stable with the Mann-Whitney U test (deployer.analysis.compare), and the
Prometheus range query that gives each track's values (providers.prometheus_range)."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from deployer.analysis import providers as p
from deployer.analysis.assess import Result
from deployer.analysis.compare import Comparison, check_query, compare
from deployer.errors import InvalidInput
from tests.unit.test_analysis_providers import client

Q = 'sum(rate(errors{track="{{track}}"}[30s]))'
LOW = [float(x) for x in range(0, 8)]  # 0..7
HIGH = [float(x) for x in range(10, 18)]  # 10..17, every value above LOW's
# one-sided p between 0.01 and 0.05 (U=51 of 64): rejected at 0.05, not at 0.01
CLOSE_CANARY = [3.0, 4.0, 6.0, 8.0, 9.0, 10.0, 11.0, 12.0]
CLOSE_STABLE = [1.0, 2.0, 5.0, 7.0, 13.0, 0.5, 1.5, 2.5]


# ------------------------------------------------------------------ compare


@pytest.mark.parametrize(("canary", "stable"), [
    ([1.0] * 7, [1.0] * 8), ([1.0] * 8, [1.0] * 7), ([], []), ([1.0] * 20, []),
])
def test_fewer_samples_than_the_minimum_on_either_side_is_inconclusive(canary, stable):
    c = compare(Q, canary, stable)
    assert c.result is Result.INCONCLUSIVE
    assert c.message == (f"not enough samples to compare: {len(canary)} canary and "
                         f"{len(stable)} stable values (at least 8 each)")
    assert (c.u, c.p) == (None, None)
    assert (c.canary, c.stable) == (tuple(canary), tuple(stable))


def test_the_minimum_is_a_setting():
    assert compare(Q, HIGH[:4], LOW[:4], min_samples=5).result is Result.INCONCLUSIVE
    assert compare(Q, HIGH[:4], LOW[:4], min_samples=4).result is Result.FAILED
    assert "(at least 12 each)" in compare(Q, HIGH, LOW, min_samples=12).message


def test_identical_constant_samples_are_no_difference_with_p_1():
    c = compare(Q, [0.0] * 10, [0.0] * 9)
    assert c.result is Result.SUCCESSFUL
    assert (c.u, c.p) == (None, 1.0)
    assert c.message == ("no difference: medians 0 (canary) and 0 (stable), 10 canary and 9 "
                         "stable values")


def test_a_clearly_higher_canary_fails_when_higher_is_worse():
    c = compare(Q, HIGH, LOW, worse="higher")
    assert c.result is Result.FAILED
    assert c.u == 64.0  # every canary value above every stable one: U = 8 x 8
    assert c.p == pytest.approx(1 / 12870)  # the exact one-sided p: 1 / C(16, 8)
    assert c.message.startswith("the canary is significantly higher (p < 0.05): medians 13.5 "
                                "(canary) and 3.5 (stable), 8 canary and 8 stable values; U=64, "
                                "p=7.77e-05")


def test_the_same_data_passes_when_lower_is_worse():
    c = compare(Q, HIGH, LOW, worse="lower")
    assert c.result is Result.SUCCESSFUL
    assert c.p == pytest.approx(1.0)
    assert c.message.startswith("the canary is not significantly lower (p >= 0.05)")


def test_a_clearly_lower_canary_fails_when_lower_is_worse_and_passes_when_higher_is():
    worse = compare(Q, LOW, HIGH, worse="lower")
    assert worse.result is Result.FAILED and worse.p == pytest.approx(1 / 12870)
    assert worse.u == 0.0
    assert "significantly lower" in worse.message
    assert compare(Q, LOW, HIGH, worse="higher").result is Result.SUCCESSFUL


def test_the_default_direction_is_higher_is_worse():
    assert compare(Q, HIGH, LOW).result is Result.FAILED
    assert compare(Q, LOW, HIGH).result is Result.SUCCESSFUL


def test_alpha_decides_between_failed_and_successful():
    at_5 = compare(Q, CLOSE_CANARY, CLOSE_STABLE, alpha=0.05)
    at_1 = compare(Q, CLOSE_CANARY, CLOSE_STABLE, alpha=0.01)
    assert 0.01 < at_5.p < 0.05 and at_5.p == at_1.p and at_5.u == at_1.u == 51.0
    assert at_5.result is Result.FAILED
    assert "(p < 0.05)" in at_5.message
    assert at_1.result is Result.SUCCESSFUL
    assert "(p >= 0.01)" in at_1.message


def test_the_same_distribution_on_both_sides_passes():
    values = [0.01, 0.02, 0.015, 0.03, 0.02, 0.01, 0.025, 0.018, 0.022, 0.012]
    c = compare(Q, values, list(reversed(values)))
    assert c.result is Result.SUCCESSFUL and c.p is not None and c.p >= 0.05


def test_two_constants_that_differ_are_tested_not_taken_as_equal():
    c = compare(Q, [0.5] * 8, [0.0] * 8)
    assert c.result is Result.FAILED and c.u == 64.0 and c.p is not None and c.p < 0.05


# ------------------------------------------------------------------ Comparison.to_json


def test_to_json_has_sizes_medians_u_and_p():
    c = compare(Q, HIGH, LOW)
    data = c.to_json()
    assert data == {"query": Q, "result": "Failed", "message": c.message,
                    "canary": {"samples": 8, "median": 13.5},
                    "stable": {"samples": 8, "median": 3.5},
                    "u": 64.0, "pValue": c.p}
    assert json.loads(json.dumps(data)) == data


def test_to_json_without_values_has_no_median():
    data = Comparison(Q, Result.ERROR, "prometheus down").to_json()
    assert data == {"query": Q, "result": "Error", "message": "prometheus down",
                    "canary": {"samples": 0, "median": None},
                    "stable": {"samples": 0, "median": None}, "u": None, "pValue": None}


def test_to_json_of_an_inconclusive_comparison_keeps_the_medians_of_what_it_had():
    data = compare(Q, [1.0, 3.0], [2.0]).to_json()
    assert data["result"] == "Inconclusive"
    assert data["canary"] == {"samples": 2, "median": 2.0}
    assert data["stable"] == {"samples": 1, "median": 2.0}


# ------------------------------------------------------------------ check_query


def test_a_query_needs_the_track_placeholder():
    assert check_query(Q) == Q
    with pytest.raises(InvalidInput) as exc:
        check_query("sum(rate(errors[30s]))")
    assert exc.value.id == "invalid-compare"
    assert "{{track}}" in exc.value.message


# ------------------------------------------------------------------ prometheus_range


def matrix(*series: list[str]) -> dict:
    return {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"pod": f"p{i}"}, "values": [[1765000000.0 + 2 * j, v]
                                               for j, v in enumerate(values)]}
        for i, values in enumerate(series)]}}


ADDRESS = "http://prometheus.test:9090/"


def test_a_range_query_pools_every_series_values_and_drops_nan():
    http, seen = client(lambda r: httpx.Response(200, json=matrix(["0.1", "NaN", "0.3"],
                                                                  ["+Inf", "0.5"])))
    values = p.prometheus_range(http, ADDRESS, 'rate(x{track="canary"}[30s])', 1765000000.0,
                                1765000060.5, 2.0)
    assert values == [0.1, 0.3, math.inf, 0.5]
    (request,) = seen
    assert request.method == "GET"
    assert request.url.host == "prometheus.test" and request.url.port == 9090
    assert request.url.path == "/api/v1/query_range"  # no double slash from the address
    assert dict(request.url.params) == {"query": 'rate(x{track="canary"}[30s])',
                                        "start": "1765000000.000", "end": "1765000060.500",
                                        "step": "2"}


def test_the_step_is_written_as_a_plain_number():
    http, seen = client(lambda r: httpx.Response(200, json=matrix()))
    assert p.prometheus_range(http, ADDRESS, "up", 10.0, 20.0, 0.5) == []
    assert seen[0].url.params["step"] == "0.5"


def test_no_series_is_no_values():
    http, _ = client(lambda r: httpx.Response(200, json=matrix()))
    assert p.prometheus_range(http, ADDRESS, "up", 0.0, 1.0, 1.0) == []
    empty = {"status": "success", "data": {"resultType": "matrix", "result": None}}
    http, _ = client(lambda r: httpx.Response(200, json=empty))
    assert p.prometheus_range(http, ADDRESS, "up", 0.0, 1.0, 1.0) == []


def range_error(answer) -> str:
    http, _ = client(answer if callable(answer) else lambda r: answer)
    with pytest.raises(p.MeasureError) as exc:
        p.prometheus_range(http, ADDRESS, "up", 0.0, 60.0, 2.0)
    return str(exc.value)


def test_an_error_status_is_a_measure_error_naming_prometheus_and_its_error():
    said = range_error(httpx.Response(400, json={"status": "error", "errorType": "bad_data",
                                                 "error": "parse error at char 3"}))
    assert said == ("prometheus http://prometheus.test:9090 range: up: HTTP 400, bad_data: "
                    "parse error at char 3")


def test_an_answer_that_is_not_json_is_a_measure_error():
    said = range_error(httpx.Response(502, text="<html>bad gateway</html>"))
    assert said == ("prometheus http://prometheus.test:9090 range: up: HTTP 502, not JSON: "
                    "<html>bad gateway</html>")


@pytest.mark.parametrize("kind", ["vector", "scalar", "string", None])
def test_a_result_that_is_not_a_matrix_is_a_measure_error(kind):
    said = range_error(httpx.Response(200, json={"status": "success",
                                                 "data": {"resultType": kind, "result": []}}))
    assert said.endswith(f"range: up: a {kind}, not a matrix")


def test_a_matrix_it_cannot_read_is_a_measure_error():
    bad = {"status": "success", "data": {"resultType": "matrix",
                                         "result": [{"values": [[1, "not a number"]]}]}}
    assert "a matrix deployer cannot read" in range_error(httpx.Response(200, json=bad))
    missing = {"status": "success", "data": {"resultType": "matrix", "result": [{"v": []}]}}
    assert "a matrix deployer cannot read" in range_error(httpx.Response(200, json=missing))


def test_prometheus_out_of_reach_is_a_measure_error():
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    said = range_error(down)
    assert said == ("prometheus http://prometheus.test:9090 range: up: ConnectError: "
                    "connection refused")


def test_a_long_query_is_shortened_in_the_message():
    http, _ = client(lambda r: httpx.Response(500, json={"status": "error", "error": "x"}))
    query = "sum(" + "a" * 400 + ")"
    with pytest.raises(p.MeasureError) as exc:
        p.prometheus_range(http, ADDRESS, query, 0.0, 1.0, 1.0)
    assert len(str(exc.value)) < 300 and "..." in str(exc.value)
    assert str(exc.value).endswith(": HTTP 500, error: x")


def test_an_address_with_a_bad_port_is_a_measure_error():
    http, _ = client(lambda r: httpx.Response(200, json=matrix(["1"])))
    with pytest.raises(p.MeasureError):
        p.prometheus_range(http, "http://prometheus:9O90", "up", 0.0, 1.0, 1.0)


@pytest.mark.parametrize("body", [b"[1, 2]", b'"ok"', b"null"])
def test_json_that_is_not_an_object_is_a_measure_error(body):
    answer = httpx.Response(200, content=body, headers={"Content-Type": "application/json"})
    assert "range: up" in range_error(answer)


def test_to_json_of_infinite_values_is_strict_json():
    data = compare(Q, [math.inf] * 8, [0.0] * 8).to_json()
    assert json.loads(json.dumps(data, allow_nan=False))["canary"]["samples"] == 8
