"""restart on the lab: every pod replaced, verified like a release, recorded in history."""

from __future__ import annotations

import pytest

from tests.e2e.app_checks import deployment_image, versions_by_pod
from tests.e2e.deployer_cli import deployer
from tests.e2e.lab import live_pods

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_restart_replaces_every_pod_and_verifies_the_version_they_answer(namespace,
                                                                          deploy_hello, kube):
    deploy_hello(namespace)
    before = {p.metadata.name for p in live_pods(kube, namespace)}

    result = deployer(namespace, "-o", "json", "restart", "--app", "hello",
                      "--reason", "rotate the cache")

    assert result.code == 0, result
    assert result.report["verifiedVersion"] == "1.0.0"
    assert result.report["message"] == "every pod of hello was restarted and verified"
    after = versions_by_pod(kube, namespace)
    assert len(after) == 3 and not set(after) & before  # all new pods
    assert set(after.values()) == {"1.0.0"} and deployment_image(kube, namespace) == "hello:v1"
    history = deployer(namespace, "-o", "json", "history", "--app", "hello").report
    assert [(r["strategy"], r["verdict"], r["reason"]) for r in history["releases"]] == [
        ("restart", "promoted", "rotate the cache")]
