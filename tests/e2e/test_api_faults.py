"""API-server faults, between deployer and the lab's real API server.

Given hello v1 is stable, when the API server (through tests/e2e/faultproxy.py) answers
429, 5xx, resets a connection after a write, black-holes a request, ends or expires a
watch, rejects a write, stops answering, or restarts, then deployer waits, retries what is
safe, never applies a step twice, and never loses the stable version.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e.app_checks import (
    analysing,
    deployment_image,
    resource_versions,
    run_record,
    versions_by_pod,
)
from tests.e2e.deployer_cli import Background, deployer
from tests.e2e.faultproxy import (
    FaultProxy,
    blackhole,
    delay,
    drop_watch_after,
    reset_after_forward,
    respond,
    watch_gone,
)
from tests.e2e.lab import CLIENT_ADDRESSES, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

CLIENTS = f"{CLIENT_ADDRESSES[0]}-{CLIENT_ADDRESSES[-1]}"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def proxy(tmp_path):
    with FaultProxy() as p:
        p.env = {"KUBECONFIG": p.write_kubeconfig(tmp_path / "faults.kubeconfig")}
        yield p


def revisions(kube, namespace) -> set[str]:
    return {rs.metadata.annotations["deployment.kubernetes.io/revision"]
            for rs in kube.apps.list_namespaced_replica_set(namespace).items}


def test_429_with_retry_after_is_waited_out(namespace, deploy_hello, kube, proxy):
    deploy_hello(namespace)
    path = rf"/apis/apps/v1/namespaces/{namespace}/deployments/hello$"
    rule = proxy.add(respond(429, headers={"Retry-After": "3"}), method="GET", path=path,
                     times=2)

    result = deployer(namespace, "rolling", "--app", "hello", "--image", "v2", env=proxy.env)

    assert result.code == 0, result
    assert rule.hits == 2
    reads = proxy.requests("GET", path)
    assert [e.outcome for e in reads[:3]] == ["respond:429", "respond:429", 200]
    assert reads[1].time - reads[0].time >= 3.0 and reads[2].time - reads[1].time >= 3.0
    assert set(versions_by_pod(kube, namespace).values()) == {"2.0.0"}


def test_5xx_while_polling_is_retried(namespace, deploy_hello, kube, proxy):
    deploy_hello(namespace)
    pods = rf"/api/v1/namespaces/{namespace}/pods\?"
    rules = [proxy.add(respond(code), method="GET", path=pods, watch=False, times=1)
             for code in (500, 503, 504)]

    result = deployer(namespace, "rolling", "--app", "hello", "--image", "v2", env=proxy.env)

    assert result.code == 0, result
    assert [r.hits for r in rules] == [1, 1, 1]
    assert set(versions_by_pod(kube, namespace).values()) == {"2.0.0"}


def test_reset_after_the_image_write_is_not_applied_twice(namespace, deploy_hello, kube, proxy):
    deploy_hello(namespace)
    path = rf"/apis/apps/v1/namespaces/{namespace}/deployments/hello$"
    # Reset the first PUT that is really applied (a first PUT may also meet a 409 from the
    # controller's own status update, which is relayed as it is).
    rule = proxy.add(reset_after_forward(only_success=True), method="PUT", path=path, times=1)

    result = deployer(namespace, "rolling", "--app", "hello", "--image", "v2", env=proxy.env)

    assert result.code == 0, result
    assert rule.hits == 1
    puts = [e.outcome for e in proxy.requests("PUT", path)]
    applied = [o for o in puts if o in (200, "reset_after_forward:200")]
    # the write went through and its answer was lost; the conditional replay is refused
    # (409) and deployer, reading again, finds its change there: applied exactly once
    assert applied == ["reset_after_forward:200"], puts
    assert puts[puts.index("reset_after_forward:200") + 1] == 409, puts
    assert len(revisions(kube, namespace)) == 2, "exactly one new revision"
    assert set(versions_by_pod(kube, namespace).values()) == {"2.0.0"}


def test_reset_after_creating_the_canary_adopts_it(namespace, deploy_hello, kube, proxy):
    deploy_hello(namespace)
    path = rf"/apis/apps/v1/namespaces/{namespace}/deployments$"
    rule = proxy.add(reset_after_forward(only_success=True), method="POST", path=path, times=1)

    result = deployer(namespace, "-o", "json", "canary", "--app", "hello", "--image", "v2",
                      "--weight", "50", "--until-gate", "--client-addresses", CLIENTS,
                      env=proxy.env)

    assert result.code == 5, result
    assert rule.hits == 1
    assert [e.outcome for e in proxy.requests("POST", path)][:2] == [
        "reset_after_forward:201", 409]
    canary = kube.apps.read_namespaced_deployment("hello-canary", namespace)
    assert canary.spec.replicas == 1, "applied once, as planned (1 of the 3 pods)"
    assert kube.apps.read_namespaced_deployment("hello", namespace).spec.replicas == 2
    assert deployer(namespace, "abort", "--app", "hello").code == 0


def test_expired_and_dropped_watches_are_resumed(namespace, deploy_hello, kube, proxy):
    deploy_hello(namespace)
    gone = proxy.add(watch_gone(), path=rf"/api/v1/namespaces/{namespace}/pods", watch=True,
                     times=3)
    dropped = proxy.add(drop_watch_after(1), path=r"/apis/apps/v1/namespaces/.*/deployments",
                        watch=True, times=3)

    result = deployer(namespace, "rolling", "--app", "hello", "--image", "v2", env=proxy.env)

    assert result.code == 0, result
    assert gone.hits >= 1 and dropped.hits >= 1
    watches = proxy.requests("GET", rf"/api/v1/namespaces/{namespace}/pods\?.*watch=")
    assert len(watches) > gone.hits, "the pod watch was opened again after the 410"
    assert set(versions_by_pod(kube, namespace).values()) == {"2.0.0"}


def test_a_black_holed_request_times_out_and_is_retried(namespace, deploy_hello, kube, proxy):
    deploy_hello(namespace)
    path = rf"/apis/apps/v1/namespaces/{namespace}/deployments/hello$"
    rule = proxy.add(blackhole(), method="GET", path=path, times=1)

    result = deployer(namespace, "--request-timeout", "3s", "rolling", "--app", "hello",
                      "--image", "v2", env=proxy.env)

    assert result.code == 0, result
    assert rule.hits == 1
    outcomes = [e.outcome for e in proxy.requests("GET", path)]
    assert outcomes[0] == "blackhole" and 200 in outcomes[1:]
    assert result.seconds < 60


def test_a_hanging_health_endpoint_is_a_failed_sample_not_a_stall(namespace, deploy_hello,
                                                                  kube, proxy):
    deploy_hello(namespace)
    rule = proxy.add(delay(7), method="GET", path=r"/proxy/version", times=3)

    result = deployer(namespace, "-o", "json", "rolling", "--app", "hello", "--image", "v2",
                      env=proxy.env)

    assert result.code == 0, result
    assert rule.hits == 3
    assert result.seconds < 90
    assert set(versions_by_pod(kube, namespace).values()) == {"2.0.0"}


def test_a_rejected_write_fails_fast_without_retry_and_changes_nothing(namespace, deploy_hello,
                                                                       kube, proxy):
    deploy_hello(namespace)
    path = rf"/apis/apps/v1/namespaces/{namespace}/deployments/hello$"
    proxy.add(respond(422, body={"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                 "message": "admission webhook denied: image not signed",
                                 "reason": "Invalid", "code": 422}),
              method="PUT", path=path)

    result = deployer(namespace, "-o", "json", "rolling", "--app", "hello", "--image", "v2",
                      env=proxy.env)

    assert result.code == 1, result
    assert "image not signed" in result.report["message"]
    assert len(proxy.requests("PUT", path)) == 1, "a 422 is never retried"
    assert deployment_image(kube, namespace) == "hello:v1"
    assert len(revisions(kube, namespace)) == 1


def test_api_unreachable_past_the_budget_exits_69_and_destroys_nothing(namespace, deploy_hello,
                                                                       kube, proxy):
    deploy_hello(namespace)
    # A 20 s outage budget instead of 90 s: the same give-up, sooner (and still well
    # before the progress deadline, so only the outage can end the run).
    run = Background(namespace, "-o", "json", "rolling", "--app", "hello", "--image", "v3",
                     "--progress-deadline", "120s",
                     env={**proxy.env, "DEPLOYER_API_OUTAGE_BUDGET": "20"})
    wait_for(lambda: (run_record(kube, namespace) or {}).get("position") == 1, 30, 0.3,
             "the wait step")
    proxy.add(respond(503))  # every request, from now on

    result = run.wait(180)

    assert result.code == 69, result
    report = json.loads(result.stdout)
    assert report["verdict"] == "outcome-unknown"
    assert report["next"].startswith("deployer status --app hello")
    assert report["otherCommands"][0].startswith("deployer rollback --app hello")
    assert deployment_image(kube, namespace) == "hello:v3", "nothing was rolled back blindly"
    assert run_record(kube, namespace)["phase"] == "running"
    proxy.clear()

    rollback = deployer(namespace, "rollback", "--app", "hello", "--force")

    assert rollback.code == 0, rollback
    assert set(versions_by_pod(kube, namespace).values()) == {"1.0.0"}


def restart_apiserver() -> None:
    subprocess.run([str(REPO / "lab" / "restart-apiserver"), "--down", "4"], check=True,
                   timeout=120)


@pytest.mark.serial  # restarts the lab's API server under every test
def test_apiserver_restart_during_a_rolling_update(namespace, deploy_hello, kube):
    deploy_hello(namespace)
    run = Background(namespace, "rolling", "--app", "hello", "--image", "v2", "--max-surge",
                     "1", "--max-unavailable", "0")
    wait_for(lambda: (run_record(kube, namespace) or {}).get("position") == 1, 30, 0.2,
             "the wait step")

    restart_apiserver()
    result = run.wait(240)

    assert result.code == 0, result
    wait_for(lambda: set(versions_by_pod(kube, namespace).values()) == {"2.0.0"}, 60, 1,
             "every pod on 2.0.0")


@pytest.mark.serial  # restarts the lab's API server under every test
def test_apiserver_restart_during_a_canary_analysis(namespace, deploy_hello, kube):
    deploy_hello(namespace)
    run = Background(namespace, "canary", "--app", "hello", "--image", "v2", "--weight", "50",
                     "--interval", "20s", "--client-addresses", CLIENTS)
    wait_for(lambda: analysing(kube, namespace), 60, 0.2, "the analysis step")

    restart_apiserver()
    result = run.wait(300)

    assert result.code in (0, 1), result
    expected = "2.0.0" if result.code == 0 else "1.0.0"
    wait_for(lambda: set(versions_by_pod(kube, namespace).values()) == {expected}, 60, 1,
             f"every pod on {expected}")
    names = [d.metadata.name for d in kube.apps.list_namespaced_deployment(namespace).items]
    assert names == ["hello"]


def test_a_stopped_holder_taken_over_after_expiry_writes_nothing_when_resumed(namespace,
                                                                             deploy_hello,
                                                                             kube):
    deploy_hello(namespace)
    # An 8 s Lease instead of 30 s: the same expiry, waited out sooner.
    run = Background(namespace, "canary", "--app", "hello", "--image", "v2", "--weight", "50",
                     "--interval", "60s", "--client-addresses", CLIENTS,
                     env={"DEPLOYER_LEASE_SECONDS": "8"})
    wait_for(lambda: analysing(kube, namespace), 60, 0.2, "the analysis step")
    run.proc.send_signal(signal.SIGSTOP)
    try:
        rollback = deployer(namespace, "-o", "json", "rollback", "--app", "hello",
                            "--wait-for-lock", "60s")
        assert rollback.code == 0, rollback
        assert any("expired" in n for n in rollback.report["notes"])
        after_rollback = resource_versions(kube, namespace)
    finally:
        run.proc.send_signal(signal.SIGCONT)
    resumed = run.wait(120)

    assert resumed.code == 4, resumed
    assert "stopped before writing" in resumed.stderr
    assert resource_versions(kube, namespace) == after_rollback
    assert set(versions_by_pod(kube, namespace).values()) == {"1.0.0"}


def test_a_deployment_deleted_mid_run_is_not_followed(namespace, deploy_hello, kube):
    deploy_hello(namespace)
    run = Background(namespace, "rolling", "--app", "hello", "--image", "v3",
                     "--progress-deadline", "60s")
    wait_for(lambda: (run_record(kube, namespace) or {}).get("position") == 1, 30, 0.2,
             "the wait step")

    kube.apps.delete_namespaced_deployment("hello", namespace)
    result = run.wait(120)

    assert result.code == 3, result
    assert "deleted" in result.stdout + result.stderr


def refused_unchanged(kube, namespace: str, argv: list[str], said: str) -> None:
    """The command is refused with exit 2, saying ``said``, and changes nothing."""
    before = resource_versions(kube, namespace)
    refused = deployer(namespace, *argv)
    assert refused.code == 2, refused
    assert said in " ".join(refused.stderr.split()), refused
    assert resource_versions(kube, namespace) == before


def test_quota_that_blocks_new_pods_is_refused_before_any_change(namespace, deploy_hello,
                                                                  kube):
    from kubernetes import client

    deploy_hello(namespace)
    kube.core.create_namespaced_resource_quota(namespace, client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="pods"),
        spec=client.V1ResourceQuotaSpec(hard={"pods": "4"})))
    wait_for(lambda: (kube.core.read_namespaced_resource_quota("pods", namespace).status.used
                      or {}).get("pods") == "3", 30, 0.2, "the quota controller to count pods")
    refused_unchanged(kube, namespace, ["blue-green", "--app", "hello", "--image", "v2"],
                      "resourcequota pods: pods 3 used of 4, and this run needs 3 more")
    # a rolling update needs one more (maxSurge 1): it fits, and goes through although the
    # quota counts each old pod until it is gone (the verifier waits for that room). The
    # ReplicaSet controller backs off after each refused pod (exponentially), so on a busy
    # machine one pod's turn took over the demo's 120 s progress deadline (once in CI).
    assert deployer(namespace, "rolling", "--app", "hello", "--image", "v2",
                    "--progress-deadline", "300s").code == 0
    assert deployment_image(kube, namespace) == "hello:v2"


def test_a_disruption_budget_refuses_a_recreate_before_any_change(namespace, deploy_hello,
                                                                   kube):
    deploy_hello(namespace)
    # the lab's 1.20 serves PodDisruptionBudgets as policy/v1beta1 (v1 from 1.21): deployer
    # picks the served version, as it does for EndpointSlices
    pdb = {"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget",
           "metadata": {"name": "hello"},
           "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "hello"}}}}
    subprocess.run(["kubectl", "-n", namespace, "create", "-f", "-"], input=json.dumps(pdb),
                   text=True, check=True, capture_output=True)
    refused_unchanged(kube, namespace, ["recreate", "--app", "hello", "--image", "v2"],
                      "poddisruptionbudget hello (minAvailable 2) keeps 2 of its 3 pods "
                      "available")
    # a canary keeps every pod serving: it passes the same budget
    assert deployer(namespace, "canary", "--app", "hello", "--image", "v2", "--dry-run").code \
        == 0


def test_a_paused_deployment_is_refused_before_any_change(namespace, deploy_hello, kube):
    deploy_hello(namespace)
    kube.apps.patch_namespaced_deployment("hello", namespace, {"spec": {"paused": True}})

    def observed() -> bool:
        dep = kube.apps.read_namespaced_deployment("hello", namespace)
        return dep.status.observed_generation == dep.metadata.generation

    wait_for(observed, 30, 0.2, "the controller to observe the pause")
    before = resource_versions(kube, namespace)

    result = deployer(namespace, "rolling", "--app", "hello", "--image", "v2")

    assert result.code == 2, result
    assert "paused" in result.stderr and "rollout resume" in result.stderr
    assert resource_versions(kube, namespace) == before


def test_system_namespaces_are_refused_without_a_request():
    result = deployer("kube-system", "rolling", "--app", "hello", "--image", "v2")
    assert result.code == 2, result
    assert "system-namespace" in result.stderr


def test_a_context_outside_the_allow_list_is_refused(namespace):
    result = deployer(namespace, "status", "--app", "hello",
                      env={"DEPLOYER_ALLOWED_CONTEXTS": "prod-eu,prod-us"})
    assert result.code == 2, result
    assert "not in DEPLOYER_ALLOWED_CONTEXTS" in result.stderr


def test_in_ci_a_context_must_be_named_and_nothing_is_read_before(shared_hello, kube):
    namespace = shared_hello  # hello v1, shared by tests that only read
    before = resource_versions(kube, namespace)

    # Not even the kubeconfig is read: the one named here does not exist.
    refused = deployer(namespace, "rolling", "--app", "hello", "--image", "v2",
                       env={"CI": "true", "KUBECONFIG": "/nonexistent/kubeconfig"})
    assert refused.code == 2, refused
    assert "without --context" in refused.stderr and "--context NAME" in refused.stderr
    assert resource_versions(kube, namespace) == before

    named = deployer(namespace, "--context", "deployer-lab", "-o", "json", "status", "--app",
                     "hello", env={"CI": "true"})
    assert named.code == 0, named
    assert named.report["deployments"][0]["image"].endswith("hello:v1")


def test_use_context_during_a_run_does_not_move_it_to_another_cluster(namespace,
                                                                      deploy_hello, kube,
                                                                      tmp_path):
    import os

    import yaml

    deploy_hello(namespace)
    config = yaml.safe_load(Path(os.environ["KUBECONFIG"]).read_text())
    # A second context whose server is a closed port on loopback.
    config["clusters"].append({"name": "elsewhere",
                               "cluster": {"server": "https://127.0.0.1:1"}})
    config["contexts"].append({"name": "elsewhere",
                               "context": {"cluster": "elsewhere",
                                           "user": config["contexts"][0]["context"]["user"]}})
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    run = Background(namespace, "--kubeconfig", str(kubeconfig), "-o", "json", "canary",
                     "--app", "hello", "--image", "v2", "--weight", "50", "--interval", "20s",
                     "--client-addresses", CLIENTS)
    wait_for(lambda: analysing(kube, namespace), 90, 0.2, "the analysis step")

    config["current-context"] = "elsewhere"  # what `kubectl config use-context` writes
    kubeconfig.write_text(yaml.safe_dump(config))
    result = run.wait(300)

    assert result.code == 0, result
    assert result.report["verdict"] == "promoted"
    assert set(versions_by_pod(kube, namespace).values()) == {"2.0.0"}
    # and the file really does point elsewhere now
    moved = deployer(namespace, "--kubeconfig", str(kubeconfig), "--request-timeout", "3s",
                     "status", "--app", "hello")
    assert moved.code == 69, moved


def test_an_untrusted_api_certificate_is_refused_not_downgraded(shared_hello, kube, tmp_path):
    import base64
    import os
    import subprocess as sp

    import yaml

    namespace = shared_hello  # hello v1, shared by tests that only read
    config = yaml.safe_load(Path(os.environ["KUBECONFIG"]).read_text())
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    sp.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
            "/CN=not-the-lab-ca", "-keyout", str(key), "-out", str(crt)], check=True,
           capture_output=True)
    cluster = config["clusters"][0]["cluster"]
    cluster.pop("certificate-authority", None)
    cluster["certificate-authority-data"] = base64.b64encode(crt.read_bytes()).decode()
    bad = tmp_path / "bad-ca.kubeconfig"
    bad.write_text(yaml.safe_dump(config))
    before = resource_versions(kube, namespace)

    result = deployer(namespace, "rolling", "--app", "hello", "--image", "v2",
                      env={"KUBECONFIG": str(bad)})

    assert result.code == 69, result
    assert "certificate" in result.stderr.lower() or "tls" in result.stderr.lower()
    assert resource_versions(kube, namespace) == before

    insecure = deployer(namespace, "--insecure-skip-tls-verify", "status", "--app", "hello",
                        env={"KUBECONFIG": str(bad)})
    assert insecure.code == 0, insecure
    assert "certificate is not verified" in insecure.stderr
