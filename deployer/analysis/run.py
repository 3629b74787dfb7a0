"""Running an analysis over a window of time: which metric is measured when, and what the
measurements decide.

Each metric is first measured ``initialDelay`` after the analysis starts, then every
``interval``, until it has ``count`` measurements or is decided (Failed, Inconclusive or
Error end it at once); a metric without a count is measured until the window ends. The
caller drives it: ``measure_due(now)`` takes what is due, ``next_due(now)`` says how long
it may wait, ``outcome(window_over)`` says where the analysis stands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deployer.analysis.assess import Measurement, MetricRun, Result, judge, overall
from deployer.analysis.conditions import show
from deployer.analysis.template import Analysis, Metric, filled
from deployer.errors import DeployerError

# What takes one measurement: the metric and its settings with the arguments filled in;
# returns the value and what was asked, or raises an exception that makes it an Error.
Measure = Callable[[Metric, dict[str, Any]], tuple[Any, str]]


@dataclass(frozen=True)
class MetricOutcome:
    name: str
    result: Result
    why: str
    measurements: tuple[Measurement, ...]


@dataclass(frozen=True)
class Outcome:
    result: Result
    metrics: tuple[MetricOutcome, ...]

    @property
    def decided(self) -> bool:
        return self.result.completed

    def failed_metric(self) -> MetricOutcome | None:
        """The metric that decided a result other than Successful (the worst)."""
        bad = [m for m in self.metrics if m.result is self.result
               and m.result is not Result.SUCCESSFUL]
        return bad[0] if bad else None


class AnalysisRun:
    def __init__(self, analysis: Analysis, values: dict[str, str], started: float,
                 measure: Measure, wall: Callable[[], str]):
        self.values = values
        self.measure = measure
        self.wall = wall  # RFC 3339 now, for each measurement
        self.runs = [MetricRun(m) for m in analysis.metrics]
        self.settings = {m.name: filled(m.settings, values) for m in analysis.metrics}
        self.due = {m.name: started + m.initial_delay for m in analysis.metrics}

    def _open(self, run: MetricRun) -> bool:
        """Still to be measured: not decided, and short of its count."""
        result, _ = run.assess()
        return not result.completed

    def measure_due(self, now: float) -> int:
        """Take every measurement due by ``now``; returns how many were taken."""
        taken = 0
        for run in self.runs:
            m = run.metric
            if not self._open(run) or now < self.due[m.name]:
                continue
            try:
                value, asked = self.measure(m, self.settings[m.name])
            except DeployerError:
                raise  # a stop, a lost lock, the API server gone: the run's, not the metric's
            except Exception as exc:  # noqa: BLE001 - a measurement not taken is an Error
                run.add(Measurement(Result.ERROR, None, str(exc) or type(exc).__name__,
                                    self.wall()))
            else:
                result, why = judge(m, value)
                run.add(Measurement(result, value, f"{show(value, 120)}: {why}", self.wall(),
                                    asked))
            taken += 1
            self.due[m.name] = now + (m.interval or 0.0)
        return taken

    def next_due(self, now: float) -> float | None:
        """Seconds until the next measurement is due (0: now), None when none is."""
        waits = [max(0.0, self.due[r.metric.name] - now) for r in self.runs if self._open(r)]
        return min(waits) if waits else None

    def outcome(self, window_over: bool = False) -> Outcome:
        metrics = []
        for run in self.runs:
            result, why = run.assess(time_up=window_over)
            metrics.append(MetricOutcome(run.metric.name, result, why,
                                         tuple(run.measurements)))
        return Outcome(overall([m.result for m in metrics]), tuple(metrics))

