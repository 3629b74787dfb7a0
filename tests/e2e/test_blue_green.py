"""blue-green on the lab cluster: the Service switches only to a verified side."""

from __future__ import annotations

import copy

import pytest

from tests.e2e import lab
from tests.e2e.app_checks import ServiceClient, resource_versions, run_record, versions_by_pod
from tests.e2e.deployer_cli import Background, deployer
from tests.e2e.lab import CLIENT_ADDRESSES, version_via_service, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

CLIENTS = f"{CLIENT_ADDRESSES[0]}-{CLIENT_ADDRESSES[-1]}"
STABLE = {"app": "hello", "track": "stable"}
GREEN = {"app": "hello", "track": "green"}
APP_ONLY = {"app": "hello"}  # the demo Service's own selector, put back by a rollback


def service_versions(kube, namespace) -> set[str]:
    return {version_via_service(namespace, "hello", ip, kube=kube) for ip in CLIENT_ADDRESSES}


def test_blue_green_switches_only_after_green_is_verified(namespace, deploy_hello, kube):
    deploy_hello(namespace)

    with ServiceClient(kube, namespace) as before_switch:
        gated = deployer(namespace, "-o", "json", "blue-green", "--app", "hello", "--image",
                         "v2", "--until-gate", "--client-addresses", CLIENTS)

    assert gated.code == 5, gated
    assert len(before_switch.answers) > 10
    assert set(before_switch.answers) == {"1.0.0"}, "no request may reach green before the switch"
    assert before_switch.failed == 0
    green = versions_by_pod(kube, namespace, "app=hello,track=green")
    assert len(green) == 3 and set(green.values()) == {"2.0.0"}
    svc = kube.core.read_namespaced_service("hello", namespace)
    assert svc.spec.selector == STABLE

    with ServiceClient(kube, namespace) as during_switch:
        promoted = deployer(namespace, "-o", "json", "promote", "--app", "hello",
                            "--client-addresses", CLIENTS)

    assert promoted.code == 0, promoted
    assert kube.core.read_namespaced_service("hello", namespace).spec.selector == GREEN
    assert service_versions(kube, namespace) == {"2.0.0"}
    assert during_switch.failed == 0, "the switch must not drop requests"
    share = {c["check"]: c for c in promoted.report["checks"]}["traffic-share"]
    assert share["phase"] == "Successful" and share["details"]["observed"] == 1.0
    # the default window: 30 s watching green, then blue goes, and the run returns
    steps = {s["step"].split(",")[0]: s for s in promoted.report["steps"]}
    assert steps["keep hello up for 30s"]["result"] == "done"
    after_switch = sum(s["seconds"] for s in promoted.report["steps"][
        [s["step"] for s in promoted.report["steps"]].index(
            "switch service hello to selector app=hello,track=green"):])
    assert after_switch < 60, promoted.report["steps"]
    assert kube.apps.read_namespaced_deployment("hello", namespace).spec.replicas == 0


def test_blue_green_to_a_missing_image_never_switches(namespace, deploy_hello, kube):
    deploy_hello(namespace)

    with ServiceClient(kube, namespace) as poller:
        result = deployer(namespace, "-o", "json", "blue-green", "--app", "hello", "--image",
                          "v9", "--keep-old", "0s", "--client-addresses", CLIENTS)

    assert result.code == 1, result
    assert kube.core.read_namespaced_service("hello", namespace).spec.selector == APP_ONLY
    assert set(poller.answers) == {"1.0.0"} and poller.failed == 0
    assert service_versions(kube, namespace) == {"1.0.0"}
    green = kube.apps.read_namespaced_deployment("hello-green", namespace)
    assert green.spec.replicas == 0


def test_rollback_after_blue_green_switches_back_to_a_ready_blue(namespace, deploy_hello, kube):
    deploy_hello(namespace)
    done = deployer(namespace, "blue-green", "--app", "hello", "--image", "v2", "--keep-old",
                    "0s", "--client-addresses", CLIENTS)
    assert done.code == 0, done
    assert kube.apps.read_namespaced_deployment("hello", namespace).spec.replicas == 0

    result = deployer(namespace, "-o", "json", "rollback", "--app", "hello")

    assert result.code == 0, result
    assert kube.core.read_namespaced_service("hello", namespace).spec.selector == APP_ONLY
    assert service_versions(kube, namespace) == {"1.0.0"}
    steps = [s["step"] for s in result.report["steps"]]
    scale_up = steps.index("scale hello to 3")
    switch = next(i for i, s in enumerate(steps) if s.startswith("switch service hello"))
    assert scale_up < switch, steps


def test_second_blue_green_goes_from_green_back_to_the_blue_deployment(namespace, deploy_hello,
                                                                       kube):
    deploy_hello(namespace)
    assert deployer(namespace, "blue-green", "--app", "hello", "--image", "v2", "--keep-old",
                    "0s", "--client-addresses", CLIENTS).code == 0

    result = deployer(namespace, "blue-green", "--app", "hello", "--image", "v5",
                      "--expect-version", "1.0.0", "--keep-old", "0s",
                      "--client-addresses", CLIENTS)

    assert result.code == 0, result
    assert kube.core.read_namespaced_service("hello", namespace).spec.selector == STABLE
    assert set(versions_by_pod(kube, namespace, "app=hello,track=stable").values()) == {"1.0.0"}
    assert kube.apps.read_namespaced_deployment("hello-green", namespace).spec.replicas == 0


def test_blue_green_dry_run_changes_nothing(shared_hello, kube):
    namespace = shared_hello  # hello v1, shared by tests that only read
    before = resource_versions(kube, namespace)

    result = deployer(namespace, "blue-green", "--app", "hello", "--image", "v2", "--dry-run")

    assert result.code == 0, result
    assert "switch service hello to selector app=hello,track=green" in result.stderr
    assert resource_versions(kube, namespace) == before


def test_a_long_window_outlives_the_run_and_rollback_in_it_switches_back_at_once(
        namespace, deploy_hello, kube):
    deploy_hello(namespace)
    done = deployer(namespace, "-o", "json", "blue-green", "--app", "hello", "--image", "v2",
                    "--keep-old", "10m", "--client-addresses", CLIENTS)

    assert done.code == 0, done
    assert done.seconds < 60, "a 10-minute window must not hold the job"
    assert "stays up until" in done.report["message"]
    assert kube.apps.read_namespaced_deployment("hello", namespace).spec.replicas == 3
    status = deployer(namespace, "status", "--app", "hello")
    assert "rollback window: hello kept up until" in status.stdout

    with ServiceClient(kube, namespace) as poller:
        back = deployer(namespace, "-o", "json", "rollback", "--app", "hello")

    assert back.code == 0, back
    assert back.seconds < 20, "blue is still up: switching back needs no new pods"
    assert kube.core.read_namespaced_service("hello", namespace).spec.selector == APP_ONLY
    assert service_versions(kube, namespace) == {"1.0.0"}
    assert poller.failed == 0
    assert kube.apps.read_namespaced_deployment("hello-green", namespace).spec.replicas == 0


def test_rollback_in_a_watched_window_takes_over_without_force(namespace, deploy_hello, kube):
    deploy_hello(namespace)
    run = Background(namespace, "blue-green", "--app", "hello", "--image", "v2",
                     "--client-addresses", CLIENTS)
    wait_for(lambda: (run_record(kube, namespace) or {}).get("step", "").startswith(
        "keep hello up"), 90, 0.3, "the rollback window")

    back = deployer(namespace, "-o", "json", "rollback", "--app", "hello")
    first = run.wait(60)

    assert back.code == 0, back
    assert any("in its rollback window" in n for n in back.report["notes"]), back.report
    assert kube.core.read_namespaced_service("hello", namespace).spec.selector == APP_ONLY
    assert service_versions(kube, namespace) == {"1.0.0"}
    assert first.code == 4, first
    assert "stopped before writing" in first.stderr
    assert kube.apps.read_namespaced_deployment("hello", namespace).spec.replicas == 3


def test_the_lessons_version_labels_switch_by_version_and_roll_back(namespace, kube):
    # The classic blue-green lesson's shape: the version in the Deployment's selector and
    # in the Service's; the switch is a new value of that label, in the user's terms.
    v1 = {"app": "hello", "version": "1.0.0"}
    dep = lab.hello_deployment()
    dep["spec"]["selector"] = {"matchLabels": dict(v1)}
    dep["spec"]["template"]["metadata"]["labels"] = {**v1, "track": "stable"}
    svc = copy.deepcopy(lab.hello_manifests()[1])
    svc["spec"]["selector"] = dict(v1)
    kube.apps.create_namespaced_deployment(namespace, dep)
    kube.core.create_namespaced_service(namespace, svc)
    lab.wait_deployment_available(kube, namespace, "hello")

    def selector() -> dict[str, str]:
        return kube.core.read_namespaced_service("hello", namespace).spec.selector

    first = deployer(namespace, "blue-green", "--app", "hello", "--image", "v2",
                     "--keep-old", "0")
    assert first.code == 0, first
    assert selector() == {"app": "hello", "version": "2.0.0"}
    green = kube.apps.read_namespaced_deployment("hello-green", namespace)
    assert green.spec.selector.match_labels == {"app": "hello", "version": "2.0.0"}
    assert set(versions_by_pod(kube, namespace, "app=hello,version=2.0.0").values()) == {
        "2.0.0"}
    assert service_versions(kube, namespace) == {"2.0.0"}

    # the idle side selects version=1.0.0, which a selector cannot change: made again
    with ServiceClient(kube, namespace) as during:
        second = deployer(namespace, "blue-green", "--app", "hello", "--image", "v7",
                          "--keep-old", "0")
    assert second.code == 0, second
    assert "made again" in second.stdout + second.stderr
    assert kube.apps.read_namespaced_deployment("hello", namespace).spec.selector.match_labels \
        == {"app": "hello", "version": "7.0.0"}
    assert selector() == {"app": "hello", "version": "7.0.0"}
    assert service_versions(kube, namespace) == {"7.0.0"}
    assert during.failed == 0 and set(during.answers) <= {"2.0.0", "7.0.0"}

    back = deployer(namespace, "rollback", "--app", "hello")
    assert back.code == 0, back
    assert selector() == {"app": "hello", "version": "2.0.0"}
    assert service_versions(kube, namespace) == {"2.0.0"}
