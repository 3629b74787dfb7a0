"""Share and stickiness decisions through the Service."""

import pytest

from deployer.errors import InvalidInput
from deployer.health.http import Sample
from deployer.health.traffic import parse_client_addresses, share_check, stickiness, tolerance
from deployer.model import Phase


def test_client_addresses_accept_ranges_and_lists():
    assert parse_client_addresses("10.0.0.1-10.0.0.3,10.0.0.9") == (
        "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.9")


@pytest.mark.parametrize("text", ["10.0.0.3-10.0.0.1", "10.0.0.300", "x", "10.0.0.1,10.0.0.1"])
def test_bad_client_addresses_are_refused(text):
    with pytest.raises(InvalidInput):
        parse_client_addresses(text)


def test_tolerance_shrinks_with_more_clients():
    assert tolerance(0.25, 40) < tolerance(0.25, 10)
    assert tolerance(0.01, 400) == 0.05
    assert tolerance(1.0, 40) == 0.0


def versions(new: int, old: int) -> dict[str, str]:
    out = {f"c{i}": "2.0.0" for i in range(new)}
    out.update({f"d{i}": "1.0.0" for i in range(old)})
    return out


def test_share_within_tolerance_passes():
    assert share_check(versions(10, 30), "2.0.0", "1.0.0", 0.25).phase is Phase.SUCCESSFUL


def test_share_far_from_plan_fails():
    m = share_check(versions(30, 10), "2.0.0", "1.0.0", 0.25)
    assert m.phase is Phase.FAILED and "planned 25%" in m.message


def test_no_new_version_at_all_fails_when_chance_cannot_explain_it():
    m = share_check(versions(0, 40), "2.0.0", "1.0.0", 0.5)
    assert m.phase is Phase.FAILED


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


def test_a_client_that_moved_since_the_last_step_fails():
    m, _ = stickiness({"a": samples("a", "2", "2")}, {"a": "1"})
    assert m.phase is Phase.FAILED and "moved from 1 to 2" in m.message
