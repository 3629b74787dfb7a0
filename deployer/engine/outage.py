"""Riding out a short API outage while the runner is only waiting."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deployer.errors import ClusterUnreachable

if TYPE_CHECKING:
    from deployer.runner import Runner


class Outage:
    """Tolerance for an API server that stops answering while the runner only waits.

    Each request already retries for a few seconds; a wait loop also rides out a longer
    outage (an API server restart takes 10 to 20 s) for up to ``budget`` seconds of
    continuous failure, then gives up with the error, as the run's outcome is unknown.
    """

    def __init__(self, runner: Runner, budget: float = 90.0):
        self.runner = runner
        self.budget = budget
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
