"""How measurements decide a metric, and metrics an analysis, as Argo Rollouts decides them.

A measurement is Successful, Failed or Inconclusive by the metric's conditions, or an
Error when it could not be taken or judged. A metric is Failed once its Failed
measurements exceed ``failureLimit``, Inconclusive once its Inconclusive ones exceed
``inconclusiveLimit``, an Error once more than ``consecutiveErrorLimit`` measurements in a
row were Errors; Successful once ``count`` measurements are taken without that, or, with
no count, when its time is up (Inconclusive if none could be taken: Errors do not count).
A metric that ends Failed, Error or Inconclusive ends the
analysis (the worst of them: Failed, then Error, then Inconclusive); otherwise it runs
while a metric does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from deployer.analysis.conditions import ConditionError
from deployer.analysis.template import Metric


class Result(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCESSFUL = "Successful"
    INCONCLUSIVE = "Inconclusive"
    FAILED = "Failed"
    ERROR = "Error"

    @property
    def completed(self) -> bool:
        return self not in (Result.PENDING, Result.RUNNING)


_WORSE = [Result.SUCCESSFUL, Result.INCONCLUSIVE, Result.ERROR, Result.FAILED]  # Argo's order


def judge(metric: Metric, value: Any) -> tuple[Result, str]:
    """One measurement's result by the metric's conditions, and why (Argo's rules: with a
    success condition only, not meeting it fails; with a failure condition only, not
    meeting it succeeds; with both, meeting neither is inconclusive; with none, any value
    succeeds)."""
    if metric.provider == "job":  # Argo: the Job's own outcome decides
        if isinstance(value, dict) and value.get("succeeded"):
            return Result.SUCCESSFUL, "the job succeeded"
        return Result.FAILED, "the job failed"
    try:
        success = metric.success.holds(value) if metric.success else None
        failure = metric.failure.holds(value) if metric.failure else None
    except ConditionError as exc:
        return Result.ERROR, str(exc)
    if success is None and failure is None:
        return Result.SUCCESSFUL, "no condition: any value passes"
    if failure is None:
        failure = not success
    if success is None:
        success = not failure
    if failure:
        met = f"failureCondition {metric.failure.text!r} holds" if metric.failure else \
            f"successCondition {metric.success.text!r} does not hold"  # type: ignore[union-attr]
        return Result.FAILED, met
    if not success:
        return Result.INCONCLUSIVE, "neither condition holds"
    return Result.SUCCESSFUL, (f"successCondition {metric.success.text!r} holds"
                               if metric.success else
                               f"failureCondition {metric.failure.text!r} does not hold")  # type: ignore[union-attr]


@dataclass
class Measurement:
    result: Result
    value: Any
    message: str  # why it has its result (the condition that held), or what went wrong
    at: str  # RFC 3339, when it was taken
    asked: str = ""  # what was asked (the query, the request), when it was answered


@dataclass
class MetricRun:
    """A metric's measurements so far, and what they decide."""

    metric: Metric
    measurements: list[Measurement] = field(default_factory=list)

    def add(self, measurement: Measurement) -> None:
        self.measurements.append(measurement)

    def counts(self) -> dict[Result, int]:
        out = {r: 0 for r in Result}
        for m in self.measurements:
            out[m.result] += 1
        return out

    def consecutive_errors(self) -> int:
        n = 0
        for m in reversed(self.measurements):
            if m.result is not Result.ERROR:
                break
            n += 1
        return n

    def assess(self, time_up: bool = False) -> tuple[Result, str]:
        """The metric's result now; ``time_up``: its step's time is over. A metric with no
        count then ends Successful if nothing else decided it, or Inconclusive if it was
        never measured; a metric with a count goes on until it has them."""
        m = self.metric
        time_up = time_up and m.count is None
        if not self.measurements:
            return (Result.INCONCLUSIVE, "no measurement was taken") if time_up else \
                (Result.PENDING, "not measured yet")
        counts = self.counts()
        decided: tuple[Result, str] | None = None
        if counts[Result.FAILED] > m.failure_limit:
            decided = (Result.FAILED, f"{counts[Result.FAILED]} failed measurements > "
                                      f"failureLimit {m.failure_limit}")
        if counts[Result.INCONCLUSIVE] > m.inconclusive_limit:
            decided = (Result.INCONCLUSIVE, f"{counts[Result.INCONCLUSIVE]} inconclusive "
                                            f"measurements > inconclusiveLimit "
                                            f"{m.inconclusive_limit}")
        errors = self.consecutive_errors()
        if errors > m.consecutive_error_limit:
            decided = (Result.ERROR, f"{errors} errors in a row > consecutiveErrorLimit "
                                     f"{m.consecutive_error_limit}: "
                                     f"{self.measurements[-1].message}")
        if decided is not None:
            return decided
        # As in Argo, an Error is no measurement towards the count: the metric is measured
        # again until it has its count, or its errors in a row pass the limit.
        taken = len(self.measurements) - counts[Result.ERROR]
        also = f" (and {counts[Result.ERROR]} errors)" if counts[Result.ERROR] else ""
        if m.count is not None and taken >= m.count:
            return Result.SUCCESSFUL, f"{taken} of {m.count} measurements taken{also}"
        if time_up:
            if not taken:  # nothing measured is never a pass
                return Result.INCONCLUSIVE, (f"no measurement could be taken: "
                                             f"{counts[Result.ERROR]} errors, the last: "
                                             f"{self.measurements[-1].message}")
            return Result.SUCCESSFUL, f"{taken} measurements taken until the step's end{also}"
        return Result.RUNNING, f"{taken} measurements taken{also}"


def overall(results: list[Result]) -> Result:
    """The analysis: a metric Failed, in Error or Inconclusive ends it at once (as an
    AnalysisRun terminates then), the worst of them deciding; otherwise it runs while a
    metric does, and is Successful when all are."""
    ended = [r for r in results if r in (Result.INCONCLUSIVE, Result.ERROR, Result.FAILED)]
    if ended:
        return max(ended, key=_WORSE.index)
    if any(not r.completed for r in results):
        return Result.RUNNING
    return Result.SUCCESSFUL
