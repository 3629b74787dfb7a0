"""RolloutVerifier.evaluate: rollout status, pod failure reasons, then /version per new pod."""

from __future__ import annotations

from typing import Any

import pytest

from deployer.health.http import ProbeOptions
from deployer.health.verifier import (
    RolloutVerifier,
    VerifyOptions,
    container_port,
    is_ready,
    new_replicaset,
    selector_of,
)
from deployer.model import HttpAnswer, Phase
from tests.unit.fakes import FakeGateway, deployment, labelled, pod, replicaset

SINCE = 1_893_456_000.0  # 2030-01-01T00:00:00Z, when the run began
NEW = {"app": "hello", "track": "stable", "pod-template-hash": "new"}
OLD = {**NEW, "pod-template-hash": "old"}


class Counting(FakeGateway):
    """Counts the pod proxy GETs and the pod listings per pod / selector."""

    def __init__(self, *deps: dict[str, Any]):
        super().__init__(*deps)
        self.gets: list[str] = []
        self.listings: list[str] = []

    def pod_get(self, pod, port, path):
        self.gets.append(f"{pod}:{port}{path}")
        return super().pod_get(pod, port, path)

    def list_pods(self, selector):
        self.listings.append(selector)
        return super().list_pods(selector)


def cluster(**dep_kw: Any) -> Counting:
    dep = deployment(image="hello:v2", **{"revision": 2, **dep_kw})
    gw = Counting(dep)
    gw.replicasets = [replicaset(dep, 1, "old", "hello:v1"), replicaset(dep, 2, "new")]
    return gw


def add_pod(gw: FakeGateway, name: str, version: str | HttpAnswer | None = "2.0.0", *,
            labels: dict[str, str] = NEW, **kw: Any) -> dict[str, Any]:
    p = labelled(pod(name, **kw), labels, ip=f"10.1.0.{len(gw.pods) + 2}")
    gw.pods.append(p)
    if version is not None:
        gw.pod_answers[name] = version
    return p


def verifier(gw: FakeGateway, expected: str | None = "2.0.0", **options: Any) -> RolloutVerifier:
    return RolloutVerifier(gw, "hello", expected, clock=lambda: 100.0, since=SINCE,
                           options=VerifyOptions(**options))


def three_new_pods(gw: FakeGateway) -> None:
    for i in range(3):
        add_pod(gw, f"hello-new-{i}")


# ------------------------------------------------------------------ /version


def test_every_ready_new_pod_must_answer_the_version_several_times_in_a_row():
    gw = cluster()
    three_new_pods(gw)
    add_pod(gw, "hello-old-0", "1.0.0", labels=OLD)  # an old pod, still terminating
    v = verifier(gw)
    first, second, third = v.evaluate(), v.evaluate(), v.evaluate()
    assert (first.phase, first.message) == (Phase.RUNNING, "0 of 3 pods verified as 2.0.0")
    assert second.phase is Phase.RUNNING
    assert (third.phase, third.message) == (Phase.SUCCESSFUL,
                                            "3 pods answer 2.0.0 (3 samples each)")
    assert third.completed
    assert third.pods == ("hello-new-0", "hello-new-1", "hello-new-2")
    assert [m.check for m in third.measurements] == ["rollout", "pod-failures", "http-version"]
    assert third.deployment is not None and third.deployment["metadata"]["name"] == "hello"
    assert len(gw.gets) == 9 and all(g.endswith(":8080/version") for g in gw.gets)
    assert gw.listings == ["app=hello,track=stable,pod-template-hash=new"] * 3
    v.evaluate()
    assert len(gw.gets) == 9  # verified pods are not asked again


def test_with_a_sidecar_first_the_deployed_containers_port_is_asked():
    gw = cluster()
    containers = gw.deployments["hello"]["spec"]["template"]["spec"]["containers"]
    containers.insert(0, {"name": "proxy", "image": "proxy:1",
                          "ports": [{"name": "admin", "containerPort": 15000}]})
    three_new_pods(gw)
    for _ in range(3):
        verifier(gw, container="hello").evaluate()
    assert gw.gets and all(g.endswith(":8080/version") for g in gw.gets), gw.gets


def test_pods_that_are_not_ready_or_terminating_are_not_asked():
    gw = cluster()
    add_pod(gw, "hello-new-0")
    add_pod(gw, "hello-new-1", ready=False)
    add_pod(gw, "hello-new-2")["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:05Z"
    v = verifier(gw, samples=1)
    e = v.evaluate()
    assert e.pods == ("hello-new-0", "hello-new-1")
    assert gw.gets == ["hello-new-0:8080/version"]
    assert (e.phase, e.message) == (Phase.SUCCESSFUL, "1 pods answer 2.0.0 (1 samples each)")


def test_a_pod_answering_another_version_fails_after_the_failure_limit():
    gw = cluster()
    add_pod(gw, "hello-new-0", "1.0.0")
    v = verifier(gw)
    assert [v.evaluate().phase for _ in range(2)] == [Phase.RUNNING, Phase.RUNNING]
    e = v.evaluate()
    assert (e.phase, e.message) == (Phase.FAILED, "hello-new-0 answers version '1.0.0', "
                                                  "expected '2.0.0' (3 samples in a row)")


def test_a_pod_that_cannot_be_read_is_an_error_after_the_error_limit():
    gw = cluster()
    add_pod(gw, "hello-new-0", HttpAnswer(503, b"no endpoints available"))
    v = verifier(gw, error_limit=2)
    assert v.evaluate().phase is Phase.RUNNING
    e = v.evaluate()
    assert (e.phase, e.message) == (Phase.ERROR, "could not read the version of hello-new-0: "
                                                 "HTTP 503 (2 samples in a row)")
    assert e.completed


def test_a_container_without_a_port_cannot_be_asked_unless_one_is_given():
    gw = cluster()
    del gw.deployments["hello"]["spec"]["template"]["spec"]["containers"][0]["ports"]
    add_pod(gw, "hello-new-0")
    e = verifier(gw).evaluate()
    assert (e.phase, e.message) == (Phase.ERROR, "the container declares no port; pass --port "
                                                 "for /version checks")
    assert e.measurements[-1].check == "http-version"
    assert gw.gets == []
    verifier(gw, port=9090, path="/healthz/version").evaluate()
    assert gw.gets == ["hello-new-0:9090/healthz/version"]


def test_without_an_expected_version_or_with_http_off_the_rollout_status_decides():
    for v in (verifier(cluster(), None), verifier(cluster(), "2.0.0", http_mode="off")):
        assert v.version_check is None
        e = v.evaluate()
        assert (e.phase, e.message) == (Phase.SUCCESSFUL,
                                        "deployment hello successfully rolled out")
        assert v.gateway.gets == []
        v.close()


def test_before_the_controller_made_the_new_replicaset_there_are_no_new_pods():
    gw = cluster()
    three_new_pods(gw)
    annotations = gw.deployments["hello"]["metadata"]["annotations"]
    annotations["deployment.kubernetes.io/revision"] = "3"  # its ReplicaSet is not made yet
    e = verifier(gw).evaluate()
    assert e.pods == ()
    assert (e.phase, e.message) == (Phase.RUNNING, "0 of 0 pods verified as 2.0.0")
    assert gw.gets == []


# ------------------------------------------------------------------ rollout status, failures


def test_an_unobserved_spec_is_waited_for_without_listing_pods():
    gw = cluster(generation=2, observed=1)
    three_new_pods(gw)
    e = verifier(gw).evaluate()
    assert (e.phase, e.pods) == (Phase.RUNNING, ())
    assert e.message == "waiting for the controller to observe hello (generation 2, observed 1)"
    assert gw.listings == []


def test_a_rollout_in_progress_is_running_and_no_pod_is_asked_yet():
    gw = cluster(updated=1)
    add_pod(gw, "hello-new-0")
    e = verifier(gw).evaluate()
    assert (e.phase, e.message) == (Phase.RUNNING, "1 of 3 new replicas have been updated")
    assert e.pods == ("hello-new-0",)
    assert gw.gets == []


def test_a_rollout_in_progress_says_what_its_pods_wait_for_when_it_may_pass():
    gw = cluster(updated=1)
    add_pod(gw, "hello-new-0", waiting="ErrImagePull", ready=False,
            message="rpc error: code = Unknown desc = failed to pull and unpack image "
                    '"reg:5000/private/hello:v2": failed to resolve reference '
                    '"reg:5000/private/hello:v2": pulling from host reg:5000 failed with '
                    "status code [manifests v2]: 429 Too Many Requests")
    e = verifier(gw).evaluate()
    assert e.phase is Phase.RUNNING
    assert e.message == ("1 of 3 new replicas have been updated; hello-new-0/hello: image pull "
                         'failing for 0s, may pass (retrying up to 60s): …hello:v2": pulling '
                         "from host reg:5000 failed with status code [manifests v2]: 429 Too "
                         "Many Requests")


def test_a_paused_deployment_is_not_taken_for_progress():
    gw = cluster()
    gw.deployments["hello"]["spec"]["paused"] = True
    three_new_pods(gw)
    e = verifier(gw).evaluate()
    assert (e.phase, e.message) == (Phase.RUNNING, "deployment hello is paused: Kubernetes does "
                                                   "not make or check progress while paused")
    assert gw.gets == []


def test_a_pod_failure_fails_the_evaluation_with_the_failures():
    gw = cluster(updated=1, available=0)
    add_pod(gw, "hello-new-0", None, waiting="ErrImagePull", ready=False,
            message="failed to pull and unpack image: not found")
    e = verifier(gw).evaluate()
    assert e.phase is Phase.FAILED and e.completed
    assert e.message == ("hello-new-0/hello: ErrImagePull (image hello:v2): failed to pull and "
                         "unpack image: not found")
    assert [(f.pod, f.reason) for f in e.failures] == [("hello-new-0", "ErrImagePull")]
    assert e.pods == ("hello-new-0",)


def test_a_progress_deadline_exceeded_during_this_run_fails_it():
    deadline = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                 "message": "ReplicaSet \"hello-new\" has timed out progressing.",
                 "lastUpdateTime": "2030-01-01T00:05:00Z"}]
    gw = cluster(updated=1, conditions=deadline)
    e = verifier(gw).evaluate()
    assert e.phase is Phase.FAILED
    assert e.message == ("deployment hello exceeded its progress deadline: ReplicaSet "
                         "\"hello-new\" has timed out progressing.")
    assert e.failures == ()


def test_a_deployment_deleted_or_recreated_during_the_run_fails_it():
    gw = cluster()
    v = verifier(gw)
    v.evaluate()
    gw.deployments["hello"]["metadata"]["uid"] = "uid-someone-elses-hello"
    e = v.evaluate()
    assert (e.phase, e.message) == (Phase.FAILED, "deployment hello was deleted and recreated "
                                                  "during the run; not following the new object")
    del gw.deployments["hello"]
    e = v.evaluate()
    assert (e.phase, e.message) == (Phase.FAILED, "deployment hello was deleted during the run")
    assert e.deployment is None


# ------------------------------------------------------------------ the helpers


def test_the_new_replicaset_is_the_deployments_own_at_its_current_revision():
    dep = deployment(revision=4)
    foreign = replicaset(dep, 4, "zzz", owner_uid="uid-other")
    mine = replicaset(dep, 4, "abc")
    assert new_replicaset(dep, [replicaset(dep, 3, "old"), foreign, mine]) is mine
    assert new_replicaset(dep, [replicaset(dep, 3, "old"), foreign]) is None
    del dep["metadata"]["uid"]  # without a uid to compare, the revision alone decides
    assert new_replicaset(dep, [foreign]) is foreign


def test_the_port_is_the_override_else_the_http_port_else_the_first():
    dep = deployment()
    containers = dep["spec"]["template"]["spec"]["containers"]
    containers[0]["ports"] = [{"name": "metrics", "containerPort": 9100},
                              {"name": "http", "containerPort": 8080}]
    containers.append({"name": "sidecar", "image": "proxy:1",
                       "ports": [{"containerPort": 15001}]})
    assert container_port(dep, None, None) == 8080
    assert container_port(dep, "sidecar", None) == 15001
    assert container_port(dep, "hello", "web") == "web"
    containers[0]["ports"] = [{"name": "metrics", "containerPort": 9100}]
    assert container_port(dep, "hello", None) == 9100
    assert container_port(dep, "missing", None) is None
    containers[0]["ports"] = []
    assert container_port(dep, "hello", None) is None


def test_readiness_and_selectors_read_from_the_objects():
    assert is_ready(pod("a"))
    assert not is_ready(pod("b", ready=False))
    assert not is_ready({"status": {"conditions": [{"type": "PodScheduled", "status": "True"}]}})
    assert not is_ready({"metadata": {"name": "c"}})
    assert selector_of(deployment()) == "app=hello,track=stable"
    assert selector_of({"spec": {}}) == ""


@pytest.mark.parametrize("mode, via", [("proxy", "proxy"), ("pod-ip", "pod-ip"),
                                       ("url", "url"), ("off", "proxy")])
def test_the_http_mode_chooses_how_pods_are_asked(mode, via):
    options = VerifyOptions(http_mode=mode, url_template="https://{pod_ip}:8443/v",
                            path="/v")
    assert options.probe == ProbeOptions(via, "/v", "https://{pod_ip}:8443/v")


def test_a_quota_refusal_is_passing_while_old_pods_terminate_or_the_quota_has_room():
    from deployer.health.verifier import RolloutVerifier, quota_has_room
    from tests.unit.fakes import FakeGateway, deployment, pod

    message = ('pods "hello-x" is forbidden: exceeded quota: compute, requested: pods=1, '
               'used: pods=4, limited: pods=4')
    dep = deployment(conditions=[{"type": "ReplicaFailure", "status": "True",
                                  "reason": "FailedCreate", "message": message}])
    gw = FakeGateway(dep)
    full = {"metadata": {"name": "compute"},
            "status": {"hard": {"pods": "4"}, "used": {"pods": "4"}}}
    gw.quotas = [full]
    assert not quota_has_room(gw, message)
    gw.quotas = [{**full, "status": {"hard": {"pods": "4"}, "used": {"pods": "3"}}}]
    assert quota_has_room(gw, message)
    gw.denied.add(("list", "", "resourcequotas", ""))
    assert not quota_has_room(gw, message), "unreadable: not assumed to have room"

    gw.denied.clear()
    gw.quotas = [full]
    verifier = RolloutVerifier(gw, "hello", "2.0.0", clock=lambda: 100.0, since=SINCE)
    assert not verifier.quota_freeing(dep)
    leaving = pod("hello-old")
    leaving["metadata"]["labels"] = {"app": "hello", "track": "stable"}
    leaving["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    gw.pods.append(leaving)
    assert verifier.quota_freeing(dep)


def test_the_verifier_reads_scale_up_events_of_unschedulable_pods_only():
    from tests.unit.fakes import FakeGateway, deployment, pod

    gw = FakeGateway(deployment())
    gw.events["a"] = [{"reason": "TriggeredScaleUp", "message": "pod triggered scale-up"}]
    gw.events["b"] = [{"reason": "FailedScheduling", "message": "no room"}]
    pods = [pod("a", unschedulable="no room"), pod("b", unschedulable="no room"), pod("c")]
    assert verifier(gw).scaling_up(pods) == frozenset({"a"})
