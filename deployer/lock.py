"""One run per app: a coordination.k8s.io/v1 Lease named ``deployer-<app>``.

The Lease names its holder (run id and who), the command and when it expires; the
holder renews it while it runs. A second run fails fast naming the holder (exit 4)
or waits for it. An expired Lease (its holder was killed) is taken over without
manual surgery; ``--force`` takes over a live one (the on-call engineer). Before
every write the engine checks that the Lease is still its own, so a run that lost
it (it was paused past expiry, or someone forced it) stops without writing.

Expiry is judged from the Lease's renewTime (written by the holder's clock) against
this machine's clock. That is a choice: client-go's leader election instead measures
from the moment it itself observed the last change of the record, which is immune to
clock skew but makes every newcomer wait a full lease duration, even for a holder that
died hours ago, and a CLI is always a newcomer. The cost is that clocks far apart
shorten or lengthen the lease: a machine whose clock runs ahead may take over early.
What bounds the harm: the holder re-reads the Lease when it renews (every third of
the duration), before every journal write (``confirm_held``, so before every step), and
at every safe point once its own clock says the lease ran out (``ensure_held``); from the
moment it sees another holder it writes nothing more.

The Lease lasts LEASE_SECONDS unless ``DEPLOYER_LEASE_SECONDS`` says otherwise (whole
seconds above 0; tests use it to wait out an expiry sooner).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_result,
    stop_after_delay,
    stop_any,
    wait_fixed,
)
from tenacity.stop import stop_base

from deployer import logs
from deployer.errors import Conflict, DeployerError, LockHeld, NotFound
from deployer.timestamps import micro, parse
from deployer.validation import seconds_from_env

if TYPE_CHECKING:
    from deployer.gateway import ClusterGateway

log = logs.get_logger("deployer.lock")
LEASE_SECONDS = 30
LOCK_POLL = 2.0  # seconds between tries while waiting for another run's lock
LEASE_SECONDS_ENV = "DEPLOYER_LEASE_SECONDS"


def lease_seconds() -> int:
    """The Lease's duration: $DEPLOYER_LEASE_SECONDS when set, else LEASE_SECONDS."""
    return int(seconds_from_env(LEASE_SECONDS_ENV, LEASE_SECONDS, whole=True,
                                error_id="invalid-lease-seconds"))


def lease_name(app: str) -> str:
    return f"deployer-{app}"


def version_of(lease: dict[str, Any] | None) -> str:
    """A Lease's resourceVersion, "" when there is none: what changes whenever a run takes,
    renews or gives back the lock."""
    return str((lease or {}).get("metadata", {}).get("resourceVersion") or "")


def describe_holder(lease: dict[str, Any], now: float) -> dict[str, Any] | None:
    """Who holds the Lease and for how long, or None when nobody does."""
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity")
    if not holder:
        return None
    renewed = parse(spec.get("renewTime")) or parse(spec.get("acquireTime")) or 0.0
    duration = int(spec.get("leaseDurationSeconds") or LEASE_SECONDS)
    annotations = lease["metadata"].get("annotations") or {}
    return {"holder": holder, "command": annotations.get("deployer.dev/command"),
            "since": spec.get("acquireTime"), "expiresIn": round(renewed + duration - now, 1)}


class _When(stop_base):
    """Stop retrying as soon as ``condition()`` holds (a signal arrived)."""

    def __init__(self, condition: Callable[[], bool]):
        self.condition = condition

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.condition()


class Lock:
    def __init__(self, gateway: ClusterGateway, app: str, holder: str, command: str, *,
                 duration: int | None = None, clock: Any = time.time,
                 sleep: Any = time.sleep):
        self.gateway = gateway
        self.app = app
        self.name = lease_name(app)
        self.holder = holder
        self.command = command
        self.duration = lease_seconds() if duration is None else duration
        self.clock = clock
        self.sleep = sleep
        self._lease: dict[str, Any] | None = None
        self._lost: str | None = None
        self.note: str | None = None  # how the lock was taken, when that is news
        # the Lease's resourceVersion as the try that took it found it ("" when there was
        # none): equal to one read earlier, no run took or gave back the lock in between
        self.found: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()

    # ------------------------------------------------------------------ acquire

    def _body(self, now: float, acquired: str | None = None) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.name, "labels": {"app": self.app},
                         "annotations": {"deployer.dev/command": self.command}},
            "spec": {"holderIdentity": self.holder, "leaseDurationSeconds": self.duration,
                     "acquireTime": acquired or micro(now), "renewTime": micro(now)},
        }

    def acquire(self, *, force: bool = False, wait: float = 0.0,
                stopped: Callable[[], bool] = lambda: False,
                waiting: Callable[[str], None] = lambda message: None) -> str | None:
        """Take the Lease; returns a note when it took over an expired or forced one.

        With ``wait`` it tries again every couple of seconds for that long, unless
        ``stopped()`` says to give up (a signal): then it returns None without the Lease.
        Once, when it starts to wait, ``waiting`` is told for whom."""
        def tell(state: RetryCallState) -> None:
            if state.attempt_number == 1:  # the first try found it held: the wait begins
                waiting(self._waiting_message(wait))

        retrying = Retrying(retry=retry_if_result(lambda got: not got[0]),
                            before_sleep=tell,
                            stop=stop_any(stop_after_delay(wait), _When(stopped)),
                            wait=wait_fixed(LOCK_POLL),
                            sleep=self.sleep,
                            retry_error_callback=lambda state: state.outcome.result()
                            if state.outcome else (False, ""))
        acquired, note = retrying(self._try, force)
        if not acquired and stopped():
            return None
        if not acquired:
            raise self._held_error()
        self._start_renewing()
        self.note = note or None
        return self.note

    def _holder(self) -> dict[str, Any]:
        """The holder of the Lease last read, as describe_holder tells it ({} if none)."""
        return describe_holder(self._lease or {}, self.clock()) or {}

    def _waiting_message(self, wait: float) -> str:
        holder = self._holder()
        return (f"waiting up to {wait:.0f}s for the lock of {self.app}: held by "
                f"{holder.get('holder') or 'another run'} "
                f"({holder.get('command') or 'unknown command'}), which expires in "
                f"{max(0, holder.get('expiresIn', 0)):.0f}s unless renewed")

    def _held_error(self) -> LockHeld:
        holder = self._holder()
        return LockHeld(
            f"{self.app} is locked by {holder.get('holder')} "
            f"({holder.get('command') or 'unknown command'}, since "
            f"{holder.get('since')}); the lock expires in "
            f"{max(0, holder.get('expiresIn', 0)):.0f}s unless renewed",
            hint="wait for it (--wait-for-lock 5m), or take it over with --force if "
                 "that run is dead or must be stopped")

    def check_free(self, *, force: bool = False) -> str | None:
        """What :meth:`acquire` would decide now, without writing (for a dry run).

        Raises LockHeld when another live run holds the Lease; returns a note when the
        real run would take over an expired or forced one."""
        lease = self.gateway.get_lease(self.name)
        if lease is None:
            return None
        free, taken = self._judge(lease, self.clock(), force)
        if not free:
            self._lease = lease
            raise self._held_error()
        return f"the real run would take over the lock from {taken}" if taken else None

    def _judge(self, lease: dict[str, Any], now: float, force: bool) -> tuple[bool, str]:
        """May we take this Lease now? And if that means taking it from another holder,
        from whom and why: "X (expired)" or "X (forced)"."""
        current = describe_holder(lease, now)
        if current is None or current["holder"] == self.holder:
            return True, ""
        expired = current["expiresIn"] <= 0
        if not (expired or force):
            return False, ""
        return True, f"{current['holder']} ({'expired' if expired else 'forced'})"

    def _try(self, force: bool) -> tuple[bool, str]:
        now = self.clock()
        lease = self.gateway.get_lease(self.name)
        self.found = version_of(lease)
        if lease is None:
            try:
                self._lease = self.gateway.create_lease(self._body(now))
                return True, ""
            except Conflict:
                return False, ""  # someone created it first; look again next round
        self._lease = lease
        free, taken = self._judge(lease, now, force)
        if not free:
            return False, ""
        note = f"took over the lock from {taken}" if taken else ""
        body = self._body(now)
        body["metadata"]["resourceVersion"] = lease["metadata"]["resourceVersion"]
        try:
            self._lease = self.gateway.replace_lease(body)
        except Conflict:
            return False, ""
        return True, note

    # ------------------------------------------------------------------- renew

    def _start_renewing(self) -> None:
        self._thread = threading.Thread(target=self._renew_loop, daemon=True, name="lease")
        self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.duration / 3):
            try:
                self.renew()
            except DeployerError as exc:
                log.warning("could not renew the lock", error=exc.message)

    def renew(self) -> None:
        """One write: the Lease as this run last wrote it, with a new renewTime, on the
        condition that nobody wrote it since (its resourceVersion). Only when someone did
        is it read, to see whether it is still this run's."""
        with self._mutex:
            if self._lost or self._lease is None:
                return
            lease: dict[str, Any] | None = self._lease
            for _ in range(2):
                assert lease is not None
                spec = dict(lease["spec"], renewTime=micro(self.clock()))
                try:
                    self._lease = self.gateway.replace_lease({**lease, "spec": spec})
                    return
                except (Conflict, NotFound):
                    pass  # written (or deleted) by someone else since: who holds it now?
                lease = self.gateway.get_lease(self.name)
                holder = (lease or {}).get("spec", {}).get("holderIdentity")
                if lease is None or holder != self.holder:
                    self._lost = f"the lock is now held by {holder or 'nobody'}"
                    return
            self._lost = "the lock changed hands while renewing"

    def confirm_held(self) -> None:
        """Read the Lease and stop if it is no longer ours: called before every journal
        write, so a run whose lock was taken over moments ago (``--force``) writes nothing
        more, without waiting for its next renewal to notice."""
        with self._mutex:
            if self._lost is None and self._lease is not None:
                lease = self.gateway.get_lease(self.name)
                holder = (lease or {}).get("spec", {}).get("holderIdentity")
                if holder != self.holder:
                    self._lost = f"the lock is now held by {holder or 'nobody'}"
        if self._lost:
            raise LockHeld(f"stopped before writing: {self._lost}", id="lock-lost")

    def ensure_held(self) -> None:
        """Called before every write: a run that lost its lock must not write again."""
        if self._lost is None and self._lease is not None:
            spec = self._lease.get("spec") or {}
            renewed = parse(spec.get("renewTime")) or 0.0
            if self.clock() > renewed + self.duration:
                self.renew()  # we were stopped or starved past expiry: look before writing
        if self._lost:
            raise LockHeld(f"stopped before writing: {self._lost}", id="lock-lost")

    # ----------------------------------------------------------------- release

    def release(self) -> None:
        self._stop.set()
        with self._mutex:
            if self._lost or self._lease is None:
                return
            try:
                lease = self.gateway.get_lease(self.name)
                if lease and lease["spec"].get("holderIdentity") == self.holder:
                    spec = dict(lease["spec"], holderIdentity="", renewTime=micro(self.clock()))
                    self.gateway.replace_lease({**lease, "spec": spec})
            except (Conflict, NotFound):
                pass
            except DeployerError as exc:  # it will expire by itself
                log.warning("could not release the lock", error=exc.message)
            self._lease = None
