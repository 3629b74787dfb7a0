"""The per-app Lease: acquire, refuse naming the holder, take over when expired or forced,
and notice a lost lock before writing."""

import copy

import pytest

from deployer.errors import Conflict, LockHeld, NotFound
from deployer.lock import Lock, describe_holder
from deployer.timestamps import micro


class Leases:
    """A fake of deployer's gateway for Leases, with resourceVersion preconditions."""

    def __init__(self):
        self.items: dict[str, dict] = {}
        self.rv = 0
        self.reads = 0

    def get_lease(self, name):
        self.reads += 1
        lease = self.items.get(name)
        return copy.deepcopy(lease) if lease else None

    def create_lease(self, body):
        name = body["metadata"]["name"]
        if name in self.items:
            raise Conflict("exists")
        return self._store(body)

    def replace_lease(self, body):
        current = self.items.get(body["metadata"]["name"])
        if current is None:
            raise NotFound("leases \"deployer-hello\" not found")
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise Conflict("changed")
        return self._store(body)

    def _store(self, body):
        self.rv += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self.rv)
        self.items[body["metadata"]["name"]] = body
        return copy.deepcopy(body)


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def lock(store, clock, holder="a"):
    lk = Lock(store, "hello", holder, f"deployer rolling ({holder})", clock=clock)
    lk._start_renewing = lambda: None  # renewals are driven by the test
    return lk


def test_a_second_run_is_refused_naming_the_holder_and_its_command():
    store, clock = Leases(), Clock()
    lock(store, clock, "a").acquire()
    with pytest.raises(LockHeld, match=r"locked by a \(deployer rolling \(a\)"):
        lock(store, clock, "b").acquire()


def test_an_expired_lease_is_taken_over_and_said_so():
    store, clock = Leases(), Clock()
    lock(store, clock, "a").acquire()
    clock.now += 31
    note = lock(store, clock, "b").acquire()
    assert note == "took over the lock from a (expired)"
    assert store.items["deployer-hello"]["spec"]["holderIdentity"] == "b"


def test_force_takes_a_live_lease():
    store, clock = Leases(), Clock()
    lock(store, clock, "a").acquire()
    assert "forced" in lock(store, clock, "b").acquire(force=True)


def test_the_old_holder_notices_before_its_next_write():
    store, clock = Leases(), Clock()
    first = lock(store, clock, "a")
    first.acquire()
    lock(store, clock, "b").acquire(force=True)
    clock.now += 31  # first was stopped past its expiry
    with pytest.raises(LockHeld, match="stopped before writing"):
        first.ensure_held()


def test_release_frees_the_lease_for_the_next_run_at_once():
    store, clock = Leases(), Clock()
    first = lock(store, clock, "a")
    first.acquire()
    first.release()
    assert describe_holder(store.items["deployer-hello"], clock()) is None
    assert lock(store, clock, "b").acquire() is None


def test_renewal_keeps_the_lease_alive():
    store, clock = Leases(), Clock()
    first = lock(store, clock, "a")
    first.acquire()
    clock.now += 20
    first.renew()
    clock.now += 20  # 40 s after acquiring, 20 s after renewing: still held
    with pytest.raises(LockHeld):
        lock(store, clock, "b").acquire()
    assert store.items["deployer-hello"]["spec"]["renewTime"] == micro(clock.now - 20)


def test_waiting_for_the_lock_tries_again_until_the_holder_lets_go():
    store, clock = Leases(), Clock()
    first = lock(store, clock, "a")
    first.acquire()
    slept: list[float] = []

    def sleep(seconds):
        slept.append(seconds)
        clock.now += seconds
        if len(slept) == 3:
            first.release()

    waiter = lock(store, clock, "b")
    waiter.sleep = sleep
    told: list[str] = []
    assert waiter.acquire(wait=60, waiting=told.append) is None
    assert slept == [2.0, 2.0, 2.0]
    assert store.items["deployer-hello"]["spec"]["holderIdentity"] == "b"
    # said once, when the wait began: for how long, who holds it, when it expires
    assert told == ["waiting up to 60s for the lock of hello: held by a (deployer rolling (a)), "
                    "which expires in 30s unless renewed"], told


def test_no_wait_asked_nothing_is_said_about_waiting():
    store, clock = Leases(), Clock()
    lock(store, clock, "a").acquire()
    told: list[str] = []
    with pytest.raises(LockHeld):
        lock(store, clock, "b").acquire(waiting=told.append)
    assert told == []


def test_waiting_gives_up_naming_the_holder():
    store, clock = Leases(), Clock()
    lock(store, clock, "a").acquire()
    waiter = lock(store, clock, "b")
    waiter.sleep = lambda seconds: None
    with pytest.raises(LockHeld, match="locked by a"):
        waiter.acquire(wait=0.05)


def test_a_signal_while_waiting_ends_the_wait_without_writing():
    store, clock = Leases(), Clock()
    lock(store, clock, "a").acquire()
    before = copy.deepcopy(store.items)
    signalled: list[bool] = []

    def sleep(seconds):
        clock.now += seconds
        signalled.append(True)  # SIGINT arrives during the first wait

    waiter = lock(store, clock, "b")
    waiter.sleep = sleep
    assert waiter.acquire(wait=300, stopped=lambda: bool(signalled)) is None
    assert len(signalled) == 1 and store.items == before


def test_the_lease_lasts_30_s_unless_the_environment_says_otherwise(monkeypatch):
    store, clock = Leases(), Clock()
    monkeypatch.delenv("DEPLOYER_LEASE_SECONDS", raising=False)
    assert lock(store, clock).duration == 30
    monkeypatch.setenv("DEPLOYER_LEASE_SECONDS", " 8 ")
    lk = lock(store, clock)
    lk.acquire()
    assert lk.duration == 8
    assert store.items["deployer-hello"]["spec"]["leaseDurationSeconds"] == 8
    assert Lock(store, "hello", "b", "c", duration=12, clock=clock).duration == 12


@pytest.mark.parametrize("value", ["0", "-5", "8s", "2.5", "eight"])
def test_a_bad_lease_length_from_the_environment_is_invalid_input(monkeypatch, value):
    from deployer.errors import InvalidInput
    from deployer.exitcodes import ExitCode

    monkeypatch.setenv("DEPLOYER_LEASE_SECONDS", value)
    with pytest.raises(InvalidInput) as refused:
        lock(Leases(), Clock())
    assert refused.value.exit_code == ExitCode.INVALID
    assert refused.value.id == "invalid-lease-seconds"
    assert f"DEPLOYER_LEASE_SECONDS={value!r} is invalid" in refused.value.message


def test_a_lock_forced_away_moments_ago_is_noticed_before_the_next_journal_write():
    store, clock = Leases(), Clock()
    first = lock(store, clock, "a")
    first.acquire()
    first.ensure_held()  # a safe point: the lease is fresh, nothing is read
    lock(store, clock, "b").acquire(force=True)  # the on-call engineer, a second later
    first.ensure_held()  # its own renewal has not run yet, so a safe point cannot know
    with pytest.raises(LockHeld, match="stopped before writing: the lock is now held by b"):
        first.confirm_held()
    with pytest.raises(LockHeld):
        first.ensure_held()  # and from then on every safe point stops it too


def test_confirming_a_lock_still_held_reads_it_and_passes():
    store, clock = Leases(), Clock()
    held = lock(store, clock, "a")
    held.acquire()
    held.confirm_held()
    assert store.items["deployer-hello"]["spec"]["holderIdentity"] == "a"


def test_the_read_only_check_decides_as_acquire_would_and_writes_nothing():
    store, clock = Leases(), Clock()
    checker = lock(store, clock, "b")
    assert checker.check_free() is None  # no Lease at all
    lock(store, clock, "a").acquire()
    before = copy.deepcopy(store.items)
    with pytest.raises(LockHeld, match="locked by a"):
        checker.check_free()
    assert checker.check_free(force=True) == "the real run would take over the lock from a " \
                                             "(forced)"
    clock.now += 31
    assert checker.check_free() == "the real run would take over the lock from a (expired)"
    assert store.items == before


def test_a_renewal_is_one_write_and_reads_only_when_someone_else_wrote():
    store, clock = Leases(), Clock()
    first = lock(store, clock, "a")
    first.acquire()
    reads = store.reads
    clock.now += 10
    first.renew()
    assert store.reads == reads, "no read: the write is conditional on its resourceVersion"
    assert store.items["deployer-hello"]["spec"]["renewTime"] == micro(clock.now)
    # someone else writes the Lease (an annotation, say) without taking it
    other = copy.deepcopy(store.items["deployer-hello"])
    other["metadata"]["annotations"] = {"note": "x"}
    store._store(other)
    clock.now += 10
    first.renew()
    assert store.reads == reads + 1 and first._lost is None
    assert store.items["deployer-hello"]["spec"]["renewTime"] == micro(clock.now)
    assert store.items["deployer-hello"]["metadata"]["annotations"] == {"note": "x"}


@pytest.mark.parametrize("what", ["taken over", "deleted"])
def test_a_renewal_that_finds_the_lease_taken_or_gone_loses_the_lock(what):
    store, clock = Leases(), Clock()
    first = lock(store, clock, "a")
    first.acquire()
    if what == "deleted":
        del store.items["deployer-hello"]
    else:
        clock.now += 5
        lock(store, clock, "b").acquire(force=True)
    first.renew()
    assert first._lost == ("the lock is now held by nobody" if what == "deleted" else
                           "the lock is now held by b")
