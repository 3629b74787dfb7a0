"""The run journal lives in a ConfigMap of deployer's own, not on the app's Deployment."""

from __future__ import annotations

import json

import pytest

from deployer.model import AwaitRollout, UndoRollout, step_to_json
from tests.e2e.app_checks import journal, versions_by_pod
from tests.e2e.deployer_cli import deployer
from tests.e2e.lab import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def _generation(kube, namespace: str) -> int:
    return int(kube.apps.read_namespaced_deployment("hello", namespace).metadata.generation)


def test_a_release_bumps_the_generation_once_and_leaves_replicasets_alone(namespace,
                                                                          deploy_hello, kube):
    deploy_hello(namespace)
    before = _generation(kube, namespace)

    result = deployer(namespace, "rolling", "--app", "hello", "--image", "v2")

    assert result.code == 0, result
    assert _generation(kube, namespace) == before + 1, "exactly one bump: the image change"
    dep = kube.apps.read_namespaced_deployment("hello", namespace)
    assert not [k for k in dep.metadata.annotations or {} if k.startswith("deployer.dev/")]
    for rs in kube.apps.list_namespaced_replica_set(namespace).items:
        assert not [k for k in rs.metadata.annotations or {} if k.startswith("deployer.dev/")]
    data = journal(kube, namespace)
    assert data["schemaVersion"] == "1" and "run" not in data
    [release] = json.loads(data["history"])
    assert (release["strategy"], release["verdict"], release["to_image"]) == (
        "rolling", "promoted", "hello:v2")


def test_history_recorded_on_the_deployment_by_an_earlier_version_is_kept_and_undone(
        namespace, deploy_hello, kube):
    """An app released while the journal was kept in the Deployment's annotations."""
    deploy_hello(namespace)
    kube.apps.patch_namespaced_deployment("hello", namespace, {"spec": {"template": {"spec": {
        "containers": [{"name": "hello", "image": "hello:v2"}]}}}})
    wait_for(lambda: set(versions_by_pod(kube, namespace).values()) == {"2.0.0"}, 90, 1,
             "v2 on every pod")
    legacy = {"strategy": "rolling", "app": "hello", "from_image": "hello:v1",
              "to_image": "hello:v2", "from_version": "1.0.0", "expected_version": "2.0.0",
              "from_revision": 1, "who": "ci", "id": "0ld0ld00", "phase": "done",
              "verdict": "promoted", "verified_version": "2.0.0",
              "started": "2026-11-30T10:00:00Z", "finished": "2026-11-30T10:00:09Z",
              "undo": [step_to_json(UndoRollout("hello", 1, "deployer rolled back hello:v2")),
                       step_to_json(AwaitRollout("hello", "1.0.0"))]}
    kube.apps.patch_namespaced_deployment("hello", namespace, {"metadata": {"annotations": {
        "deployer.dev/history": json.dumps([legacy])}}})

    shown = deployer(namespace, "-o", "json", "history", "--app", "hello")
    assert shown.code == 0, shown
    assert [r["id"] for r in shown.report["releases"]] == ["0ld0ld00"]

    result = deployer(namespace, "-o", "json", "rollback", "--app", "hello")

    assert result.code == 0, result
    assert result.report["verifiedVersion"] == "1.0.0"
    assert set(versions_by_pod(kube, namespace).values()) == {"1.0.0"}
    releases = json.loads(journal(kube, namespace)["history"])
    assert [(r["id"], r["verdict"]) for r in releases][0] == ("0ld0ld00", "promoted")
    assert releases[-1]["strategy"] == "rollback" and releases[-1]["verdict"] == "rolled-back"
    after = deployer(namespace, "-o", "json", "history", "--app", "hello")
    assert [r["id"] for r in after.report["releases"]][0] == "0ld0ld00"
