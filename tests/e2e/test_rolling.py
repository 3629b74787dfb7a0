"""rolling on the lab cluster: Given hello v1 is stable, When deployer rolls, Then ..."""

from __future__ import annotations

import re

import pytest

from tests.e2e.app_checks import deployment_image, versions_by_pod
from tests.e2e.deployer_cli import deployer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_good_release_is_promoted_and_every_pod_answers_the_new_version(namespace, deploy_hello,
                                                                         kube):
    deploy_hello(namespace)

    result = deployer(namespace, "-o", "json", "rolling", "--app", "hello", "--image", "v2",
                      "--reason", "ticket 42")

    assert result.code == 0, result
    report = result.report
    assert report["verdict"] == "promoted"
    assert report["toImage"] == "hello:v2" and report["fromVersion"] == "1.0.0"
    assert report["verifiedVersion"] == "2.0.0"
    assert {c["check"]: c["phase"] for c in report["checks"]}["http-version"] == "Successful"
    versions = versions_by_pod(kube, namespace)
    assert len(versions) == 3 and set(versions.values()) == {"2.0.0"}, versions
    dep = kube.apps.read_namespaced_deployment("hello", namespace)
    assert "ticket 42" in dep.metadata.annotations["kubernetes.io/change-cause"]


@pytest.mark.parametrize(
    ("image", "reason", "fast"),
    [
        ("v9", ("ErrImagePull", "ImagePullBackOff"), True),  # tag never imported
        ("v4", ("CrashLoopBackOff",), True),  # exits 3 at start
        ("v3", ("NotReady",), False),  # readiness never passes
        ("v5", (), False),  # Ready, but answers 1.0.0
    ],
)
def test_bad_release_is_rejected_rolled_back_and_v1_keeps_serving(
        namespace, deploy_hello, kube, image, reason, fast):
    deploy_hello(namespace)

    result = deployer(namespace, "-o", "json", "rolling", "--app", "hello", "--image", image,
                      "--progress-deadline", "30s")

    assert result.code == 1, result
    report = result.report
    assert report["verdict"] == "rejected"
    assert report["verifiedVersion"] == "1.0.0", "the rollback itself must be verified"
    assert deployment_image(kube, namespace) == "hello:v1"
    versions = versions_by_pod(kube, namespace)
    assert len(versions) == 3 and set(versions.values()) == {"1.0.0"}, versions
    if reason:
        assert any(p["reason"] in reason for p in report["failedPods"]), report["failedPods"]
    if fast:
        # kubectl rollout status would wait the whole progress deadline; deployer decides
        # from the pod's state well before it.
        rejected_at = next(s for s in report["steps"] if s["result"] == "failed")["seconds"]
        assert rejected_at < 25, report["steps"]
    if image == "v4":  # the crash is reported with its exit code and last log lines
        crashed = [p for p in report["failedPods"] if p["reason"] == "CrashLoopBackOff"]
        assert crashed and crashed[0]["exitCode"] == 3, report["failedPods"]
        assert any("config missing" in line for line in crashed[0]["logs"]), crashed[0]
    if image == "v5":  # only the version check can catch it: the rollout itself succeeded
        checks = {c["check"]: c for c in report["checks"]}
        assert checks["rollout"]["phase"] == "Successful", checks
        assert "1.0.0" in report["message"] and "5.0.0" in report["message"], report["message"]


def test_missing_image_report_names_container_and_image(namespace, deploy_hello):
    deploy_hello(namespace)

    result = deployer(namespace, "rolling", "--app", "hello", "--image", "v9")

    assert result.code == 1, result
    assert "hello:v9" in result.stdout and "failed pod" in result.stdout
    assert re.search(r"^verdict:\s+rejected \(exit 1\)$", result.stdout, re.M), result


def test_version_can_be_read_straight_from_the_pod_ips(namespace, deploy_hello, kube):
    deploy_hello(namespace)

    result = deployer(namespace, "-o", "json", "rolling", "--app", "hello", "--image", "v2",
                      "--check-via", "pod-ip")

    assert result.code == 0, result
    answers = {c["check"]: c for c in result.report["checks"]}["http-version"]["details"]
    assert set(answers["answers"].values()) == {"2.0.0"} and len(answers["answers"]) == 3


def test_version_can_be_read_from_a_url_template(namespace, deploy_hello, kube):
    deploy_hello(namespace)

    result = deployer(namespace, "-o", "json", "rolling", "--app", "hello", "--image", "v2",
                      "--url", "http://{pod_ip}:8080/version")

    assert result.code == 0, result
    assert result.report["verifiedVersion"] == "2.0.0"


def test_a_url_that_answers_something_else_is_never_taken_for_success(namespace, deploy_hello,
                                                                      kube):
    deploy_hello(namespace)

    result = deployer(namespace, "-o", "json", "rolling", "--app", "hello", "--image", "v2",
                      "--url", "http://{pod_ip}:8080/healthz")

    # The same URL cannot verify the old version either: the release is rolled back, and
    # since that rollback cannot be verified, a human is asked to look (exit 3).
    assert result.code == 3, result
    assert result.report["message"].count("answers version 'ok'") == 2
    assert set(versions_by_pod(kube, namespace).values()) == {"1.0.0"}


def test_rerunning_a_completed_release_is_a_no_op(namespace, deploy_hello, kube):
    deploy_hello(namespace, image="hello:v2")
    before = kube.apps.read_namespaced_deployment("hello", namespace).metadata.resource_version

    result = deployer(namespace, "-o", "json", "rolling", "--app", "hello", "--image", "v2")

    assert result.code == 0, result
    assert result.report["verdict"] == "no-op"
    after = kube.apps.read_namespaced_deployment("hello", namespace).metadata.resource_version
    assert before == after


def test_dry_run_prints_the_plan_and_changes_nothing(shared_hello, kube):
    namespace = shared_hello  # hello v1, shared by tests that only read
    before = kube.apps.read_namespaced_deployment("hello", namespace).metadata.resource_version

    result = deployer(namespace, "rolling", "--app", "hello", "--image", "v2", "--dry-run")

    assert result.code == 0, result
    assert "1. set hello/hello image to hello:v2" in result.stderr
    assert "on failure:" in result.stderr
    after = kube.apps.read_namespaced_deployment("hello", namespace).metadata.resource_version
    assert before == after
