"""The rollout-complete rule is exactly kubectl's; each branch is pinned here."""

from deployer.model import Phase
from deployer.rollout import rollout_status
from tests.unit.fakes import deployment


def test_complete_rollout_is_successful():
    m = rollout_status(deployment())
    assert m.phase is Phase.SUCCESSFUL
    assert "successfully rolled out" in m.message


def test_unobserved_generation_is_not_success_even_if_counts_look_done():
    # Right after a patch the status still describes the previous, complete rollout.
    m = rollout_status(deployment(generation=2, observed=1))
    assert m.phase is Phase.RUNNING
    assert "observe" in m.message


def test_waits_for_updated_replicas():
    m = rollout_status(deployment(updated=1))
    assert m.phase is Phase.RUNNING
    assert "1 of 3 new replicas" in m.message


def test_waits_for_old_replicas_to_terminate():
    m = rollout_status(deployment(current=4))
    assert m.phase is Phase.RUNNING
    assert "1 old replicas are pending termination" in m.message


def test_waits_for_available_replicas():
    m = rollout_status(deployment(available=2))
    assert m.phase is Phase.RUNNING
    assert "2 of 3 updated replicas are available" in m.message


def _deadline(updated_at: str):
    return [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
             "message": "ReplicaSet has timed out progressing.", "lastUpdateTime": updated_at}]


def test_progress_deadline_exceeded_fails():
    m = rollout_status(deployment(updated=1, conditions=_deadline("2030-01-01T00:00:10Z")),
                       since=1893456000.0)  # 2030-01-01T00:00:00Z
    assert m.phase is Phase.FAILED
    assert "progress deadline" in m.message


def test_old_progress_deadline_is_not_blamed_on_this_rollout():
    m = rollout_status(deployment(updated=1, conditions=_deadline("2020-01-01T00:00:00Z")),
                       since=1893456000.0)
    assert m.phase is Phase.RUNNING
