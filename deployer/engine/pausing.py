"""``deployer pause``: a running deploy holds at a safe point until ``deployer resume``.

Another process asks by writing a pause request into the app's ConfigMap (the run
journal's, see :mod:`deployer.record`); the engine looks at it at its safe points (before
each step, and while it waits for a rollout or holds), at most every POLL seconds, as a
watch of that ConfigMap has it (no request; a read while the watch is out of step), so
a long run does not read it again and again.
Holding means: no writes to the app, the Lease still renewed and read, the pods still
watched (a failure is reported at once, and judged after the resume). A rolling update
held inside its rollout pauses the Deployment itself (``spec.paused``), as
``kubectl rollout pause`` does, so the controller stops replacing pods too. The run's
deadlines do not count the time held: the engine's clock is :class:`RunClock`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from deployer.health.pods import Final, pod_observations, rule_for
from deployer.health.verifier import selector_of
from deployer.record import PauseRequest, journal_name, read_pause
from deployer.timestamps import iso
from deployer.writes import conditional_write

if TYPE_CHECKING:
    from deployer.gateway import ChangeFeed, ClusterGateway
    from deployer.model import Plan
    from deployer.record import Journal
    from deployer.report import Reporter

POLL = 2.0  # seconds between reads of the pause request
WATCH_EVERY = 10.0  # seconds between looks at the pods while held
SAY_EVERY = 30.0  # seconds between "still paused" lines


class RunClock:
    """The run's clock: the base monotonic clock minus the time the run was held."""

    def __init__(self, base: Callable[[], float] = time.monotonic):
        self.base = base
        self.held = 0.0

    def __call__(self) -> float:
        return self.base() - self.held


def set_paused(gateway: ClusterGateway, name: str, paused: bool) -> bool:
    """Set a Deployment's ``spec.paused``; False when it is gone or already so."""

    def read() -> dict[str, Any]:
        dep = gateway.get_deployment(name)
        return dep if dep is not None else {"spec": {"paused": paused}}

    def change(dep: dict[str, Any]) -> dict[str, Any] | None:
        if bool(dep["spec"].get("paused")) == paused or "metadata" not in dep:
            return None
        if paused:
            dep["spec"]["paused"] = True
        else:
            dep["spec"].pop("paused", None)
        return dep

    return conditional_write(read, gateway.replace_deployment, change, f"deployment {name}")


def release(gateway: ClusterGateway, journal: Journal, reporter: Reporter) -> None:
    """A run that was held and is now continued or undone by another process: the
    Deployment it paused goes on, and the record no longer says held."""
    held = journal.record.held
    if not held:
        return
    name = held.get("deployment")
    if name and set_paused(gateway, name, False):
        reporter.note(f"deployment {name} was paused by the held run; it is resumed")
    journal.update(held=None)


class Pausing:
    """Asks whether the run should hold, and holds it until the request is withdrawn."""

    def __init__(self, gateway: ClusterGateway, reporter: Reporter, journal: Journal,
                 plan: Plan, clock: RunClock, *, sleep: Callable[[float], None],
                 wall: Callable[[], float], stop_check: Callable[[], None],
                 lock_check: Callable[[], None], lock_confirm: Callable[[], None]):
        self.gateway = gateway
        self.reporter = reporter
        self.journal = journal
        self.plan = plan
        self.clock = clock
        self.sleep = sleep
        self.wall = wall
        self.stop_check = stop_check
        self.lock_check = lock_check
        self.lock_confirm = lock_confirm
        self._asked_at: float | None = None
        self._feed: ChangeFeed | None = None  # the app's ConfigMap, watched

    def asked(self) -> PauseRequest | None:
        """The pause request for this run, looked at most every POLL seconds."""
        now = self.clock.base()
        if self._asked_at is not None and now - self._asked_at < POLL:
            return None
        self._asked_at = now
        request = self._request()
        if request is None or request.run != self.journal.record.id:
            return None
        return request

    def _request(self) -> PauseRequest | None:
        """The pause request as the ConfigMap's watch has it (read while out of step)."""
        if self._feed is None:
            self._feed = self.gateway.changes(config_map=journal_name(self.journal.app))
        return read_pause(self.gateway, self.journal.app, self._feed.current("configmap"))

    def close(self) -> None:
        if self._feed is not None:
            self._feed.close()

    def hold(self, request: PauseRequest, step: str, *, inside: str | None) -> None:
        """Hold until the request is withdrawn. ``inside``: the Deployment whose rollout
        the run is waiting for, paused meanwhile (None between steps)."""
        started = self.clock.base()
        self.lock_confirm()  # never pause a Deployment for a run that lost the app
        if inside is not None:
            set_paused(self.gateway, inside, True)
        why = f" ({request.reason})" if request.reason else ""
        self.journal.update(held={"by": request.by, "since": iso(self.wall()),
                                  "reason": request.reason, "step": step,
                                  "deployment": inside})
        where = f"inside '{step}'" if inside is None else \
            f"inside '{step}'; deployment {inside} is paused (spec.paused)"
        if inside is None and self.journal.record.step == step:
            where = f"before '{step}'"
        self.reporter.heading(f"Paused by {request.by}{why}: holding {where}; the lock is "
                              "kept and the pods are watched")
        app = f"--app {self.journal.app}"
        self.reporter.note(f"to go on: {self.reporter.command(f'deployer resume {app}')}; to "
                           f"roll back: {self.reporter.command(f'deployer abort {app}')}")
        warned: set[tuple[str, str]] = set()
        looked = said = started
        confirmed = started
        try:
            while True:
                self.sleep(POLL)
                self.stop_check()
                now = self.clock.base()
                if now - confirmed >= WATCH_EVERY:
                    self.lock_confirm()
                    confirmed = now
                else:
                    self.lock_check()
                if now - looked >= WATCH_EVERY:
                    self._watch(warned)
                    looked = now
                if now - said >= SAY_EVERY:
                    self.reporter.waiting(f"paused by {request.by} for {now - started:.0f}s")
                    said = now
                current = self._request()
                if current is None or current.run != self.journal.record.id:
                    break
        finally:
            self.clock.held += self.clock.base() - started
        self.lock_confirm()
        if inside is not None:
            set_paused(self.gateway, inside, False)
        self.journal.update(held=None)
        self.reporter.heading(f"Resumed after {self.clock.base() - started:.0f}s paused; "
                              "the deadlines did not count that time")

    def _watch(self, warned: set[tuple[str, str]]) -> None:
        """Report each new pod failure of the app's Deployments (judged after the resume)."""
        for name in self.plan.deployments():
            dep = self.gateway.get_deployment(name)
            if dep is None:
                continue
            for pod in self.gateway.list_pods(selector_of(dep)):
                for seen in pod_observations(pod):
                    rule = rule_for(seen.seen, seen.reason)
                    key = (seen.where, seen.reason)
                    if rule is None or rule.final is Final.NEVER or key in warned:
                        continue
                    warned.add(key)
                    self.reporter.warn(f"while paused: {seen.where} {seen.reason}: "
                                       f"{seen.message}".rstrip(": "))
