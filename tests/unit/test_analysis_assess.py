"""How measurements decide a metric, and metrics an analysis (Argo Rollouts' rules)."""

from __future__ import annotations

import pytest

from deployer.analysis.assess import Measurement, MetricRun, Result, judge, overall
from deployer.analysis.conditions import Condition
from deployer.analysis.template import Metric


def metric(success: str | None = "result[0] >= 0.95", failure: str | None = None, *,
           count: int | None = 3, failure_limit: int = 0, inconclusive_limit: int = 0,
           consecutive_error_limit: int = 4) -> Metric:
    return Metric("rate", "prometheus", {}, count, 10.0, 0.0,
                  Condition(success, "s") if success else None,
                  Condition(failure, "f") if failure else None,
                  failure_limit, inconclusive_limit, consecutive_error_limit, "t.yaml")


@pytest.mark.parametrize(("success", "failure", "value", "expected"), [
    ("result[0] >= 0.95", None, [0.97], Result.SUCCESSFUL),
    ("result[0] >= 0.95", None, [0.5], Result.FAILED),  # not meeting success fails
    (None, "result[0] >= 10", [3.0], Result.SUCCESSFUL),  # not meeting failure succeeds
    (None, "result[0] >= 10", [12.0], Result.FAILED),
    ("result[0] >= 0.90", "result[0] < 0.50", [0.7], Result.INCONCLUSIVE),
    ("result[0] >= 0.90", "result[0] < 0.50", [0.3], Result.FAILED),
    ("result[0] >= 0.90", "result[0] < 0.50", [0.95], Result.SUCCESSFUL),
    (None, None, [0.1], Result.SUCCESSFUL),  # no condition: any value
    ("result[0] >= 0.95", None, [], Result.ERROR),  # nothing to index
])
def test_a_measurement_is_judged_by_the_conditions(success, failure, value, expected):
    result, why = judge(metric(success, failure), value)
    assert result is expected, why


def run_of(m: Metric, *results: Result) -> MetricRun:
    run = MetricRun(m)
    for r in results:
        run.add(Measurement(r, None, f"measured {r}", "2026-12-06T00:00:00Z"))
    return run


def test_the_first_failure_decides_with_argos_default_limit_of_0():
    assert run_of(metric(), Result.SUCCESSFUL).assess()[0] is Result.RUNNING
    result, why = run_of(metric(), Result.SUCCESSFUL, Result.FAILED).assess()
    assert result is Result.FAILED and why == "1 failed measurements > failureLimit 0"


def test_failures_up_to_the_limit_are_borne_and_count_measurements_end_it_successful():
    m = metric(failure_limit=1)
    assert run_of(m, Result.FAILED, Result.SUCCESSFUL).assess()[0] is Result.RUNNING
    assert run_of(m, Result.FAILED, Result.SUCCESSFUL, Result.SUCCESSFUL).assess()[0] is \
        Result.SUCCESSFUL
    assert run_of(m, Result.FAILED, Result.FAILED).assess()[0] is Result.FAILED


def test_errors_decide_only_past_the_consecutive_limit_and_a_success_resets_them():
    m = metric(count=None)
    four = [Result.ERROR] * 4
    assert run_of(m, *four).assess()[0] is Result.RUNNING
    assert run_of(m, *four, Result.SUCCESSFUL, *four).assess()[0] is Result.RUNNING
    result, why = run_of(m, *four, Result.ERROR).assess()
    assert result is Result.ERROR and why.startswith("5 errors in a row > consecutiveErrorLimit 4")


def test_inconclusive_past_its_limit_stops_for_a_human():
    assert run_of(metric(), Result.INCONCLUSIVE).assess()[0] is Result.INCONCLUSIVE
    assert run_of(metric(inconclusive_limit=1), Result.INCONCLUSIVE).assess()[0] is \
        Result.RUNNING


def test_a_metric_with_no_count_runs_until_its_time_is_up_and_nothing_measured_is_no_pass():
    m = metric(count=None)
    assert run_of(m, Result.SUCCESSFUL, Result.SUCCESSFUL).assess()[0] is Result.RUNNING
    assert run_of(m, Result.SUCCESSFUL).assess(time_up=True)[0] is Result.SUCCESSFUL
    assert run_of(m).assess()[0] is Result.PENDING
    result, why = run_of(m).assess(time_up=True)
    assert result is Result.INCONCLUSIVE and why == "no measurement was taken"


def test_the_analysis_is_the_worst_completed_metric_and_runs_while_one_does():
    assert overall([Result.SUCCESSFUL, Result.RUNNING]) is Result.RUNNING
    assert overall([Result.FAILED, Result.RUNNING]) is Result.FAILED  # it ends at once
    assert overall([Result.SUCCESSFUL, Result.SUCCESSFUL]) is Result.SUCCESSFUL
    assert overall([Result.SUCCESSFUL, Result.INCONCLUSIVE]) is Result.INCONCLUSIVE
    assert overall([Result.INCONCLUSIVE, Result.ERROR]) is Result.ERROR
    assert overall([Result.ERROR, Result.FAILED, Result.SUCCESSFUL]) is Result.FAILED


def test_a_metric_with_a_count_goes_on_past_the_steps_end_until_it_has_them():
    m = metric(count=3)
    assert run_of(m, Result.SUCCESSFUL).assess(time_up=True)[0] is Result.RUNNING
    assert run_of(m).assess(time_up=True)[0] is Result.PENDING
