"""Riding out a short API outage while the runner is only waiting."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

from deployer.errors import ClusterUnreachable, InvalidInput

if TYPE_CHECKING:
    from deployer.runner import Runner

BUDGET_SECONDS = 90.0
BUDGET_ENV = "DEPLOYER_API_OUTAGE_BUDGET"


def budget_seconds() -> float:
    """How long a wait may ride out an outage: $DEPLOYER_API_OUTAGE_BUDGET (seconds above 0)
    when set, else BUDGET_SECONDS."""
    raw = os.environ.get(BUDGET_ENV, "").strip()
    if not raw:
        return BUDGET_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidInput(f"{BUDGET_ENV}={raw!r} is invalid: use a number of seconds above 0",
                           id="invalid-outage-budget",
                           hint=f"unset it for the default of {BUDGET_SECONDS:.0f}s")
    return seconds


class Outage:
    """Tolerance for an API server that stops answering while the runner only waits.

    Each request already retries for a few seconds; a wait loop also rides out a longer
    outage (an API server restart takes 10 to 20 s) for up to ``budget`` seconds of
    continuous failure (default: budget_seconds()), then gives up with the error, as the
    run's outcome is unknown.
    """

    def __init__(self, runner: Runner, budget: float | None = None):
        self.runner = runner
        self.budget = budget_seconds() if budget is None else budget
        self.since: float | None = None

    def failed(self, exc: ClusterUnreachable) -> None:
        now = self.runner.clock()
        if self.since is None:
            self.since = now
        if now - self.since > self.budget:
            raise exc
        self.runner.reporter.waiting(f"the API server does not answer ({now - self.since:.0f}s"
                                     f" so far); waiting up to {self.budget:.0f}s")
        self.runner.pause(2.0)

    def clear(self) -> None:
        self.since = None
