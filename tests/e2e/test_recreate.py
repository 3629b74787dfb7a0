"""recreate on the lab cluster: stop old, start new, measure downtime, restore the strategy."""

from __future__ import annotations

import pytest

from tests.e2e.app_checks import deployment_image, versions_by_pod
from tests.e2e.deployer_cli import deployer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_recreate_to_v2_reports_downtime_and_keeps_the_rolling_strategy(namespace, deploy_hello,
                                                                        kube):
    deploy_hello(namespace)

    result = deployer(namespace, "-o", "json", "recreate", "--app", "hello", "--image", "v2")

    assert result.code == 0, result
    assert result.report["verdict"] == "promoted"
    assert result.report["downtimeSeconds"] is not None and result.report["downtimeSeconds"] > 0
    assert set(versions_by_pod(kube, namespace).values()) == {"2.0.0"}
    dep = kube.apps.read_namespaced_deployment("hello", namespace)
    assert dep.spec.strategy.type == "RollingUpdate", "the user's strategy is restored"


def test_recreate_to_a_missing_image_rolls_back_to_v1(namespace, deploy_hello, kube):
    deploy_hello(namespace)

    result = deployer(namespace, "-o", "json", "recreate", "--app", "hello", "--image", "v9")

    assert result.code == 1, result
    assert deployment_image(kube, namespace) == "hello:v1"
    versions = versions_by_pod(kube, namespace)
    assert len(versions) == 3 and set(versions.values()) == {"1.0.0"}, versions
    dep = kube.apps.read_namespaced_deployment("hello", namespace)
    assert dep.spec.strategy.type == "RollingUpdate"
