"""canary on the lab cluster: Given hello v1 is stable behind its Service, When deployer
runs a canary, Then ..."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.e2e import lab
from tests.e2e.app_checks import (
    PodCounter,
    ServiceClient,
    analysing,
    deployment_image,
    resource_versions,
    versions_by_pod,
)
from tests.e2e.deployer_cli import Background, deployer, run_printed
from tests.e2e.lab import CLIENT_ADDRESSES, version_via_service, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

CLIENTS = f"{CLIENT_ADDRESSES[0]}-{CLIENT_ADDRESSES[-1]}"


def service_versions(kube, namespace) -> dict[str, str]:
    return {ip: version_via_service(namespace, "hello", ip, kube=kube)
            for ip in CLIENT_ADDRESSES}


def canary_exists(kube, namespace) -> bool:
    names = [d.metadata.name for d in kube.apps.list_namespaced_deployment(namespace).items]
    return "hello-canary" in names


def test_canary_to_v2_is_promoted_with_share_and_stickiness_checked(namespace, deploy_hello,
                                                                    kube):
    deploy_hello(namespace)

    result = deployer(namespace, "-o", "json", "canary", "--app", "hello", "--image", "v2",
                      "--steps", "25,50,100", "--client-addresses", CLIENTS)

    assert result.code == 0, result
    report = result.report
    assert report["verdict"] == "promoted"
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["traffic-share"]["phase"] == "Successful", checks
    assert checks["traffic-share"]["details"]["clients"] >= 20
    assert checks["stickiness"]["phase"] == "Successful", checks
    assert not canary_exists(kube, namespace)
    assert set(versions_by_pod(kube, namespace).values()) == {"2.0.0"}
    assert set(service_versions(kube, namespace).values()) == {"2.0.0"}
    svc = kube.core.read_namespaced_service("hello", namespace)
    assert svc.spec.session_affinity == "ClientIP"


@pytest.mark.parametrize("image", ["v3", "v4", "v5", "v9"])
def test_bad_canary_is_rolled_back_and_v1_answers_everywhere(namespace, deploy_hello, kube,
                                                             image):
    deploy_hello(namespace)

    result = deployer(namespace, "-o", "json", "canary", "--app", "hello", "--image", image,
                      "--steps", "25,100", "--client-addresses", CLIENTS,
                      "--progress-deadline", "25s", *(
                          ["--expect-version", "5.0.0"] if image == "v5" else []))

    assert result.code == 1, result
    assert result.report["verdict"] == "rejected"
    assert not canary_exists(kube, namespace)
    assert deployment_image(kube, namespace) == "hello:v1"
    assert set(versions_by_pod(kube, namespace).values()) == {"1.0.0"}
    assert set(service_versions(kube, namespace).values()) == {"1.0.0"}


def test_dry_run_prints_the_achievable_shares_and_changes_nothing(shared_hello, kube):
    namespace = shared_hello  # hello v1, shared by tests that only read
    before = resource_versions(kube, namespace)

    result = deployer(namespace, "canary", "--app", "hello", "--image", "v2",
                      "--steps", "20,50,100", "--interval", "30s", "--dry-run")

    assert result.code == 0, result
    assert "20% requested -> 1 canary + 2 stable pods = 33%" in result.stderr
    assert "50% requested -> 1 canary + 2 stable pods = 33%" in result.stderr
    assert "with at most 4 pods at once" in result.stderr
    assert "minimum duration: 60s" in result.stderr
    assert resource_versions(kube, namespace) == before


def test_until_gate_then_promote_from_another_process(namespace, deploy_hello, kube):
    deploy_hello(namespace)

    paused = deployer(namespace, "-o", "json", "canary", "--app", "hello", "--image", "v2",
                      "--weight", "25", "--until-gate", "--client-addresses", CLIENTS)

    assert paused.code == 5, paused
    assert paused.report["verdict"] == "paused"
    assert paused.report["next"].startswith(f"deployer promote --app hello -n {namespace} ")
    assert paused.report["otherCommands"][0].startswith("deployer abort --app hello")
    assert canary_exists(kube, namespace)
    status = deployer(namespace, "-o", "json", "status", "--app", "hello")
    assert status.report["runInProgress"]["phase"] == "paused"

    # the printed command, pasted as is into a CI step (where --context is required)
    promoted = run_printed(paused.report["next"])

    assert promoted.code == 0, promoted
    assert "verdict:          promoted (exit 0)" in promoted.stdout
    assert not canary_exists(kube, namespace)
    assert set(versions_by_pod(kube, namespace).values()) == {"2.0.0"}
    history = deployer(namespace, "-o", "json", "history", "--app", "hello").report
    assert history["releases"][-1]["strategy"] == "canary"
    assert history["releases"][-1]["verdict"] == "promoted"


def test_until_gate_then_abort_restores_v1(namespace, deploy_hello, kube):
    deploy_hello(namespace)
    paused = deployer(namespace, "canary", "--app", "hello", "--image", "v2", "--weight", "50",
                      "--until-gate", "--client-addresses", CLIENTS)
    assert paused.code == 5, paused

    aborted = deployer(namespace, "-o", "json", "abort", "--app", "hello")

    assert aborted.code == 0, aborted
    assert aborted.report["verdict"] == "rolled-back"
    assert not canary_exists(kube, namespace)
    assert set(versions_by_pod(kube, namespace).values()) == {"1.0.0"}
    assert set(service_versions(kube, namespace).values()) == {"1.0.0"}
    assert deployer(namespace, "promote", "--app", "hello").code == 2


def test_affinity_is_set_for_the_canary_and_restored_afterwards(namespace, deploy_hello,
                                                                 kube):
    deploy_hello(namespace)
    kube.core.patch_namespaced_service("hello", namespace, {"spec": {"sessionAffinity": "None"}})

    result = deployer(namespace, "-o", "json", "canary", "--app", "hello", "--image", "v2",
                      "--weight", "50", "--client-addresses", CLIENTS)

    assert result.code == 0, result
    assert any("sessionAffinity None: set to ClientIP" in n for n in result.report["notes"])
    svc = kube.core.read_namespaced_service("hello", namespace)
    assert svc.spec.session_affinity == "None"


def test_rollback_after_a_promoted_canary_restores_v1(namespace, deploy_hello, kube):
    deploy_hello(namespace)
    assert deployer(namespace, "canary", "--app", "hello", "--image", "v2", "--weight", "50",
                    "--client-addresses", CLIENTS).code == 0

    result = deployer(namespace, "-o", "json", "rollback", "--app", "hello")

    assert result.code == 0, result
    assert set(versions_by_pod(kube, namespace).values()) == {"1.0.0"}
    again = deployer(namespace, "-o", "json", "rollback", "--app", "hello")
    assert again.code == 0 and again.report["verdict"] == "no-op", again


@pytest.mark.timeout(600)
def test_an_autoscaler_resizing_stable_mid_canary_keeps_the_weight(namespace, deploy_hello, kube):
    deploy_hello(namespace)
    # A real HorizontalPodAutoscaler sizes hello: the canary runs beside stable. Without a
    # metrics server it changes nothing until its minimum is raised above the size (below
    # its minimum the controller scales the target up without needing any metric).
    autoscaling = client.AutoscalingV1Api(kube.api_client)
    autoscaling.create_namespaced_horizontal_pod_autoscaler(
        namespace, {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
                    "metadata": {"name": "hello"},
                    "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                                "name": "hello"},
                             "minReplicas": 3, "maxReplicas": 6}})
    # 20 s of analysis per step: the autoscaler controller acts within its sync period (the
    # lab's is 5 s), so the resize lands in the first analysis (asserted below), with time
    # left to follow it.
    run = Background(namespace, "-o", "json", "canary", "--app", "hello", "--image", "v2",
                     "--steps", "25,50,100", "--interval", "20s", "--client-addresses", CLIENTS)
    wait_for(lambda: analysing(kube, namespace), 90, 0.2, "the first analysis step")
    autoscaling.patch_namespaced_horizontal_pod_autoscaler(
        "hello", namespace, {"spec": {"minReplicas": 6}})
    wait_for(lambda: kube.apps.read_namespaced_deployment("hello", namespace).spec.replicas == 6,
             60, 0.5, "the autoscaler to resize hello")
    assert analysing(kube, namespace), \
        "the resize must happen during the first analysis step"

    result = run.wait(420)

    assert result.code == 0, result
    notes = result.report["notes"]
    assert any("sized by the HorizontalPodAutoscaler hello" in n for n in notes), notes
    # 25 % beside 6 stable pods is 2 canary pods, and 50 % is 6 instead of the planned 3
    assert any("hello now has 6 replicas: 2 canary pods (instead of 1)" in n for n in notes), notes
    assert any("hello now has 6 replicas: 6 canary pods (instead of 3)" in n for n in notes), notes
    checks = {c["check"]: c for c in result.report["checks"]}
    assert checks["traffic-share"]["phase"] == "Successful"
    dep = kube.apps.read_namespaced_deployment("hello", namespace)
    assert dep.spec.replicas == 6
    assert sorted(versions_by_pod(kube, namespace).values()) == ["2.0.0"] * 6
    assert not canary_exists(kube, namespace)


def test_an_app_selected_by_its_app_label_only_gets_a_bounded_canary(namespace, kube):
    # `kubectl create deployment`'s shape: pods, selector and Service on app: hello alone,
    # so the stable Deployment's selector matches the canary's pods too; 8 replicas.
    deploy = lab.hello_deployment(replicas=8, labels={"app": "hello"})
    svc = lab.hello_manifests()[1]
    svc["spec"]["selector"] = {"app": "hello"}
    kube.apps.create_namespaced_deployment(namespace, deploy)
    kube.core.create_namespaced_service(namespace, svc)
    lab.wait_deployment_available(kube, namespace, "hello")

    with ServiceClient(kube, namespace) as during, PodCounter(kube, namespace) as pods:
        bad = deployer(namespace, "canary", "--app", "hello", "--image", "v9",
                       "--steps", "50,90")
        assert bad.code == 1, bad
        assert "ErrImagePull" in bad.stdout + bad.stderr
        good = deployer(namespace, "canary", "--app", "hello", "--image", "v2",
                        "--steps", "50,90", "--max-surge", "25%", "--client-addresses",
                        CLIENTS)
    assert good.code == 0, good
    # the canary took its pods from stable: 8 replicas plus 25 % (2), never 8 + 56
    assert pods.events and pods.most == 10, pods.most
    assert not canary_exists(kube, namespace)
    # every pod of the app runs v2, none left over from either canary
    assert set(versions_by_pod(kube, namespace, "app=hello").values()) == {"2.0.0"}
    assert len(versions_by_pod(kube, namespace, "app=hello")) == 8
    uid = kube.apps.read_namespaced_deployment("hello", namespace).metadata.uid
    for rs in kube.apps.list_namespaced_replica_set(namespace).items:  # none adopted
        if (rs.metadata.labels or {}).get("track") == "canary":
            assert uid not in [o.uid for o in rs.metadata.owner_references or []]
    assert during.failed == 0, during.errors[:5]
    assert set(during.answers) <= {"1.0.0", "2.0.0"} and "2.0.0" in during.answers


def test_a_pod_with_a_sidecar_first_is_verified_on_the_deployed_containers_port(namespace,
                                                                                kube):
    # The seeds' pod shape: an init container, a sidecar listed first (it answers /version
    # on its own port, always 1.0.0), and the app's container `web` with a startup probe.
    dep = lab.hello_deployment(replicas=3)
    spec = dep["spec"]["template"]["spec"]
    web = spec["containers"][0]
    web["name"] = "web"
    web["startupProbe"] = {"httpGet": {"path": "/healthz", "port": "http"},
                           "periodSeconds": 1, "failureThreshold": 30}
    sidecar = {"name": "proxy", "image": "hello:v1", "imagePullPolicy": "IfNotPresent",
               "command": ["/bin/busybox", "sh", "-c",
                           "trap 'exit 0' TERM; /bin/busybox httpd -f -p 9090 -h /www & wait"],
               "ports": [{"name": "admin", "containerPort": 9090}]}
    spec["containers"] = [sidecar, web]
    spec["initContainers"] = [{"name": "init", "image": "hello:v1",
                               "imagePullPolicy": "IfNotPresent",
                               "command": ["/bin/busybox", "true"]}]
    kube.apps.create_namespaced_deployment(namespace, dep)
    kube.core.create_namespaced_service(namespace, lab.hello_manifests()[1])
    lab.wait_deployment_available(kube, namespace, "hello")

    result = deployer(namespace, "canary", "--app", "hello", "--container", "web",
                      "--image", "v2", "--steps", "50", "--client-addresses", CLIENTS)

    assert result.code == 0, result
    images = {c.name: c.image for c in kube.apps.read_namespaced_deployment(
        "hello", namespace).spec.template.spec.containers}
    assert images == {"proxy": "hello:v1", "web": "hello:v2"}
    assert set(versions_by_pod(kube, namespace).values()) == {"2.0.0"}
    assert not canary_exists(kube, namespace)
