"""The run journal in the app's ConfigMap: the run in progress, the bounded history,
releases recorded by earlier versions on the Deployment, and the schema version."""

from __future__ import annotations

import json
import socket

import pytest

from deployer import record
from deployer.errors import LockHeld, UnsafeState
from deployer.record import (
    HISTORY_LIMIT,
    LEGACY_HISTORY_ANNOTATION,
    LEGACY_RUN_ANNOTATION,
    Journal,
    RunRecord,
    journal_name,
    load,
    read_history,
    read_run,
)
from tests.unit.fakes import FakeGateway, deployment

NAME = journal_name("hello")
PLAN = {"schemaVersion": 1, "strategy": "rolling", "summary": "", "notes": [],
        "steps": [{"type": "UpdateDeployment", "deployment": "hello"}],
        "rollback": [{"type": "UndoRollout", "deployment": "hello", "to_revision": 3,
                      "change_cause": "undo"}]}


def run(**kw) -> RunRecord:
    return RunRecord("rolling", "hello", "hello:v1", "hello:v2", who="ana", **kw)


def configmap_writes(gw: FakeGateway) -> list[tuple[str, dict]]:
    return [(verb, body) for verb, kind, body in gw.writes if kind == "configmap"]


def data(gw: FakeGateway) -> dict[str, str]:
    return gw.config_maps[NAME]["data"]


# ------------------------------------------------------------------ the run in progress


def test_the_first_update_creates_the_apps_configmap_with_the_run():
    gw = FakeGateway(deployment())
    journal = Journal(gw, "hello", run())
    journal.update(step="set image", position=0)
    ((verb, cm),) = configmap_writes(gw)
    assert verb == "create"
    assert cm["metadata"]["name"] == "deployer-hello"
    assert cm["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "deployer",
                                        "app": "hello"}
    assert data(gw)["schemaVersion"] == "1"
    assert json.loads(data(gw)["history"]) == []
    stored = json.loads(data(gw)["run"])
    assert (stored["step"], stored["position"], stored["who"]) == ("set image", 0, "ana")
    assert "verdict" not in stored  # None fields are left out
    assert gw.deployment_writes() == []  # the Deployment itself is never touched


def test_later_updates_replace_it_conditionally_and_a_repeat_writes_nothing():
    gw = FakeGateway(deployment())
    journal = Journal(gw, "hello", run())
    journal.update(step="one")
    journal.update(step="two", phase="running")
    journal.update(step="two")
    assert [verb for verb, _ in configmap_writes(gw)] == ["create", "replace"]
    assert gw.config_maps[NAME]["metadata"]["resourceVersion"] == "2"
    assert read_run(gw, "hello").step == "two"


def test_every_write_first_passes_the_lock_check():
    gw = FakeGateway(deployment())
    journal = Journal(gw, "hello", run())
    calls = []
    journal.before_write = lambda: calls.append("checked")
    journal.update(step="one")
    journal.finish(verdict="promoted")
    assert calls == ["checked", "checked"]

    def lost() -> None:
        raise LockHeld("stopped before writing: the lock is now held by bob", id="lock-lost")

    journal = Journal(gw, "hello", run())
    journal.before_write = lost
    with pytest.raises(LockHeld):
        journal.update(step="never written")
    assert len(configmap_writes(gw)) == 2


# ------------------------------------------------------------------ history


def test_finish_moves_the_run_into_the_history():
    gw = FakeGateway(deployment())
    journal = Journal(gw, "hello", run(plan=PLAN))
    journal.update(step="verify", phase="running")
    done = journal.finish(phase="done", verdict="rejected", message="wrong version")
    assert done.finished is not None and done.verdict == "rejected"
    assert "run" not in data(gw)
    (last,) = read_history(gw, "hello")
    assert (last.id, last.verdict, last.message, last.finished) == (
        journal.record.id, "rejected", "wrong version", done.finished)
    assert last.plan is None and last.undo is None  # a rejected release has nothing to undo
    assert read_run(gw, "hello") is None


def test_a_promoted_release_keeps_the_steps_that_undo_it():
    gw = FakeGateway(deployment())
    Journal(gw, "hello", run(plan=PLAN)).finish(verdict="promoted")
    (last,) = read_history(gw, "hello")
    assert last.undo == PLAN["rollback"]
    assert last.plan is None


def test_the_history_keeps_the_newest_releases_only():
    gw = FakeGateway(deployment())
    ids = []
    for i in range(HISTORY_LIMIT + 5):
        journal = Journal(gw, "hello", run(id=f"run-{i}"))
        journal.finish(verdict="promoted")
        ids.append(journal.record.id)
    history = read_history(gw, "hello")
    assert HISTORY_LIMIT == 20
    assert [r.id for r in history] == ids[-HISTORY_LIMIT:]


def test_a_run_finished_again_replaces_its_entry():
    gw = FakeGateway(deployment())
    journal = Journal(gw, "hello", run())
    journal.finish(verdict="rejected", phase="done")
    journal.finish(verdict="unsafe", phase="failed")
    (last,) = read_history(gw, "hello")
    assert (last.verdict, last.phase) == ("unsafe", "failed")


# ------------------------------------------------------------------ legacy, schema


def legacy_deployment() -> dict:
    dep = deployment()
    dep["metadata"]["annotations"].update({
        LEGACY_RUN_ANNOTATION: json.dumps(run(id="old-run", step="verify").to_json()),
        LEGACY_HISTORY_ANNOTATION: json.dumps([run(id="r1", verdict="promoted").to_json(),
                                               {**run(id="r2").to_json(),
                                                "someFutureField": True}]),
    })
    return dep


def test_without_a_configmap_the_deployments_legacy_annotations_are_read():
    gw = FakeGateway(legacy_deployment())
    assert read_run(gw, "hello").id == "old-run"
    assert [r.id for r in read_history(gw, "hello")] == ["r1", "r2"]
    assert load(gw, "hello").config_map is None


def test_the_first_journal_write_carries_the_legacy_history_over():
    gw = FakeGateway(legacy_deployment())
    Journal(gw, "hello", run(id="new-run")).finish(verdict="promoted")
    assert [r.id for r in read_history(gw, "hello")] == ["r1", "r2", "new-run"]
    assert gw.deployment_writes() == []  # the annotations are left where they are
    gw.deployments["hello"]["metadata"]["annotations"][LEGACY_HISTORY_ANNOTATION] = "[]"
    assert len(read_history(gw, "hello")) == 3  # the ConfigMap wins from now on


def test_unreadable_entries_read_as_none():
    dep = deployment()
    dep["metadata"]["annotations"].update({LEGACY_RUN_ANNOTATION: "{not json",
                                           LEGACY_HISTORY_ANNOTATION: "[{\"strategy\": 1}]"})
    gw = FakeGateway(dep)
    assert read_run(gw, "hello") is None
    assert read_history(gw, "hello") == []  # an entry without the fields every entry has
    assert read_run(FakeGateway(), "hello") is None  # no app at all: nothing recorded


def test_entries_of_the_wrong_shape_read_as_none_too():
    gw = FakeGateway(deployment())
    gw.config_maps[NAME] = {"metadata": {"name": NAME, "resourceVersion": "5"},
                            "data": {"schemaVersion": "1", "run": "[]",
                                     "history": "[1, 2]"}}  # e.g. after a hand edit
    assert read_run(gw, "hello") is None
    assert read_history(gw, "hello") == []


@pytest.mark.parametrize("version", ["2", "v1", ""])
def test_a_configmap_in_a_schema_this_deployer_cannot_read_is_refused(version):
    gw = FakeGateway(deployment())
    gw.config_maps[NAME] = {"metadata": {"name": NAME, "resourceVersion": "5"},
                            "data": {"schemaVersion": version, "history": "[]",
                                     "run": json.dumps(run().to_json())}}
    with pytest.raises(UnsafeState, match=f"configmap deployer-hello was written in journal "
                                          f"schema '{version}'; this deployer reads up to 1") as e:
        read_history(gw, "hello")
    assert e.value.id == "unknown-schema"
    with pytest.raises(UnsafeState):
        Journal(gw, "hello", run()).update(step="x")
    assert gw.writes == []  # never overwritten by an older deployer


def test_a_configmap_without_a_schema_version_is_read_as_the_current_one():
    gw = FakeGateway(deployment())
    gw.config_maps[NAME] = {"metadata": {"name": NAME, "resourceVersion": "5"},
                            "data": {"history": json.dumps([run(id="r1").to_json()])}}
    assert [r.id for r in read_history(gw, "hello")] == ["r1"]


# ------------------------------------------------------------------ conflicts


class Busy(FakeGateway):
    """Another process (a `deployer status --record`, a second run's abort) writes the
    ConfigMap between this one's read and its write, ``interfering`` times."""

    def __init__(self, interfering: int):
        super().__init__(deployment())
        self.interfering = interfering

    def get_config_map(self, name):
        current = super().get_config_map(name)
        if current is not None and self.interfering:
            self.interfering -= 1
            stored = self.config_maps[name]
            history = json.loads(stored["data"]["history"])
            history.append(run(id=f"other-{self.interfering}").to_json())
            stored["data"]["history"] = json.dumps(history)
            stored["metadata"]["resourceVersion"] = str(
                int(stored["metadata"]["resourceVersion"]) + 1)
        return current


def test_a_conflicting_write_is_computed_again_from_what_the_other_writer_left():
    gw = Busy(interfering=0)
    journal = Journal(gw, "hello", run(id="mine"))
    journal.update(step="verify")
    gw.interfering = 2
    journal.finish(verdict="promoted")
    assert [r.id for r in read_history(gw, "hello")] == ["other-1", "other-0", "mine"]
    assert [verb for verb, _ in configmap_writes(gw)] == ["create", "replace"]


def test_a_configmap_that_keeps_changing_is_unsafe():
    gw = Busy(interfering=0)
    journal = Journal(gw, "hello", run())
    journal.update(step="verify")
    gw.interfering = 100
    with pytest.raises(UnsafeState, match="configmap deployer-hello kept changing") as exc:
        journal.update(step="next")
    assert exc.value.id == "conflict"


# ------------------------------------------------------------------ the record itself


def test_who_ran_it_is_the_ci_identity_when_there_is_one(monkeypatch):
    for var in ("DEPLOYER_ACTOR", "GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILD_USER_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GITLAB_USER_LOGIN", "gitlab-ana")
    assert record.who_am_i() == "gitlab-ana"
    monkeypatch.setenv("DEPLOYER_ACTOR", "release-bot")
    assert record.who_am_i() == "release-bot"
    assert RunRecord("rolling", "hello").who == "release-bot"


def test_who_ran_it_survives_a_container_without_a_passwd_entry(monkeypatch):
    for var in ("DEPLOYER_ACTOR", "GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILD_USER_ID"):
        monkeypatch.delenv(var, raising=False)

    def no_user() -> str:
        raise KeyError("getpwuid(): uid not found: 1000")

    monkeypatch.setattr(record.getpass, "getuser", no_user)
    assert record.who_am_i() == f"unknown@{socket.gethostname()}"


def test_records_read_back_ignore_fields_of_newer_versions():
    r = RunRecord.from_json({**run(id="x").to_json(), "canaryWeights": [5, 25]})
    assert (r.id, r.to_image, r.who) == ("x", "hello:v2", "ana")
    assert "verdict" not in r.to_json()
    assert r.with_(verdict="promoted").verdict == "promoted" and r.verdict is None
