"""The API-outage budget of a waiting run: 90 s, or $DEPLOYER_API_OUTAGE_BUDGET."""

import time

import pytest

from deployer.engine.context import OUTAGE_BUDGET, RunSettings, outage_budget
from deployer.engine.outage import RETRY_PAUSE, Outage
from deployer.errors import ClusterUnreachable, InvalidInput
from deployer.exitcodes import ExitCode
from tests.unit.fakes import FakeGateway
from tests.unit.harness import Clock, make_engine


def outage(budget: float | None = None) -> tuple[Outage, Clock]:
    clock = Clock()
    engine = make_engine(FakeGateway(), clock)
    if budget is not None:
        engine.settings.outage_budget = budget
    return Outage(engine.ctx), clock


def test_the_budget_is_90_s_unless_the_environment_says_otherwise(monkeypatch):
    monkeypatch.delenv("DEPLOYER_API_OUTAGE_BUDGET", raising=False)
    assert outage_budget() == OUTAGE_BUDGET == 90.0
    assert RunSettings(deadline=time.monotonic()).outage_budget == 90.0
    monkeypatch.setenv("DEPLOYER_API_OUTAGE_BUDGET", "20")
    assert RunSettings(deadline=time.monotonic()).outage_budget == 20.0
    monkeypatch.setenv("DEPLOYER_API_OUTAGE_BUDGET", "7.5")
    assert outage_budget() == 7.5


def test_a_continuous_outage_past_the_budget_gives_up_with_the_error():
    watch, clock = outage(budget=20)
    error = ClusterUnreachable("no answer")
    with pytest.raises(ClusterUnreachable):
        for _ in range(100):
            watch.failed(error)
    assert 20 < clock() - 1000.0 <= 20 + RETRY_PAUSE  # one pause past the budget at most


def test_an_answer_in_between_starts_the_budget_again():
    watch, clock = outage(budget=5)
    error = ClusterUnreachable("no answer")
    for _ in range(20):  # 40 s of failures, never more than 4 s in a row
        watch.failed(error)
        watch.failed(error)
        watch.clear()
    assert clock() - 1000.0 >= 40


@pytest.mark.parametrize("value", ["0", "-1", "soon", "90s", "nan", "inf"])
def test_a_bad_budget_from_the_environment_is_invalid_input(monkeypatch, value):
    monkeypatch.setenv("DEPLOYER_API_OUTAGE_BUDGET", value)
    with pytest.raises(InvalidInput) as refused:
        outage_budget()
    assert refused.value.exit_code == ExitCode.INVALID
    assert refused.value.id == "invalid-outage-budget"
    assert f"DEPLOYER_API_OUTAGE_BUDGET={value!r} is invalid" in refused.value.message
