"""The on-call commands: rollback, status and history, on the lab cluster."""

from __future__ import annotations

import pytest

from tests.e2e.app_checks import deployment_image, resource_versions, versions_by_pod
from tests.e2e.deployer_cli import deployer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_rollback_after_a_good_release_restores_v1_and_a_second_is_a_no_op(namespace,
                                                                          deploy_hello, kube):
    deploy_hello(namespace)
    assert deployer(namespace, "rolling", "--app", "hello", "--image", "v2").code == 0

    first = deployer(namespace, "-o", "json", "rollback", "--app", "hello")

    assert first.code == 0, first
    assert first.report["verdict"] == "rolled-back"
    assert first.report["verifiedVersion"] == "1.0.0"
    assert set(versions_by_pod(kube, namespace).values()) == {"1.0.0"}
    before = resource_versions(kube, namespace)

    second = deployer(namespace, "-o", "json", "rollback", "--app", "hello")

    assert second.code == 0, second
    assert second.report["verdict"] == "no-op"
    assert "nothing to roll back" in second.report["message"]
    assert resource_versions(kube, namespace) == before


def test_rollback_to_a_named_revision(namespace, deploy_hello, kube):
    deploy_hello(namespace)  # revision 1: v1
    assert deployer(namespace, "rolling", "--app", "hello", "--image", "v2").code == 0  # rev 2
    assert deployer(namespace, "rolling", "--app", "hello", "--image", "v5",
                    "--expect-version", "1.0.0").code == 0  # rev 3 (answers 1.0.0)

    result = deployer(namespace, "-o", "json", "rollback", "--app", "hello",
                      "--to-revision", "2")

    assert result.code == 0, result
    assert deployment_image(kube, namespace) == "hello:v2"
    assert set(versions_by_pod(kube, namespace).values()) == {"2.0.0"}


def test_rollback_to_an_unknown_revision_is_refused_without_changes(shared_hello, kube):
    namespace = shared_hello  # hello v1, shared by tests that only read
    before = resource_versions(kube, namespace)

    result = deployer(namespace, "rollback", "--app", "hello", "--to-revision", "99")

    assert result.code == 2, result
    assert "no such revision" in result.stderr
    assert resource_versions(kube, namespace) == before


def test_rollback_with_no_previous_revision_is_a_clear_error(shared_hello, kube):
    namespace = shared_hello  # hello v1, shared by tests that only read
    before = resource_versions(kube, namespace)

    result = deployer(namespace, "rollback", "--app", "hello")

    assert result.code == 2, result
    assert "no earlier revision" in result.stderr
    assert resource_versions(kube, namespace) == before


def test_history_lists_each_release_with_strategy_verdict_and_reason(namespace, deploy_hello):
    deploy_hello(namespace)
    deployer(namespace, "rolling", "--app", "hello", "--image", "v2", "--reason", "feature x")
    deployer(namespace, "rolling", "--app", "hello", "--image", "v9", "--reason", "typo tag")

    result = deployer(namespace, "-o", "json", "history", "--app", "hello")

    assert result.code == 0, result
    releases = result.report["releases"]
    assert [(r["toImage"], r["verdict"], r["reason"]) for r in releases] == [
        ("hello:v2", "promoted", "feature x"), ("hello:v9", "rejected", "typo tag")]
    images = [r["image"] for r in result.report["revisions"]]
    assert "hello:v2" in images and "hello:v9" in images
    text = deployer(namespace, "history", "--app", "hello")
    assert "rejected" in text.stdout and "feature x" in text.stdout


def test_status_shows_images_versions_replicas_and_service(shared_hello):
    namespace = shared_hello  # hello v1, shared by tests that only read

    result = deployer(namespace, "-o", "json", "status", "--app", "hello")

    assert result.code == 0, result
    dep = result.report["deployments"][0]
    assert dep["image"] == "hello:v1"
    assert dep["versions"] == {"1.0.0": 3}
    assert dep["replicas"]["available"] == 3
    assert result.report["service"]["sessionAffinity"] == "ClientIP"
    assert result.report["runInProgress"] is None
