"""Images from a registry and the seeds' pod shapes, on the lab cluster.

The lab runs a registry (lab/registry.py): REGISTRY asks for credentials; FRONT, in front
of it, adds them and answers 429 Too Many Requests while armed. Given hello v1 is stable,
a busy registry does not reject a good image, a wrong pull secret is final and named, and
an init container that fails in the new pods is rejected fast and named.
"""

from __future__ import annotations

import base64
import http.client
import json
import sys
from pathlib import Path

import pytest

from tests.e2e.app_checks import deployment_image, versions_by_pod
from tests.e2e.deployer_cli import deployer
from tests.e2e.lab import wait_deployment_available, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lab"))
import registry  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def front(method: str, path: str) -> dict:
    conn = http.client.HTTPConnection(registry.FRONT, timeout=5)
    conn.request(method, path)
    return json.loads(conn.getresponse().read())


def patch_template(kube, namespace: str, template: dict) -> None:
    """Change the app's pod template as its owner would, and wait for that rollout."""
    kube.apps.patch_namespaced_deployment("hello", namespace, {"spec": {"template": template}})
    wait_for(lambda: (d := kube.apps.read_namespaced_deployment("hello", namespace)).status
             .observed_generation == d.metadata.generation, 30, 0.3, "the patch observed")
    wait_deployment_available(kube, namespace, "hello", 120)


# The only test that arms the front: it may run beside the others.
def test_a_registry_answering_429_does_not_reject_a_good_image(namespace, deploy_hello, kube):
    deploy_hello(namespace, f"{registry.FRONT}/private/hello:v1")
    # every new pod pulls its image: a node that has it would not ask the registry
    patch_template(kube, namespace, {"spec": {"containers": [
        {"name": "hello", "imagePullPolicy": "Always"}]}})
    before = front("GET", "/lab/stats")["answered429"]
    front("POST", "/lab/arm?seconds=20")  # every manifest request answers 429 for 20 s

    result = deployer(namespace, "-o", "json", "rolling", "--app", "hello", "--image", "v2")

    assert front("GET", "/lab/stats")["answered429"] > before, "the registry said 429"
    assert result.code == 0, result
    assert "429 Too Many Requests" in result.stderr and "may pass" in result.stderr
    assert result.report["verifiedVersion"] == "2.0.0"
    assert deployment_image(kube, namespace) == f"{registry.FRONT}/private/hello:v2"


def test_a_wrong_pull_secret_is_final_and_named(namespace, deploy_hello, kube):
    deploy_hello(namespace)
    wrong = base64.b64encode(f"{registry.USER}:not-the-password".encode()).decode()
    kube.core.create_namespaced_secret(namespace, {
        "metadata": {"name": "registry-creds"}, "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": json.dumps(
            {"auths": {registry.REGISTRY: {"auth": wrong}}})}})
    patch_template(kube, namespace, {"spec": {"imagePullSecrets": [
        {"name": "registry-creds"}]}})

    result = deployer(namespace, "-o", "json", "rolling", "--app", "hello", "--image",
                      f"{registry.REGISTRY}/private/hello:v2", "--progress-deadline", "120s")

    assert result.code == 1, result
    assert result.seconds < 60, "final at once, not at the progress deadline"
    failure = result.report["failedPods"][0]
    assert "401 Unauthorized" in failure["message"]
    assert f"imagePullSecrets registry-creds: check that it holds working credentials for " \
           f"{registry.REGISTRY}" in failure["message"]
    assert set(versions_by_pod(kube, namespace).values()) == {"1.0.0"}


def test_an_init_container_failing_in_the_new_pods_is_rejected_fast_and_named(
        namespace, deploy_hello, kube):
    deploy_hello(namespace)
    # A migration that fails for 2.0.0: the init container reads the pod's version label,
    # which deployer sets to the version it rolls out.
    patch_template(kube, namespace, {"metadata": {"labels": {"version": "1.0.0"}}, "spec": {
        "initContainers": [{
            "name": "migrate", "image": "hello:v1", "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/busybox", "sh", "-c",
                        'echo "migrating to $VERSION"; [ "$VERSION" != 2.0.0 ]'],
            "env": [{"name": "VERSION", "valueFrom": {"fieldRef": {
                "fieldPath": "metadata.labels['version']"}}}]}]}})

    result = deployer(namespace, "-o", "json", "rolling", "--app", "hello", "--image", "v2",
                      "--progress-deadline", "120s")

    assert result.code == 1, result
    assert result.seconds < 60, "rejected at the first crash, not at the progress deadline"
    failure = result.report["failedPods"][0]
    assert failure["container"] == "migrate", failure
    assert failure["reason"] in ("CrashLoopBackOff", "Error"), failure
    assert any("migrating to 2.0.0" in line for line in failure["logs"]), failure
    assert set(versions_by_pod(kube, namespace, "app=hello").values()) == {"1.0.0"}
