"""Share and stickiness decisions through the Service."""

import pytest

from deployer.errors import InvalidInput
from deployer.health.http import Sample
from deployer.health.traffic import (
    parse_client_addresses,
    request_errors,
    share_check,
    stickiness,
)
from deployer.model import Phase
from deployer.weights import clients_needed


def test_client_addresses_accept_ranges_and_lists():
    assert parse_client_addresses("10.0.0.1-10.0.0.3,10.0.0.9") == (
        "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.9")


@pytest.mark.parametrize("text", ["10.0.0.3-10.0.0.1", "10.0.0.300", "x", "10.0.0.1,10.0.0.1"])
def test_bad_client_addresses_are_refused(text):
    with pytest.raises(InvalidInput):
        parse_client_addresses(text)


def test_the_clients_needed_to_notice_a_share_of_none():
    assert clients_needed(0.25) == 25  # 0.75 ** 25 < 1e-3 <= 0.75 ** 24
    assert clients_needed(0.5) == 10
    assert clients_needed(0.75) == 25  # noticing that nobody stayed on the old version
    assert clients_needed(0.05) == 135


def versions(new: int, old: int) -> dict[str, str]:
    out = {f"c{i}": "2.0.0" for i in range(new)}
    out.update({f"d{i}": "1.0.0" for i in range(old)})
    return out


def test_a_share_chance_explains_passes():
    assert share_check(versions(10, 30), "2.0.0", "1.0.0", 0.25).phase is Phase.SUCCESSFUL
    assert share_check(versions(4, 36), "2.0.0", "1.0.0", 0.25).phase is Phase.SUCCESSFUL


def test_share_far_from_plan_fails():
    m = share_check(versions(30, 10), "2.0.0", "1.0.0", 0.25)
    assert m.phase is Phase.FAILED and "planned 25%" in m.message


@pytest.mark.parametrize(("clients", "planned"), [(40, 0.25), (100, 0.25), (10, 0.5),
                                                  (135, 0.05)])
def test_a_canary_that_gets_no_traffic_fails_whenever_the_clients_can_tell(clients, planned):
    m = share_check(versions(0, clients), "2.0.0", "1.0.0", planned)
    assert m.phase is Phase.FAILED and f"0 of {clients} clients" in m.message


@pytest.mark.parametrize(("clients", "planned"), [(20, 0.25), (24, 0.25), (9, 0.5)])
def test_too_few_clients_to_tell_the_plan_from_none_is_not_measured(clients, planned):
    for new in (0, round(clients * planned)):
        m = share_check(versions(new, clients - new), "2.0.0", "1.0.0", planned)
        assert m.phase is Phase.INCONCLUSIVE
        assert m.message.startswith("not measured: too few clients")


def test_a_correct_canary_fails_by_chance_rarely():
    import random

    rng = random.Random(7)
    failed = 0
    for _ in range(2000):
        new = sum(rng.random() < 0.25 for _ in range(40))
        failed += share_check(versions(new, 40 - new), "2.0.0", "1.0.0",
                              0.25).phase is Phase.FAILED
    assert failed <= 10  # ALPHA is 1e-3: about 2 of 2000 expected


def test_a_third_version_fails():
    v = versions(10, 29)
    v["x"] = "1.5.0"
    assert share_check(v, "2.0.0", "1.0.0", 0.25).phase is Phase.FAILED


def test_all_clients_on_new_is_the_blue_green_expectation():
    assert share_check(versions(40, 0), "2.0.0", "1.0.0", 1.0).phase is Phase.SUCCESSFUL
    assert share_check(versions(39, 1), "2.0.0", "1.0.0", 1.0).phase is Phase.FAILED


def samples(addr, *answers):
    return [Sample(addr, a) for a in answers]


def test_stickiness_passes_when_each_client_keeps_one_version():
    m, seen = stickiness({"a": samples("a", "1", "1"), "b": samples("b", "2", "2")}, {})
    assert m.phase is Phase.SUCCESSFUL and seen == {"a": "1", "b": "2"}


def test_a_client_that_flips_between_versions_fails():
    m, _ = stickiness({"a": samples("a", "1", "2", "1")}, {})
    assert m.phase is Phase.FAILED and "a got" in m.message


def test_a_failed_request_is_no_version_change_and_is_counted_apart():
    timed_out = [Sample("a", "1"), Sample("a", error="timed out"), Sample("a", "1")]
    m, seen = stickiness({"a": timed_out, "b": samples("b", "2", "2", "2")}, {})
    assert m.phase is Phase.SUCCESSFUL and seen == {"a": "1", "b": "2"}
    errors = request_errors({"a": timed_out, "b": samples("b", "2", "2", "2")})
    assert errors.phase is Phase.SUCCESSFUL  # 1 of 6 failed: one is never a finding
    assert "1 of 6 requests failed (a: timed out)" in errors.message


def test_failed_requests_beyond_the_tolerance_fail_and_none_answered_is_an_error():
    answers = {f"c{i}": [Sample(f"c{i}", "1")] * 99 + [Sample(f"c{i}", error="HTTP 500")]
               for i in range(2)}  # 2 of 200: 1 %, within the tolerance
    assert request_errors(answers).phase is Phase.SUCCESSFUL
    answers["c0"] = answers["c0"][:-2] + [Sample("c0", error="HTTP 500")] * 2
    assert request_errors(answers).phase is Phase.FAILED  # 3 of 200
    m, seen = stickiness({"a": [Sample("a", error="refused")] * 3}, {})
    assert m.phase is Phase.ERROR and seen == {}


def test_a_client_that_moved_since_the_last_step_fails():
    m, _ = stickiness({"a": samples("a", "2", "2")}, {"a": "1"})
    assert m.phase is Phase.FAILED and "moved from 1 to 2" in m.message
