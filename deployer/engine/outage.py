"""Riding out a short API outage while a step only waits."""

from __future__ import annotations

import contextlib

from deployer.engine.context import StepContext
from deployer.errors import ClusterUnreachable

RETRY_PAUSE = 2.0


class Outage:
    """Tolerance for an API server that stops answering while a step only waits.

    Each request already retries for a few seconds; a wait loop also rides out a longer
    outage (an API server restart takes 10 to 20 s) for up to the run's outage budget
    (``RunSettings.outage_budget``) of continuous failure, then gives up with the error,
    as the run's outcome is unknown.
    """

    def __init__(self, ctx: StepContext):
        self.ctx = ctx
        self.budget = ctx.settings.outage_budget
        self.since: float | None = None

    def failed(self, exc: ClusterUnreachable) -> None:
        now = self.ctx.clock()
        if self.since is None:
            self.since = now
        if now - self.since > self.budget:
            raise exc
        self.ctx.reporter.waiting(f"the API server does not answer ({now - self.since:.0f}s"
                                  f" so far); waiting up to {self.budget:.0f}s")
        self.ctx.sleep(RETRY_PAUSE)
        # The lock cannot be confirmed while the API server is away. Nothing is written
        # meanwhile, and every write confirms the lock first, so the wait goes on.
        with contextlib.suppress(ClusterUnreachable):
            self.ctx.checkpoint()

    def clear(self) -> None:
        self.since = None
