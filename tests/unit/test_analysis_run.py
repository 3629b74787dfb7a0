"""Running an analysis: when each metric is measured, and what it comes to."""

from __future__ import annotations

from deployer.analysis.assess import Result
from deployer.analysis.conditions import Condition
from deployer.analysis.run import AnalysisRun
from deployer.analysis.template import Analysis, Metric


def metric(name: str, *, count: int | None, interval: float | None, delay: float = 0.0,
           failure_limit: int = 0, success: str = "result >= 0.95") -> Metric:
    return Metric(name, "web", {"url": "http://10.0.0.5/{{args.app}}"}, count, interval, delay,
                  Condition(success, "s"), None, failure_limit, 0, 4, "t.yaml")


class Values:
    """What each measurement of a metric returns, in turn; the settings it was asked with."""

    def __init__(self, **values):
        self.values = {k: list(v) for k, v in values.items()}
        self.asked: list[tuple[str, dict]] = []

    def __call__(self, m: Metric, settings: dict):
        self.asked.append((m.name, settings))
        value = self.values[m.name].pop(0)
        if isinstance(value, Exception):
            raise value
        return value, f"asked {m.name}"


def run_for(analysis: Analysis, values: Values, window: float, step: float = 1.0):
    now = 100.0
    run = AnalysisRun(analysis, {"app": "hello"}, now, values, lambda: "2026-12-07T00:00:00Z")
    end = now + window
    while True:
        run.measure_due(now)
        outcome = run.outcome(window_over=now >= end)
        if outcome.decided:
            return outcome, now - 100.0
        wait = run.next_due(now)
        now += step if wait is None else max(wait, step)


def test_measurements_follow_initial_delay_interval_and_count_with_arguments_filled_in():
    values = Values(rate=[0.99, 0.98, 0.97])
    outcome, took = run_for(Analysis({"app": None}, (metric("rate", count=3, interval=10,
                                                             delay=5),)), values, window=60)
    assert outcome.result is Result.SUCCESSFUL and took == 25.0  # at 5, 15 and 25 s
    assert values.asked[0][1] == {"url": "http://10.0.0.5/hello"}
    (m,) = outcome.metrics
    assert [x.result for x in m.measurements] == [Result.SUCCESSFUL] * 3
    assert m.measurements[0].message == "0.99: successCondition 'result >= 0.95' holds"
    assert m.measurements[0].asked == "asked rate"


def test_the_first_failure_ends_the_analysis_at_once_and_names_the_value():
    values = Values(rate=[0.99, 0.5, 0.99], other=[1.0] * 10)
    analysis = Analysis({}, (metric("rate", count=None, interval=10),
                             metric("other", count=None, interval=10)))
    outcome, took = run_for(analysis, values, window=300)
    assert outcome.result is Result.FAILED and took == 10.0
    bad = outcome.failed_metric()
    assert bad is not None and bad.name == "rate"
    assert "0.5: successCondition 'result >= 0.95' does not hold" in bad.measurements[-1].message


def test_a_metric_without_a_count_is_measured_until_the_window_ends():
    values = Values(rate=[0.99] * 10)
    outcome, took = run_for(Analysis({}, (metric("rate", count=None, interval=10),)), values,
                            window=30)
    assert outcome.result is Result.SUCCESSFUL and took == 30.0
    assert len(outcome.metrics[0].measurements) == 4  # at 0, 10, 20 and 30 s


def test_a_provider_that_cannot_answer_is_an_error_after_the_consecutive_limit_not_a_pass():
    down = [ConnectionError("prometheus: connection refused")] * 10
    outcome, _ = run_for(Analysis({}, (metric("rate", count=None, interval=5),)),
                         Values(rate=down), window=300)
    assert outcome.result is Result.ERROR
    (m,) = outcome.metrics
    assert len(m.measurements) == 5 and m.why.startswith("5 errors in a row")
    assert "connection refused" in m.why
