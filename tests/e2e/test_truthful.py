"""deployer says only what is true: exit codes, no-ops, re-runs, checks and traces.

Each test is one real case on the lab; the variations are unit tests (test_refusals,
test_recorded_settings, test_truthful_results, test_cliargs, test_traffic).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from tests.e2e.app_checks import deployment_image, resource_versions, run_record, versions_by_pod
from tests.e2e.deployer_cli import Background, deployer
from tests.e2e.lab import wait_deployment_available, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def step_of(kube, namespace: str) -> str:
    return (run_record(kube, namespace) or {}).get("step") or ""


def test_on_the_image_but_answering_another_version_is_rejected_not_a_no_op(namespace,
                                                                            deploy_hello, kube):
    deploy_hello(namespace)
    # Someone ran: kubectl set image deploy/hello hello=hello:v5 (a build that answers 1.0.0)
    kube.apps.patch_namespaced_deployment("hello", namespace, {"spec": {"template": {"spec": {
        "containers": [{"name": "hello", "image": "hello:v5"}]}}}})
    wait_deployment_available(kube, namespace, "hello")
    before = resource_versions(kube, namespace)

    result = deployer(namespace, "-o", "json", "rolling", "--app", "hello", "--image", "v5")

    assert result.code == 1, result
    assert result.report["exitCode"] == 1 and result.report["verdict"] == "rejected"
    assert "its pods answer 1.0.0, not 5.0.0; nothing was changed" in result.report["message"]
    assert resource_versions(kube, namespace) == before, "nothing written, not even the Lease"


def test_a_re_run_keeps_the_recorded_settings_refusing_or_applying_new_flags(namespace,
                                                                            deploy_hello, kube):
    deploy_hello(namespace)
    run = Background(namespace, "canary", "--app", "hello", "--image", "v2",
                     "--steps", "50,100", "--interval", "8s")
    wait_for(lambda: step_of(kube, namespace).startswith("verify traffic"), 90, 0.2,
             "the canary's analysis")
    run.proc.send_signal(signal.SIGINT)
    assert run.wait(60).code == 130

    other_interval = deployer(namespace, "canary", "--app", "hello", "--image", "v2",
                              "--steps", "50,100", "--interval", "5s")
    assert other_interval.code == 2, other_interval
    assert "--interval 5s (the run was started with 8s)" in other_interval.stderr
    other_image = deployer(namespace, "canary", "--app", "hello", "--image", "v3", "--dry-run")
    assert other_image.code == 2 and "run-in-progress" in other_image.stderr, other_image
    assert run_record(kube, namespace)["phase"] == "interrupted"

    resumed = deployer(namespace, "canary", "--app", "hello", "--image", "v2", "--samples", "4")

    assert resumed.code == 0, resumed
    said = resumed.stdout + resumed.stderr
    assert "with the settings it was started with: --steps 50,100, --interval 8s" in said
    assert "--samples 4 applies from now on (the run was started with 3)" in said
    assert set(versions_by_pod(kube, namespace).values()) == {"2.0.0"}


def test_a_canary_no_client_reaches_is_rejected_by_the_share_check(namespace, deploy_hello,
                                                                   kube):
    deploy_hello(namespace)
    run = Background(namespace, "-o", "json", "canary", "--app", "hello", "--image", "v2",
                     "--steps", "25,100")
    wait_for(lambda: step_of(kube, namespace).startswith("wait for hello-canary"), 90, 0.1,
             "the canary's rollout")
    # Someone narrows the Service to the stable pods: the canary pods are Ready and answer
    # 2.0.0, and not one user reaches them.
    kube.core.patch_namespaced_service("hello", namespace, {"spec": {"selector": {
        "app": "hello", "track": "stable"}}})

    result = run.wait(120)

    assert result.code == 1, result
    checks = {c["check"]: c for c in result.report["checks"]}
    assert checks["traffic-share"]["phase"] == "Failed", checks
    assert "0 of 200 clients (0%) got 2.0.0, planned 33%" in checks["traffic-share"]["message"]
    assert set(versions_by_pod(kube, namespace, "app=hello,track=stable").values()) == {"1.0.0"}


def test_sigint_while_waiting_for_the_lock_exits_130_and_writes_nothing(namespace, deploy_hello,
                                                                         kube):
    deploy_hello(namespace, wait=False)  # waiting for the lock needs no running pods
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "deployer-hello"},
             "spec": {"holderIdentity": "someone-else", "leaseDurationSeconds": 300,
                      "acquireTime": now, "renewTime": now}}
    # kubectl, not the Python client: the client's model turns the MicroTime strings into
    # datetimes and writes them back in a form the API server refuses.
    subprocess.run(["kubectl", "-n", namespace, "create", "-f", "-"], input=json.dumps(lease),
                   text=True, check=True, capture_output=True)
    before = resource_versions(kube, namespace)
    waiting = Background(namespace, "rolling", "--app", "hello", "--image", "v2",
                         "--wait-for-lock", "2m")
    line = waiting.said("waiting up to 120s for the lock of hello", 60)
    assert "held by someone-else" in line, line
    signalled = time.monotonic()
    waiting.proc.send_signal(signal.SIGINT)
    result = waiting.wait(30)

    assert result.code == 130, result
    assert time.monotonic() - signalled < 5, "the first SIGINT ends the wait"
    assert "while waiting for the lock of hello; nothing was changed" in result.stderr
    after = resource_versions(kube, namespace)
    assert {k: v for k, v in after.items() if not k.startswith(("replicaset/", "deployment/"))} \
        == {k: v for k, v in before.items() if not k.startswith(("replicaset/", "deployment/"))}
    assert deployment_image(kube, namespace) == "hello:v1"
    assert run_record(kube, namespace) is None


def test_reading_commands_accept_options_anywhere_trace_requests_and_read_system_namespaces(
        shared_hello, kube):
    before = resource_versions(kube, shared_hello)

    status = deployer(shared_hello, "status", "--app", "hello", "-ojson", "-v")

    assert status.code == 0, status
    assert status.report["app"] == "hello"
    traces = [line for line in status.stderr.splitlines() if "api request" in line]
    assert any("method=GET" in t and "/deployments/hello" in t and "status=200" in t
               for t in traces), status.stderr
    assert "Bearer" not in status.stderr and "token" not in status.stderr.lower()
    system = deployer("kube-system", "status", "--app", "hello")
    assert system.code == 2 and "no Deployment named" in system.stderr, system
    assert "belongs to the cluster itself" not in system.stderr
    assert resource_versions(kube, shared_hello) == before
