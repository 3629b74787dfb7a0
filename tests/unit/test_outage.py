"""The API-outage budget of a waiting run: 90 s, or $DEPLOYER_API_OUTAGE_BUDGET."""

import pytest

from deployer.errors import ClusterUnreachable, InvalidInput
from deployer.exitcodes import ExitCode
from deployer.outage import Outage, budget_seconds


class Runner:
    """What Outage uses of the runner: its clock, its reporter and its pause."""

    def __init__(self):
        self.now = 0.0
        self.waits: list[str] = []
        self.reporter = self

    def clock(self):
        return self.now

    def waiting(self, text):
        self.waits.append(text)

    def pause(self, seconds):
        self.now += seconds


def test_the_budget_is_90_s_unless_the_environment_says_otherwise(monkeypatch):
    monkeypatch.delenv("DEPLOYER_API_OUTAGE_BUDGET", raising=False)
    assert budget_seconds() == 90.0
    assert Outage(Runner()).budget == 90.0
    monkeypatch.setenv("DEPLOYER_API_OUTAGE_BUDGET", "20")
    assert Outage(Runner()).budget == 20.0
    monkeypatch.setenv("DEPLOYER_API_OUTAGE_BUDGET", "7.5")
    assert budget_seconds() == 7.5
    assert Outage(Runner(), budget=3).budget == 3


def test_a_continuous_outage_past_the_budget_gives_up_with_the_error(monkeypatch):
    monkeypatch.setenv("DEPLOYER_API_OUTAGE_BUDGET", "20")
    runner = Runner()
    outage = Outage(runner)
    error = ClusterUnreachable("no answer")
    with pytest.raises(ClusterUnreachable):
        for _ in range(100):
            outage.failed(error)
    assert 20 < runner.now <= 24  # one pause (2 s) past the budget at most
    assert "waiting up to 20s" in runner.waits[-1]


def test_an_answer_in_between_starts_the_budget_again():
    runner = Runner()
    outage = Outage(runner, budget=5)
    error = ClusterUnreachable("no answer")
    for _ in range(20):  # 40 s of failures, never more than 4 s in a row
        outage.failed(error)
        outage.failed(error)
        outage.clear()


@pytest.mark.parametrize("value", ["0", "-1", "soon", "90s", "nan", "inf"])
def test_a_bad_budget_from_the_environment_is_invalid_input(monkeypatch, value):
    monkeypatch.setenv("DEPLOYER_API_OUTAGE_BUDGET", value)
    with pytest.raises(InvalidInput) as refused:
        budget_seconds()
    assert refused.value.exit_code == ExitCode.INVALID
    assert refused.value.id == "invalid-outage-budget"
    assert f"DEPLOYER_API_OUTAGE_BUDGET={value!r} is invalid" in refused.value.message
