"""Steps that keep everything as it is for a while: Hold, blue-green's rollback window
after the switch (KeepOld), and an analysis on its own (Analyse)."""

from __future__ import annotations

from deployer.engine import traffic
from deployer.engine.context import StepContext
from deployer.errors import StepFailed
from deployer.model import Analyse, Hold, KeepOld, VerifyTraffic
from deployer.timestamps import iso

TICK = 5.0  # seconds between "still waiting" lines
# Of --timeout, what a foreground window leaves for scaling the old side down: the window
# is cut short rather than run past the deadline that bounds the whole run.
WINDOW_MARGIN = 15.0
# Clients that call the Service in each round of a watched window. The switch's own check
# already met every client address; in the window, where every client must get the new
# version, a few dozen notice a side that stops serving it, at a fifth of the load on the
# user's app (5 requests each, every 3 s, for the whole window).
WINDOW_CLIENTS = 40


def hold(ctx: StepContext, step: Hold) -> str | None:
    end = ctx.clock() + step.seconds
    while (left := end - ctx.clock()) > 0:
        ctx.reporter.waiting(f"{step.reason}: {left:.0f}s left")
        ctx.pause(min(left, TICK))
    return None


def keep_old(ctx: StepContext, step: KeepOld) -> str | None:
    """Watch the new live side while the old side stays up; a failure fails the step, so
    the engine's rollback switches back to the old side, which is still running.

    A window without ``watch`` is recorded (``Results.old_side``) and the run ends; the
    next deployer command for the app scales the old side down once it has expired.
    """
    if not step.watch:
        until = ctx.wall() + step.seconds
        ctx.results.old_side = {"deployment": step.old_deployment, "service": step.service,
                                "until": iso(until)}
        return (f"{step.old_deployment} stays up until {iso(until)} as the rollback window; "
                "the next deploy, promote or abort of the app after that scales it down")
    window = min(step.seconds, ctx.settings.deadline - WINDOW_MARGIN - ctx.clock())
    live = VerifyTraffic(step.service, step.new_deployment, step.new_version, None,
                         step.old_version, 1.0, duration=max(window, 0.0),
                         fresh_clients=(0, WINDOW_CLIENTS), analysis=step.analysis)
    try:
        # the analysis compares the live side with the old one, still up in the window
        sides = None
        if step.analysis:
            from deployer.engine.analysing import Sides

            sides = Sides(step.service, step.new_deployment, step.new_version,
                          step.old_deployment, step.old_version)
        note = traffic.verify(ctx, live, before_round=ctx.confirm, label=step.describe(),
                              sides=sides)
    except StepFailed as exc:
        raise StepFailed(f"{step.new_deployment} failed in the rollback window after the "
                         f"switch: {exc.message}", exc.evaluation, exc.timed_out) from exc
    if window < step.seconds:
        note = (f"the window was cut to {max(window, 0):.0f}s so that the run ends within "
                f"--timeout; {note}")
    return note


def analyse(ctx: StepContext, step: Analyse) -> str | None:
    """blue-green's pre-promotion analysis, rolling's after its rollout: the analyses on
    the new pods (beside the old ones, while they run) for the step's time."""
    from deployer.engine.analysing import Sides, StepAnalysis, watch

    sides = Sides(step.app, step.new_deployment, step.new_version, step.old_deployment,
                  step.old_version)
    return watch(ctx, StepAnalysis(ctx, step.analysis, sides, step.describe()), step.duration)
