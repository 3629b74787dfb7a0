"""RolloutVerifier.evaluate: rollout status, pod failure reasons, then /version per new pod."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from deployer.health.http import ProbeOptions
from deployer.health.verifier import (
    ANSWER_SPACING,
    SAMPLE_SPACING,
    SCALE_UP_RECHECK,
    Evaluation,
    RolloutVerifier,
    VerifyOptions,
    container_port,
    is_ready,
    new_replicaset,
    selector_of,
)
from deployer.model import HttpAnswer, Phase
from tests.unit.fakes import FakeFeed, FakeGateway, deployment, labelled, pod, replicaset
from tests.unit.harness import Clock

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

    def get_deployment(self, name):
        self.listings.append(f"deployment {name}")
        return super().get_deployment(name)

    def list_replicasets(self, selector):
        self.listings.append(f"replicasets {selector}")
        return super().list_replicasets(selector)


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


def verifier(gw: FakeGateway, expected: str | None = "2.0.0", *, clock: Clock | None = None,
             **options: Any) -> RolloutVerifier:
    return RolloutVerifier(gw, "hello", expected, clock=clock or Clock(), since=SINCE,
                           options=VerifyOptions(**options))


def paced(v: RolloutVerifier, feed: Any = None) -> Evaluation:
    """One evaluation, a sample's spacing after the last: every pod is due again."""
    assert isinstance(v.clock, Clock)
    v.clock.tick(SAMPLE_SPACING)
    return v.evaluate(feed)


def three_new_pods(gw: FakeGateway) -> None:
    for i in range(3):
        add_pod(gw, f"hello-new-{i}")


# ------------------------------------------------------------------ /version


def test_every_ready_new_pod_must_answer_the_version_several_times_in_a_row():
    gw = cluster()
    three_new_pods(gw)
    add_pod(gw, "hello-old-0", "1.0.0", labels=OLD)  # an old pod, still terminating
    v = verifier(gw)
    first, second, third = v.evaluate(), paced(v), paced(v)
    assert (first.phase, first.message) == (Phase.RUNNING, "0 of 3 pods verified as 2.0.0")
    assert first.next_sample == ANSWER_SPACING  # they answered: asked again soon
    assert second.phase is Phase.RUNNING
    assert (third.phase, third.message) == (Phase.SUCCESSFUL,
                                            "3 pods answer 2.0.0 (3 samples each)")
    assert third.completed and third.next_sample is None
    assert third.pods == ("hello-new-0", "hello-new-1", "hello-new-2")
    assert [m.check for m in third.measurements] == ["rollout", "pod-failures", "http-version"]
    assert third.deployment is not None and third.deployment["metadata"]["name"] == "hello"
    assert len(gw.gets) == 9 and all(g.endswith(":8080/version") for g in gw.gets)
    assert gw.listings == ["deployment hello", "replicasets app=hello,track=stable",
                           "app=hello,track=stable,pod-template-hash=new"] * 3
    paced(v)
    assert len(gw.gets) == 9  # verified pods are not asked again


def watched(gw: FakeGateway, out_of_step: frozenset[str] = frozenset()) -> FakeFeed:
    """A watch of the fake cluster that answers from what it saw, not through reads."""
    return FakeFeed(lambda: None, reads={
        "deployment": lambda: [copy.deepcopy(d) for d in gw.deployments.values()],
        "replicasets": lambda: copy.deepcopy(gw.replicasets),
        "pods": lambda: copy.deepcopy(gw.pods)}, out_of_step=out_of_step)


def test_with_watches_in_step_the_verifier_sends_no_read_only_the_version_samples():
    gw = cluster()
    three_new_pods(gw)
    add_pod(gw, "hello-old-0", "1.0.0", labels=OLD)
    gw.deployments["hello-canary"] = deployment("hello-canary", "hello:v2")  # not ours
    v, feed = verifier(gw), watched(gw)
    first = v.evaluate(feed)
    assert first.pods == ("hello-new-0", "hello-new-1", "hello-new-2")
    e = [paced(v, feed) for _ in range(2)][-1]
    assert (e.phase, e.message) == (Phase.SUCCESSFUL, "3 pods answer 2.0.0 (3 samples each)")
    assert gw.listings == []
    assert len(gw.gets) == 9
    assert sorted(set(feed.served)) == ["deployment", "pods", "replicasets"]


def test_a_watch_out_of_step_is_replaced_by_a_read_of_that_source_only():
    gw = cluster()
    three_new_pods(gw)
    e = verifier(gw).evaluate(watched(gw, out_of_step=frozenset({"pods"})))
    assert e.pods == ("hello-new-0", "hello-new-1", "hello-new-2")
    assert gw.listings == ["app=hello,track=stable,pod-template-hash=new"]


def test_a_deployment_the_watch_saw_deleted_fails_the_rollout():
    gw = cluster()
    v = verifier(gw)
    v.evaluate(watched(gw))
    del gw.deployments["hello"]
    e = v.evaluate(watched(gw))
    assert (e.phase, e.message) == (Phase.FAILED, "deployment hello was deleted during the run")


def test_a_pod_that_answered_is_asked_again_only_an_answers_spacing_later():
    gw = cluster()
    three_new_pods(gw)
    v = verifier(gw)
    v.evaluate()
    assert isinstance(v.clock, Clock)
    v.clock.tick(ANSWER_SPACING * 0.4)
    woken = v.evaluate()  # a watch woke the run early: nobody is due yet
    assert len(gw.gets) == 3
    assert woken.next_sample == pytest.approx(ANSWER_SPACING * 0.6)
    v.clock.tick(ANSWER_SPACING * 0.6)
    v.evaluate()
    assert len(gw.gets) == 6


def test_a_pod_that_did_not_answer_is_asked_again_a_samples_spacing_later():
    gw = cluster(updated=1)
    add_pod(gw, "hello-new-0", HttpAnswer(None, error="connection refused"),
            ready=False)
    v = verifier(gw)
    first = v.evaluate()
    assert first.next_sample == SAMPLE_SPACING > ANSWER_SPACING
    assert isinstance(v.clock, Clock)
    v.clock.tick(ANSWER_SPACING)
    v.evaluate()
    assert gw.gets == ["hello-new-0:8080/version"]  # not due yet
    v.clock.tick(SAMPLE_SPACING - ANSWER_SPACING)
    v.evaluate()
    assert gw.gets == ["hello-new-0:8080/version"] * 2


def test_with_a_sidecar_first_the_deployed_containers_port_is_asked():
    gw = cluster()
    containers = gw.deployments["hello"]["spec"]["template"]["spec"]["containers"]
    containers.insert(0, {"name": "proxy", "image": "proxy:1",
                          "ports": [{"name": "admin", "containerPort": 15000}]})
    three_new_pods(gw)
    v = verifier(gw, container="hello")
    for _ in range(3):
        paced(v)
    assert gw.gets and all(g.endswith(":8080/version") for g in gw.gets), gw.gets


def test_pods_are_asked_once_they_run_and_terminating_ones_not_at_all():
    gw = cluster(replicas=2)
    add_pod(gw, "hello-new-0")
    add_pod(gw, "hello-new-1", HttpAnswer(503, b"starting"), ready=False)
    add_pod(gw, "hello-new-2")["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:05Z"
    add_pod(gw, "hello-new-3", waiting="ContainerCreating", ready=False)  # not running
    v = verifier(gw, samples=1, error_limit=2)
    e = v.evaluate()
    assert e.pods == ("hello-new-0", "hello-new-1", "hello-new-3")
    assert gw.gets == ["hello-new-0:8080/version", "hello-new-1:8080/version"]
    assert (e.phase, e.message) == (Phase.RUNNING, "1 of 2 pods verified as 2.0.0")
    for _ in range(3):  # a pod that is not Ready yet may not answer: not held against it
        e = paced(v)
    assert (e.phase, e.message) == (Phase.RUNNING, "1 of 2 pods verified as 2.0.0")
    gw.pod_answers["hello-new-1"] = "2.0.0"  # it answers before it is Ready
    e = paced(v)
    assert e.phase is Phase.RUNNING  # verified, but the Deployment counts 2 and 1 is Ready
    gw.pods[1]["status"]["conditions"][0]["status"] = "True"
    e = paced(v)
    assert (e.phase, e.message) == (Phase.SUCCESSFUL, "2 pods answer 2.0.0 (1 samples each)")
    assert gw.gets.count("hello-new-1:8080/version") == 5  # not asked once it was verified


def test_a_pod_answering_another_version_fails_after_the_failure_limit():
    gw = cluster()
    add_pod(gw, "hello-new-0", "1.0.0")
    v = verifier(gw)
    assert [paced(v).phase for _ in range(2)] == [Phase.RUNNING, Phase.RUNNING]
    e = paced(v)
    assert (e.phase, e.message) == (Phase.FAILED, "hello-new-0 answers version '1.0.0', "
                                                  "expected '2.0.0' (3 samples in a row)")


def test_a_pod_not_ready_yet_that_answers_another_version_fails_while_the_rollout_runs():
    gw = cluster(updated=1, available=0)
    add_pod(gw, "hello-new-0", "5.0.0", ready=False)
    v = verifier(gw)
    assert [paced(v).phase for _ in range(2)] == [Phase.RUNNING, Phase.RUNNING]
    e = paced(v)
    assert (e.phase, e.message) == (Phase.FAILED, "hello-new-0 answers version '5.0.0', "
                                                  "expected '2.0.0' (3 samples in a row)")
    assert e.measurements[-1].check == "http-version"


def test_a_pod_that_cannot_be_read_is_an_error_after_the_error_limit():
    gw = cluster()
    add_pod(gw, "hello-new-0", HttpAnswer(503, b"no endpoints available"))
    v = verifier(gw, error_limit=2)
    assert paced(v).phase is Phase.RUNNING
    e = paced(v)
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
    assert (e.phase, e.message) == (Phase.RUNNING, "0 of 3 pods verified as 2.0.0")
    assert gw.gets == []


# ------------------------------------------------------------------ rollout status, failures


def test_an_unobserved_spec_is_waited_for_without_listing_pods():
    gw = cluster(generation=2, observed=1)
    three_new_pods(gw)
    e = verifier(gw).evaluate()
    assert (e.phase, e.pods) == (Phase.RUNNING, ())
    assert e.message == "waiting for the controller to observe hello (generation 2, observed 1)"
    assert gw.listings == ["deployment hello"]


def test_a_rollout_in_progress_is_running_and_its_new_pods_are_asked_already():
    gw = cluster(updated=1)
    add_pod(gw, "hello-new-0")
    e = verifier(gw).evaluate()
    assert (e.phase, e.message) == (Phase.RUNNING, "1 of 3 new replicas have been updated")
    assert e.pods == ("hello-new-0",)
    assert gw.gets == ["hello-new-0:8080/version"]
    assert e.next_sample == ANSWER_SPACING


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


def test_a_new_pod_short_of_room_waits_while_old_pods_terminate_and_only_then():
    gw = cluster(updated=1, available=0)
    add_pod(gw, "hello-new-0", unschedulable="0/1 nodes are available: 1 Too many pods.",
            ready=False)
    old = add_pod(gw, "hello-old-0", "1.0.0", labels=OLD)
    old["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:05Z"
    clock = Clock()
    v = verifier(gw, clock=clock)
    clock.tick(30)
    e = v.evaluate(watched(gw))
    assert e.phase is Phase.RUNNING and "while 1 of the app's pods terminate" in e.message
    gw.pods.remove(old)
    v.evaluate(watched(gw))
    clock.tick(10)
    assert v.evaluate(watched(gw)).phase is Phase.FAILED


def test_a_rollback_being_restored_is_seen_through_before_a_wrong_answer_ends_it():
    gw = cluster(updated=1, available=1)
    add_pod(gw, "hello-new-0", "ok")  # a URL that answers something else than a version
    for see_through, phases in ((False, [Phase.RUNNING, Phase.RUNNING, Phase.FAILED]),
                                (True, [Phase.RUNNING] * 4)):
        v = RolloutVerifier(gw, "hello", "2.0.0", clock=Clock(), since=SINCE,
                            see_through=see_through)
        assert [paced(v).phase for _ in range(len(phases))] == phases
    gw.deployments["hello"]["status"].update(updatedReplicas=3, availableReplicas=3)
    e = paced(v)
    assert (e.phase, e.message) == (Phase.FAILED, "hello-new-0 answers version 'ok', "
                                                  "expected '2.0.0' (5 samples in a row)")


class EventCounting(FakeGateway):
    def __init__(self, *deps: dict[str, Any]):
        super().__init__(*deps)
        self.event_reads: list[str] = []

    def list_events(self, object_name):
        self.event_reads.append(object_name)
        return super().list_events(object_name)


def test_an_unschedulable_pods_events_are_read_again_only_every_few_seconds():
    gw = EventCounting(deployment())
    pods = [pod("a", unschedulable="0/1 nodes are available: 1 Insufficient cpu.")]
    clock = Clock()
    v = verifier(gw, clock=clock)
    for _ in range(5):  # five wake-ups within a second
        assert v.scaling_up(pods) == frozenset()
        clock.tick(0.2)
    assert gw.event_reads == ["a"]
    gw.events["a"] = [{"reason": "TriggeredScaleUp", "message": "pod triggered scale-up"}]
    clock.tick(SCALE_UP_RECHECK)
    assert v.scaling_up(pods) == frozenset({"a"})
    assert v.scaling_up(pods) == frozenset({"a"}) and gw.event_reads == ["a", "a"]


def test_no_scale_up_is_looked_for_while_the_apps_own_pods_free_the_room_it_wants():
    gw = EventCounting(deployment())
    full = [pod("a", unschedulable="0/1 nodes are available: 1 Too many pods.")]
    assert verifier(gw).scaling_up(full, terminating=3) == frozenset()
    assert gw.event_reads == []
    tainted = [pod("b", unschedulable="0/1 nodes are available: 1 node(s) had taint.")]
    verifier(gw).scaling_up(tainted, terminating=3)
    assert gw.event_reads == ["b"]
