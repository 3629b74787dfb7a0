"""A deploy reads the app before it takes the lock (so that a refusal writes nothing), and
reads it again under the lock only when another run may have changed it in between: when
the Lease changed meanwhile (a run took, renewed or gave back the lock) or was taken over."""

from __future__ import annotations

from typing import Any

import pytest

from deployer import cli
from deployer.lock import Lock, lease_name
from tests.unit.fakes import FakeGateway


@pytest.fixture
def reads(cli_cluster, monkeypatch) -> list[str]:
    """The app's state as each read of it found it: the image it runs."""
    seen: list[str] = []
    original = cli.read_app_or_stand_in

    def counted(gw: FakeGateway, app: str, *args: Any) -> Any:
        state = original(gw, app, *args)
        seen.append(state.image.tag or "")
        return state

    monkeypatch.setattr(cli, "read_app_or_stand_in", counted)
    return seen


class Started(Exception):
    """The engine was handed the plan: what was read before it is all this test looks at."""


@pytest.fixture(autouse=True)
def no_run(monkeypatch) -> None:
    from deployer.engine import Engine

    def started(self: Engine, plan: Any, *args: Any, **kw: Any) -> None:
        raise Started(plan.strategy)

    monkeypatch.setattr(Engine, "run", started)


def deploy() -> None:
    with pytest.raises(Started):
        cli.run(["rolling", "--app", "hello", "--image", "v2"])


def test_with_the_lease_as_it_was_the_reads_before_the_lock_stand(cli_cluster, reads):
    deploy()
    assert reads == ["v1"]


def test_an_earlier_released_lease_that_did_not_change_is_read_once_too(cli_cluster, reads):
    Lock(cli_cluster, "hello", "earlier:ci", "deployer rolling").acquire()
    cli_cluster.leases[lease_name("hello")]["spec"]["holderIdentity"] = ""  # given back
    deploy()
    assert reads == ["v1"]


def test_a_run_that_took_and_gave_back_the_lock_meanwhile_makes_it_read_again(
        cli_cluster, reads, monkeypatch):
    """Between our reads and our lock another run deployed v7 and gave the lock back: the
    run goes on from what is there now, not from what it read before."""
    other = Lock(cli_cluster, "hello", "other:ci", "deployer rolling --image v7")
    original = Lock.acquire

    def another_run_first(self: Lock, **options: Any) -> str | None:
        if self is not other:
            other.acquire()
            dep = cli_cluster.deployments["hello"]
            dep["spec"]["template"]["spec"]["containers"][0]["image"] = "hello:v7"
            other.release()
        return original(self, **options)

    monkeypatch.setattr(Lock, "acquire", another_run_first)
    deploy()
    assert reads == ["v1", "v7"]


def test_a_lock_taken_over_from_an_expired_holder_makes_it_read_again(cli_cluster, reads):
    Lock(cli_cluster, "hello", "dead:ci", "deployer rolling", duration=1).acquire()
    lease = cli_cluster.leases[lease_name("hello")]
    lease["spec"]["renewTime"] = "2020-01-01T00:00:00.000000Z"  # its holder died long ago
    deploy()
    assert reads == ["v1", "v1"]


def test_a_dry_run_reads_once_and_takes_no_lock(cli_cluster, reads):
    cli.run(["rolling", "--app", "hello", "--image", "v2", "--dry-run"])
    assert reads == ["v1"]
    assert cli_cluster.leases == {}
