"""What a step handler may use: the gateway, the reporter, the clocks, a safe point.

Handlers never see the engine. They read and write the cluster through the gateway,
report through the reporter, wait with :meth:`StepContext.pause` (which passes a safe
point: a stop request or a lost lock ends the wait), and run a sub-step only through
``execute`` (so it is reported like any step).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from deployer.errors import StepFailed
from deployer.health.verifier import VerifyOptions
from deployer.model import PodFailure, Step
from deployer.validation import seconds_from_env

if TYPE_CHECKING:
    from deployer.gateway import ClusterGateway
    from deployer.report import Reporter

OUTAGE_BUDGET = 90.0  # seconds of continuous API failure a waiting run rides out
OUTAGE_BUDGET_ENV = "DEPLOYER_API_OUTAGE_BUDGET"


def outage_budget() -> float:
    """How long a wait may ride out an API outage: $DEPLOYER_API_OUTAGE_BUDGET (seconds
    above 0; tests use it to reach the end of the budget sooner), else OUTAGE_BUDGET."""
    return seconds_from_env(OUTAGE_BUDGET_ENV, OUTAGE_BUDGET, whole=False,
                            error_id="invalid-outage-budget")


@dataclass
class RunSettings:
    deadline: float  # monotonic time by which the whole run must end
    progress_deadline: float | None = None  # seconds new pods may take; default: the Deployment's
    verify: VerifyOptions = VerifyOptions()
    poll_interval: float = 2.0
    client_addresses: tuple[str, ...] = ()
    atomic: bool = False  # on SIGINT/SIGTERM, roll back before exiting
    outage_budget: float = field(default_factory=outage_budget)


@dataclass
class Results:
    """What the steps found out, for the outcome."""

    downtime: float | None = None
    # since when no pod has been available, while that lasts: a rejected recreate's
    # downtime goes on through its rollback until the old version is available again
    downtime_since: float | None = None
    verified_version: str | None = None
    old_side: dict[str, Any] | None = None  # a rollback window left open (blue-green)


@dataclass
class TrafficMemory:
    """What the traffic analysis remembers from one step to the next within a run."""

    client_versions: dict[str, str] = field(default_factory=dict)
    stable_size: int | None = None


@dataclass
class StepContext:
    gateway: ClusterGateway
    reporter: Reporter
    settings: RunSettings
    checkpoint: Callable[[], None]  # a safe point: raises to stop the run
    execute: Callable[[Step], None]  # run (and report) a sub-step
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    confirm: Callable[[], None] = lambda: None  # read the Lease now: raises if it is lost
    results: Results = field(default_factory=Results)
    # running rollback steps: a rollout being restored is seen through before a wrong
    # answer to /version ends the wait (the old version is being put back either way)
    restoring: bool = False
    traffic: TrafficMemory = field(default_factory=TrafficMemory)

    def pause(self, seconds: float) -> None:
        """Sleep a little, then pass a safe point."""
        self.sleep(seconds)
        self.checkpoint()

    def explain(self, failures: tuple[PodFailure, ...] | list[PodFailure]) -> None:
        """Attach the events and last log lines of each failed pod to the report."""
        detailed = []
        for f in failures[:5]:
            events = tuple(
                f"{e.get('reason')}: {e.get('message', '').strip()}"
                for e in self.gateway.list_events(f.pod)[-5:])
            logs: tuple[str, ...] = ()
            if f.container:
                crashed = f.reason == "CrashLoopBackOff"
                logs = tuple(self.gateway.pod_logs(f.pod, f.container, previous=crashed))
            detailed.append(PodFailure(f.pod, f.container, f.reason, f.message, f.image,
                                       f.exit_code, events, logs))
        self.reporter.failed_pods(detailed)

    def wait_until(self, pending: Callable[[], str | None], *, deadline: float,
                   failure: Callable[[], str], interval: float = 0.5,
                   feed: Feed | None = None) -> None:
        """Poll ``pending`` (None: done; else what is still awaited) until ``deadline``.

        Between polls it waits ``interval``, or less when ``feed`` reports a change, and
        passes a safe point. When the time is up the step fails with ``failure()``.
        """
        while (waiting := pending()) is not None:
            if self.clock() > deadline:
                raise StepFailed(failure())
            self.reporter.waiting(waiting)
            if feed is None:
                self.pause(interval)
            else:
                feed.wait(interval)
                self.checkpoint()


def must_exist(obj: dict[str, Any] | None, kind: str, name: str) -> dict[str, Any]:
    """A step's object read back: gone since the plan was made fails the step."""
    if obj is None:
        raise StepFailed(f"{kind} {name} no longer exists")
    return obj


class Feed(Protocol):
    def wait(self, timeout: float) -> bool: ...
