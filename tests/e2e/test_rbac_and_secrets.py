"""Least privilege and secrets: deployer runs as the CI ServiceAccount of manifests/rbac/,
names a missing permission before its first write, and never prints a credential."""

from __future__ import annotations

import base64
import copy
import os
from pathlib import Path

import pytest
import yaml

from tests.e2e.app_checks import resource_versions, versions_by_pod
from tests.e2e.deployer_cli import deployer
from tests.e2e.lab import CLIENT_ADDRESSES, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

RBAC = Path(__file__).resolve().parents[2] / "manifests" / "rbac"
CLIENTS = f"{CLIENT_ADDRESSES[0]}-{CLIENT_ADDRESSES[-1]}"


def apply_rbac(kube, namespace, drop: tuple[str, str] | None = None) -> str:
    """Create the ServiceAccount, Role and RoleBinding; return the SA's token."""
    from kubernetes import client, utils

    docs = [yaml.safe_load(p.read_text()) for p in sorted(RBAC.glob("*.yaml"))]
    for doc in docs:
        if doc["kind"] == "Role" and drop:
            resource, verb = drop
            for rule in doc["rules"]:
                if resource in rule["resources"]:
                    rule["verbs"] = [v for v in rule["verbs"] if v != verb]
        utils.create_from_dict(kube.api_client, doc, namespace=namespace)

    def token() -> str | None:
        sa = kube.core.read_namespaced_service_account("deployer", namespace)
        for ref in sa.secrets or []:
            secret = kube.core.read_namespaced_secret(ref.name, namespace)
            if secret.data and secret.data.get("token"):
                return base64.b64decode(secret.data["token"]).decode()
        return None

    wait_for(lambda: token() is not None, 30, 0.5, "the deployer ServiceAccount's token",
             (client.ApiException,))
    return token() or ""


def sa_kubeconfig(tmp_path: Path, namespace: str, token: str) -> str:
    admin = yaml.safe_load(Path(os.environ["KUBECONFIG"]).read_text())
    cluster = copy.deepcopy(admin["clusters"][0]["cluster"])
    if "certificate-authority" in cluster:
        cluster["certificate-authority-data"] = base64.b64encode(
            Path(cluster.pop("certificate-authority")).read_bytes()).decode()
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "ci",
        "clusters": [{"name": "lab", "cluster": cluster}],
        "users": [{"name": "deployer", "user": {"token": token}}],
        "contexts": [{"name": "ci", "context": {"cluster": "lab", "user": "deployer",
                                                "namespace": namespace}}],
    }
    path = tmp_path / "ci.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_canary_and_blue_green_run_as_the_ci_service_account(namespace, deploy_hello, kube,
                                                             tmp_path):
    deploy_hello(namespace)
    ci = sa_kubeconfig(tmp_path, namespace, apply_rbac(kube, namespace))
    env = {"KUBECONFIG": ci}

    canary = deployer(namespace, "-o", "json", "canary", "--app", "hello", "--image", "v2",
                      "--weight", "50", "--client-addresses", CLIENTS, env=env)
    assert canary.code == 0, canary

    blue_green = deployer(namespace, "-o", "json", "blue-green", "--app", "hello", "--image",
                          "v5", "--expect-version", "1.0.0", "--keep-old", "0s",
                          "--client-addresses", CLIENTS, env=env)
    assert blue_green.code == 0, blue_green

    rollback = deployer(namespace, "-o", "json", "rollback", "--app", "hello", env=env)
    assert rollback.code == 0, rollback
    assert set(versions_by_pod(kube, namespace, "app=hello,track=stable").values()) == {"2.0.0"}


def test_a_missing_permission_is_named_before_any_change(namespace, deploy_hello, kube,
                                                         tmp_path):
    deploy_hello(namespace)
    ci = sa_kubeconfig(tmp_path, namespace,
                       apply_rbac(kube, namespace, drop=("services", "patch")))
    before = resource_versions(kube, namespace)

    result = deployer(namespace, "blue-green", "--app", "hello", "--image", "v2",
                      env={"KUBECONFIG": ci})

    assert result.code == 69, result
    assert "patch services" in result.stderr
    assert "missing-permission" in result.stderr
    assert resource_versions(kube, namespace) == before
    from kubernetes import client

    leases = client.CoordinationV1Api(kube.api_client).list_namespaced_lease(namespace)
    assert leases.items == [], "not even the lock may be taken"


def test_no_credential_appears_in_output_at_any_verbosity(namespace, deploy_hello, kube,
                                                          tmp_path):
    deploy_hello(namespace)
    token = apply_rbac(kube, namespace)
    ci = sa_kubeconfig(tmp_path, namespace, token)
    admin = yaml.safe_load(Path(os.environ["KUBECONFIG"]).read_text())
    user = admin["users"][0]["user"]
    key = user.get("client-key-data") or base64.b64encode(
        Path(user["client-key"]).read_bytes()).decode()
    key_text = base64.b64decode(key).decode()
    secrets = [token, token[:40], key[:40], key_text.splitlines()[1][:40]]

    outputs = []
    for env in ({"KUBECONFIG": ci}, {}):
        for args in (["-v", "--log-format", "json", "canary", "--app", "hello", "--image", "v9",
                      "--weight", "50", "--client-addresses", CLIENTS],
                     ["-v", "-o", "json", "status", "--app", "hello"],
                     ["-v", "rolling", "--app", "nope", "--image", "v2"]):
            outputs.append(deployer(namespace, *args, env=env))

    assert outputs[0].code == 1, outputs[0]
    for result in outputs:
        text = result.stdout + result.stderr
        for secret in secrets:
            assert secret not in text, f"a credential leaked into: {result}"
