"""A third-party strategy for real: the example plugin tests/plugins/shadow (installed by
`make install`) is listed and runs on the lab through `deployer deploy --strategy`."""

from __future__ import annotations

import pytest

from tests.e2e.app_checks import deployment_image, versions_by_pod
from tests.e2e.deployer_cli import deployer
from tests.e2e.lab import CLIENT_ADDRESSES, version_via_service

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def names(kube, namespace: str) -> list[str]:
    return sorted(d.metadata.name for d in kube.apps.list_namespaced_deployment(namespace).items)


def test_the_shadow_plugin_verifies_an_image_beside_the_app_and_leaves_the_app_as_it_was(
        namespace, deploy_hello, kube):
    deploy_hello(namespace)
    listed = deployer(namespace, "-o", "json", "strategies").report["strategies"]
    shadow = next(s for s in listed if s["name"] == "shadow")
    assert (shadow["package"], shadow["problem"]) == ("deployer-shadow", None)

    good = deployer(namespace, "-o", "json", "deploy", "--strategy", "shadow", "--app",
                    "hello", "--image", "v2", "--set", "replicas=2")

    assert good.code == 0, good
    assert good.report["verifiedVersion"] == "2.0.0"  # both shadow pods answered it
    assert "removed; hello is as it was" in good.report["message"]
    assert names(kube, namespace) == ["hello"]
    assert deployment_image(kube, namespace) == "hello:v1"
    assert set(versions_by_pod(kube, namespace).values()) == {"1.0.0"}

    bad = deployer(namespace, "-o", "json", "deploy", "--strategy", "shadow", "--app",
                   "hello", "--image", "v3", "--progress-deadline", "20s")

    assert bad.code == 1, bad
    assert bad.report["verdict"] == "rejected" and bad.report["failedPods"]
    assert names(kube, namespace) == ["hello"]  # the rollback removed it
    assert {version_via_service(namespace, "hello", ip, kube=kube)
            for ip in CLIENT_ADDRESSES[:5]} == {"1.0.0"}
