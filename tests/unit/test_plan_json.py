"""Plans are stored in the run journal and read back by another process, maybe another
deployer version: what cannot be run is refused with a clear error, never a KeyError."""

import pytest

from deployer.errors import UnsafeState
from deployer.model import (
    PLAN_SCHEMA_VERSION,
    AppRef,
    AwaitRollout,
    Gate,
    Plan,
    UndoRollout,
    VerifyTraffic,
)

APP = AppRef("shop", "web")
PLAN = Plan("canary", APP,
            (VerifyTraffic("web", "web-canary", "2.0.0", "web", "1.0.0", 0.25, 30.0, (0, 10), 25),
             Gate("before promotion")),
            (UndoRollout("web", 3, "back"), AwaitRollout("web", "1.0.0")), summary="s",
            notes=("n",))


def test_a_plan_survives_the_round_trip_with_its_schema_version():
    stored = PLAN.to_json()
    assert stored["schemaVersion"] == PLAN_SCHEMA_VERSION
    assert Plan.from_json(APP, stored) == PLAN


def test_a_plan_from_before_schema_versions_is_read_as_version_1():
    stored = PLAN.to_json()
    del stored["schemaVersion"]
    assert Plan.from_json(APP, stored) == PLAN


def test_an_unknown_step_kind_names_the_kind_and_the_known_ones():
    stored = PLAN.to_json()
    stored["steps"][0] = {"type": "RunAnalysisTemplate", "name": "x"}
    with pytest.raises(UnsafeState, match="unknown kind 'RunAnalysisTemplate'") as err:
        Plan.from_json(APP, stored)
    assert "VerifyTraffic" in err.value.message and err.value.id == "unknown-step"


def test_a_newer_schema_is_refused():
    stored = {**PLAN.to_json(), "schemaVersion": PLAN_SCHEMA_VERSION + 1}
    with pytest.raises(UnsafeState, match="schema version 2") as err:
        Plan.from_json(APP, stored)
    assert err.value.id == "unknown-plan-schema"


def test_a_step_with_fields_of_another_version_is_refused_clearly():
    stored = PLAN.to_json()
    stored["rollback"][0]["extra"] = 1
    with pytest.raises(UnsafeState, match="cannot be read") as err:
        Plan.from_json(APP, stored)
    assert err.value.id == "unreadable-plan"
