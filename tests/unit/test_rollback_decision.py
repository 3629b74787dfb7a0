"""What `deployer rollback` returns to, decided from the app's state and recorded history."""

import pytest

from deployer import rollback
from deployer.errors import InvalidInput, NothingToRollBack
from deployer.model import AppRef, AppState, Revision
from deployer.record import RunRecord
from deployer.validation import parse_image
from tests.unit.fakes import deployment


def rev(number: int, image: str, hash_: str) -> Revision:
    return Revision(number, image, f"hello-{hash_}", None, None,
                    {"metadata": {"labels": {"app": "hello", "pod-template-hash": hash_}}})


def state(current: int, *revs: Revision) -> AppState:
    image = next(r.image for r in revs if r.number == current)
    return AppState(AppRef("t", "hello"), deployment(revision=current), "hello",
                    parse_image(image), 3, current, revs)


def release(**kw) -> RunRecord:
    base = {"strategy": "rolling", "app": "hello", "from_image": "hello:v1",
            "to_image": "hello:v2", "verdict": "promoted", "from_template_hash": "aaa"}
    return RunRecord(**{**base, **kw})


def test_undoes_the_last_release_by_its_recorded_template():
    s = state(2, rev(1, "hello:v1", "aaa"), rev(2, "hello:v2", "bbb"))
    decision = rollback.decide(s, None, [release()], None)
    assert decision.revision is not None and decision.revision.number == 1


def test_second_rollback_is_a_no_op():
    s = state(3, rev(2, "hello:v2", "bbb"), rev(3, "hello:v1", "aaa"))
    history = [release(), release(strategy="rollback", verdict="rolled-back",
                                  from_image="hello:v2", to_image="hello:v1")]
    decision = rollback.decide(s, None, history, None)
    assert decision.revision is None and "already" in decision.why


def test_rejected_release_left_nothing_to_undo():
    s = state(3, rev(2, "hello:v9", "ccc"), rev(3, "hello:v1", "aaa"))
    assert rollback.decide(s, None, [release(verdict="rejected")], None).revision is None


def test_interrupted_run_is_undone_first():
    s = state(2, rev(1, "hello:v1", "aaa"), rev(2, "hello:v2", "bbb"))
    decision = rollback.decide(s, release(verdict=None, phase="running"), [], None)
    assert decision.revision is not None and decision.revision.number == 1


def test_without_history_falls_back_to_the_previous_revision():
    s = state(5, rev(3, "hello:v1", "aaa"), rev(5, "hello:v2", "bbb"))
    assert rollback.decide(s, None, [], None).revision.number == 3


def test_no_earlier_revision_is_a_clear_error():
    with pytest.raises(NothingToRollBack, match="no earlier revision"):
        rollback.decide(state(1, rev(1, "hello:v1", "aaa")), None, [], None)


def test_unknown_revision_is_invalid_input_listing_the_known_ones():
    s = state(2, rev(1, "hello:v1", "aaa"), rev(2, "hello:v2", "bbb"))
    with pytest.raises(InvalidInput, match=r"has no such revision \(it has: 1, 2\)"):
        rollback.decide(s, None, [], 7)


def test_plan_verifies_the_version_the_old_tag_implies():
    s = state(2, rev(1, "hello:v1", "aaa"), rev(2, "hello:v2", "bbb"))
    plan = rollback.plan(s, s.revisions[0], "on-call")
    assert plan.steps[0].to_revision == 1
    assert plan.steps[1].expected_version == "1.0.0"
