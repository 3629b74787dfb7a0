"""The Hold step: keep everything as it is for a while (e.g. a rollback window)."""

from __future__ import annotations

from deployer.engine.context import StepContext
from deployer.model import Hold

TICK = 5.0  # seconds between "still waiting" lines


def hold(ctx: StepContext, step: Hold) -> str | None:
    end = ctx.clock() + step.seconds
    while (left := end - ctx.clock()) > 0:
        ctx.reporter.waiting(f"{step.reason}: {left:.0f}s left")
        ctx.pause(min(left, TICK))
    return None
