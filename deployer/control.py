"""``deployer pause`` and ``deployer resume``, from any shell, for a run in progress.

Neither takes the app's lock: the run holds it, and renews it while held. ``pause``
writes a request into the app's ConfigMap and waits (ACK_WAIT) until the run says it
is holding; ``resume`` withdraws it and waits until the run says it goes on. When the
process that ran it is gone (its Lease expired), ``resume`` hands the recorded run back
to the command line, which continues it in the foreground.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from deployer.errors import InvalidInput
from deployer.exitcodes import ExitCode
from deployer.lock import describe_holder, lease_name
from deployer.model import Outcome, Verdict
from deployer.record import PauseRequest, RunRecord, read_pause, read_run, set_pause, who_am_i
from deployer.snapshot import find_app
from deployer.timestamps import iso

if TYPE_CHECKING:
    from deployer.gateway import ClusterGateway

ACK_WAIT = 30.0  # seconds pause waits for the run to say it holds
POLL = 1.0
RESUME_MARGIN = 5.0  # seconds beyond the Lease's expiry that resume waits for an answer


class Control:
    def __init__(self, gateway: ClusterGateway, app: str, where: str, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        self.gateway = gateway
        self.app = app
        self.where = where  # -n/--context as the printed commands need them
        self.clock = clock
        self.wall = wall
        self.sleep = sleep

    def _cmd(self, verb: str) -> str:
        """A command for an outcome (the reporter adds -n/--context)."""
        return f"deployer {verb} --app {self.app}"

    def _at(self, verb: str) -> str:
        """A command for an error's hint, with -n/--context."""
        return f"{self._cmd(verb)} {self.where}".rstrip()

    def live_holder(self) -> dict[str, Any] | None:
        """Who holds the app's Lease and has renewed it in time, or None."""
        lease = self.gateway.get_lease(lease_name(self.app))
        holder = describe_holder(lease, self.wall()) if lease else None
        return holder if holder is not None and holder["expiresIn"] > 0 else None

    def _run(self, verb: str) -> RunRecord:
        run = read_run(self.gateway, self.app)
        if run is None:
            find_app(self.gateway, self.app)  # a typo in --app gets its hint
        if run is None or run.plan is None:
            raise InvalidInput(f"{self.app} has no run in progress to {verb}", id="no-run",
                               hint=f"see {self._at('status')}")
        if run.phase == "paused":
            raise InvalidInput(f"{self.app}'s {run.strategy} run is paused at its promotion "
                               f"gate, not by deployer pause", id="at-gate",
                               hint=f"{self._at('promote')} goes on, {self._at('abort')} "
                                    "rolls it back")
        if run.phase == "rolling-back":
            raise InvalidInput(f"{self.app}'s {run.strategy} run is rolling back; a rollback "
                               "is never paused", id="rolling-back",
                               hint=f"see {self._at('status')}")
        return run

    def pause(self, reason: str | None) -> Outcome:
        run = self._run("pause")
        asked = read_pause(self.gateway, self.app)
        if run.held or (asked is not None and asked.run == run.id):
            by = (run.held or {}).get("by") or (asked.by if asked else "?")
            return Outcome(Verdict.PAUSED, ExitCode.OK,
                           f"{self.app}'s {run.strategy} run {run.id} is already paused by "
                           f"{by}", next_command=self._cmd("resume"),
                           other_commands=(self._cmd("abort"),))
        if self.live_holder() is None:
            raise InvalidInput(f"{self.app}'s {run.strategy} run {run.id} is not running "
                               f"({run.phase} at '{run.step}', and no process holds its lock)"
                               "; there is nothing to pause", id="not-running",
                               hint=f"{self._at('abort')} rolls it back; the command that "
                                    "started it, run again, continues it")
        set_pause(self.gateway, self.app, PauseRequest(run.id, who_am_i(), iso(self.wall()) or "",
                                                       reason))
        end = self.clock() + ACK_WAIT
        while True:
            now = read_run(self.gateway, self.app)
            if now is None or now.id != run.id:
                return Outcome(Verdict.UNKNOWN, ExitCode.OK,
                               f"{self.app}'s run {run.id} ended before it paused "
                               f"({(now or run).phase})", next_command=self._cmd("status"))
            if now.held:
                return Outcome(Verdict.PAUSED, ExitCode.OK,
                               f"{self.app}'s {run.strategy} run {run.id} is paused at "
                               f"'{now.held.get('step')}'; it keeps its lock and watches its "
                               "pods, and its deadlines stop counting",
                               next_command=self._cmd("resume"),
                               other_commands=(self._cmd("abort"),))
            if self.clock() >= end:
                return Outcome(Verdict.PAUSED, ExitCode.OK,
                               f"pause asked: {self.app}'s {run.strategy} run {run.id} holds "
                               f"once '{now.step}' ends (it holds only between steps, or "
                               "while it waits for a rollout); status shows when it does",
                               next_command=self._cmd("status"),
                               other_commands=(self._cmd("resume"),))
            self.sleep(POLL)

    def resume(self) -> Outcome | RunRecord:
        """Let the run go on: an Outcome when its process goes on, or the RunRecord to
        continue here when that process is gone."""
        run = self._run("resume")
        asked = read_pause(self.gateway, self.app)
        if not run.held and (asked is None or asked.run != run.id):
            raise InvalidInput(f"{self.app}'s {run.strategy} run {run.id} is not paused "
                               f"({run.phase} at '{run.step}')", id="not-paused",
                               hint=f"{self._at('pause')} pauses it")
        if asked is not None:
            set_pause(self.gateway, self.app, None)
        holder = self.live_holder()
        if holder is None:
            return run
        # a killed holder's Lease lasts until it expires: wait at least that long
        start = self.clock()
        end = start + max(ACK_WAIT, holder["expiresIn"] + RESUME_MARGIN)
        while self.clock() < end:
            now = read_run(self.gateway, self.app)
            if now is None or now.id != run.id or not now.held:
                return Outcome(Verdict.RESUMED, ExitCode.OK,
                               f"{self.app}'s {run.strategy} run {run.id} goes on (in the "
                               f"process of {run.who})", next_command=self._cmd("status"))
            if self.live_holder() is None:
                return now
            self.sleep(POLL)
        return Outcome(Verdict.UNKNOWN, ExitCode.TIMEOUT,
                       f"resume asked, but {self.app}'s run {run.id} has not gone on within "
                       f"{self.clock() - start:.0f}s although its process still "
                       "renews the lock", next_command=self._cmd("status"),
                       other_commands=(self._cmd("abort"),))
