"""Pod failure reasons: final ones fail at once, transient ones only when they persist."""

import pytest

from deployer.health.pods import PodFailureCheck, not_ready_reasons
from deployer.model import Phase
from tests.unit.fakes import deployment, pod


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def check() -> tuple[PodFailureCheck, Clock]:
    clock = Clock()
    return PodFailureCheck(clock=clock), clock


def test_healthy_pods_pass():
    c, _ = check()
    m, failures = c.evaluate([pod("a"), pod("b")])
    assert m.phase is Phase.SUCCESSFUL and failures == []


def test_image_pull_backoff_fails_at_once_naming_container_and_image():
    c, _ = check()
    m, failures = c.evaluate([pod("a", waiting="ImagePullBackOff", image="hello:v9",
                                  message='Back-off pulling image "hello:v9"')])
    assert m.phase is Phase.FAILED
    assert failures[0].reason == "ImagePullBackOff"
    assert "a/hello" in m.message and "hello:v9" in m.message


def test_err_image_pull_not_found_fails_at_once():
    c, _ = check()
    m, _ = c.evaluate([pod("a", waiting="ErrImagePull",
                           message="rpc error: docker.io/library/hello:v9: not found")])
    assert m.phase is Phase.FAILED


def test_other_err_image_pull_must_persist():
    c, clock = check()
    flaky = [pod("a", waiting="ErrImagePull", message="dial tcp: connection refused")]
    m, _ = c.evaluate(flaky)
    assert m.phase is Phase.RUNNING
    clock.now += 11
    m, _ = c.evaluate(flaky)
    assert m.phase is Phase.FAILED


def test_single_crash_is_not_fatal_but_a_crash_loop_is():
    c, _ = check()
    m, _ = c.evaluate([pod("a", waiting="CrashLoopBackOff", restarts=0, exit_code=3)])
    assert m.phase is Phase.RUNNING
    m, failures = c.evaluate([pod("a", waiting="CrashLoopBackOff", restarts=1, exit_code=3)])
    assert m.phase is Phase.FAILED
    assert failures[0].exit_code == 3
    assert "exited with code 3" in failures[0].message


def test_config_error_that_clears_resets_its_clock():
    c, clock = check()
    bad = [pod("a", waiting="CreateContainerConfigError", message="failed to sync configmap")]
    assert c.evaluate(bad)[0].phase is Phase.RUNNING
    clock.now += 10
    assert c.evaluate([pod("a")])[0].phase is Phase.SUCCESSFUL
    clock.now += 10
    assert c.evaluate(bad)[0].phase is Phase.RUNNING  # seen again: starts from zero


def test_unschedulable_fails_with_the_scheduler_message_once_it_persists():
    c, clock = check()
    pods = [pod("a", unschedulable="0/1 nodes are available: 1 Insufficient cpu.")]
    assert c.evaluate(pods)[0].phase is Phase.RUNNING
    clock.now += 10
    m, failures = c.evaluate(pods)
    assert m.phase is Phase.FAILED
    assert "Insufficient cpu" in failures[0].message


def test_evicted_pod_is_a_transient_blip():
    c, _ = check()
    evicted = pod("a", phase="Failed")
    evicted["status"]["reason"] = "Evicted"
    assert c.evaluate([evicted, pod("b")])[0].phase is Phase.SUCCESSFUL


def test_replica_failure_condition_on_the_deployment_fails_when_it_persists():
    c, clock = check()
    dep = deployment(conditions=[{"type": "ReplicaFailure", "status": "True",
                                  "reason": "FailedCreate",
                                  "message": "exceeded quota: pods=3"}])
    assert c.evaluate([], dep)[0].phase is Phase.RUNNING
    clock.now += 10
    m, failures = c.evaluate([], dep)
    assert m.phase is Phase.FAILED and "exceeded quota" in m.message


def waiting_pod(name: str, *containers: tuple[str, str, str], init: tuple[str, ...] = (),
                phase: str = "Pending") -> dict:
    """A pod whose containers (name, waiting reason, message) wait; `init` ones are init."""
    def status(c: str, reason: str, message: str) -> dict:
        return {"name": c, "state": {"waiting": {"reason": reason, "message": message}},
                "restartCount": 0, "image": f"{c}:status"}
    spec_init = [{"name": c, "image": f"{c}:v2"} for c, _, _ in containers if c in init]
    spec = [{"name": c, "image": f"{c}:v2"} for c, _, _ in containers if c not in init]
    return {
        "metadata": {"name": name},
        "spec": {"initContainers": spec_init, "containers": spec},
        "status": {"phase": phase, "conditions": [],
                   "initContainerStatuses": [status(*c) for c in containers if c[0] in init],
                   "containerStatuses": [status(*c) for c in containers if c[0] not in init]},
    }


def test_the_failure_message_names_pod_container_reason_image_and_message():
    c, _ = check()
    m, failures = c.evaluate([pod("a", waiting="ImagePullBackOff", image="hello:v9",
                                  message='Back-off pulling image "hello:v9"')])
    assert m.check == "pod-failures"
    assert m.message == ('a/hello: ImagePullBackOff (image hello:v9): '
                         'Back-off pulling image "hello:v9"')
    assert m.details == {"failures": [f.to_json() for f in failures]}
    assert (failures[0].pod, failures[0].container, failures[0].image) == (
        "a", "hello", "hello:v9")


def test_a_failure_without_message_or_image_ends_at_its_reason():
    c, _ = check()
    bad = {"metadata": {"name": "a"},
           "status": {"containerStatuses": [{"name": "x", "state": {"waiting": {
               "reason": "InvalidImageName"}}}]}}
    m, failures = c.evaluate([bad])
    assert m.message == "a/x: InvalidImageName"
    assert failures[0].image is None and failures[0].message == ""


def test_image_falls_back_to_the_container_status_when_the_spec_lacks_it():
    c, _ = check()
    p = waiting_pod("a", ("web", "ErrImageNeverPull", "never pull"))
    p["spec"]["containers"] = []
    _, failures = c.evaluate([p])
    assert failures[0].image == "web:status"


def test_init_containers_are_checked_first_with_their_own_image():
    c, _ = check()
    p = waiting_pod("a", ("web", "ImagePullBackOff", "web back-off"),
                    ("migrate", "InvalidImageName", "bad name"), init=("migrate",))
    m, failures = c.evaluate([p])
    assert [(f.container, f.reason, f.image) for f in failures] == [
        ("migrate", "InvalidImageName", "migrate:v2"), ("web", "ImagePullBackOff", "web:v2")]
    assert m.message.startswith("a/migrate: InvalidImageName (image migrate:v2)")


def test_failures_keep_the_order_of_pods_then_the_deployment():
    c, clock = check()
    dep = deployment(conditions=[{"type": "ReplicaFailure", "status": "True",
                                  "reason": "FailedCreate", "message": "quota"}])
    pods = [pod("b", waiting="ImagePullBackOff"), pod("a", unschedulable="no room"),
            pod("c", waiting="ErrImageNeverPull")]
    c.evaluate(pods, dep)
    clock.now += 10
    _, failures = c.evaluate(pods, dep)
    assert [(f.pod, f.reason) for f in failures] == [
        ("b", "ImagePullBackOff"), ("a", "Unschedulable"), ("c", "ErrImageNeverPull"),
        ("hello", "FailedCreate")]


def test_a_pod_that_failed_for_good_is_a_failure_at_once():
    c, _ = check()
    failed = pod("a", phase="Failed")
    failed["status"].update(reason="DeadlineExceeded", message="job ran too long")
    m, failures = c.evaluate([failed])
    assert m.phase is Phase.FAILED
    assert (failures[0].pod, failures[0].container, failures[0].reason,
            failures[0].message) == ("a", None, "DeadlineExceeded", "job ran too long")
    assert m.message == "a: DeadlineExceeded: job ran too long"


def test_a_pod_failed_without_a_reason_is_reported_as_failed():
    c, _ = check()
    _, failures = c.evaluate([pod("a", phase="Failed")])
    assert (failures[0].reason, failures[0].message) == ("Failed", "pod failed")


def test_the_containers_of_a_transiently_failed_pod_are_not_looked_at():
    c, _ = check()
    for reason in ("Evicted", "Preempting", "Shutdown", "NodeShutdown", "Terminated"):
        failed = pod("a", phase="Failed", waiting="ImagePullBackOff")
        failed["status"]["reason"] = reason
        m, failures = c.evaluate([failed])
        assert m.phase is Phase.SUCCESSFUL and failures == [], reason


def test_terminating_pods_are_skipped():
    c, _ = check()
    going = pod("a", waiting="ImagePullBackOff")
    going["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    m, failures = c.evaluate([going, pod("b")])
    assert m.phase is Phase.SUCCESSFUL and failures == []
    assert m.message == "no failure reason on 2 pods"


def test_containers_that_are_starting_or_in_an_unknown_wait_are_not_failures():
    c, _ = check()
    pods = [pod("a", waiting="ContainerCreating"), pod("b", waiting="PodInitializing"),
            pod("c", waiting="SomethingNew")]
    m, failures = c.evaluate(pods)
    assert m.phase is Phase.SUCCESSFUL and failures == []


def test_replica_failure_reports_how_long_until_it_has_persisted():
    c, clock = check()
    dep = deployment(conditions=[{"type": "ReplicaFailure", "status": "True",
                                  "reason": "FailedCreate", "message": "exceeded quota: pods=3"}])
    m, failures = c.evaluate([], dep)
    assert m.phase is Phase.RUNNING and failures == []
    assert m.message == "cannot create pods for 0s: exceeded quota: pods=3"
    clock.now += 9
    assert c.evaluate([], dep)[0].message == "cannot create pods for 9s: exceeded quota: pods=3"
    clock.now += 1
    m, failures = c.evaluate([], dep)
    assert m.phase is Phase.FAILED
    assert (failures[0].pod, failures[0].container, failures[0].reason, failures[0].message) == (
        "hello", None, "FailedCreate", "exceeded quota: pods=3")
    assert m.message == "hello: FailedCreate: exceeded quota: pods=3"


def test_replica_failure_without_reason_or_message_is_named_for_the_condition():
    c, clock = check()
    dep = deployment(conditions=[{"type": "ReplicaFailure", "status": "True"}])
    assert c.evaluate([], dep)[0].message == "cannot create pods for 0s: "
    clock.now += 10
    m, failures = c.evaluate([], dep)
    assert (failures[0].reason, failures[0].message) == ("ReplicaFailure", "")
    assert m.message == "hello: ReplicaFailure"


def test_a_replica_failure_condition_that_is_not_true_is_not_a_failure():
    c, clock = check()
    dep = deployment(conditions=[{"type": "ReplicaFailure", "status": "False",
                                  "reason": "FailedCreate"},
                                 {"type": "Available", "status": "True"}])
    c.evaluate([], dep)
    clock.now += 60
    assert c.evaluate([], dep)[0].phase is Phase.SUCCESSFUL


def test_replica_failure_that_clears_resets_its_clock():
    c, clock = check()
    dep = deployment(conditions=[{"type": "ReplicaFailure", "status": "True", "message": "q"}])
    c.evaluate([], dep)
    clock.now += 9
    assert c.evaluate([], deployment())[0].phase is Phase.SUCCESSFUL
    clock.now += 9
    assert c.evaluate([], dep)[0].message == "cannot create pods for 0s: q"


def test_err_image_pull_without_a_not_found_message_is_final_after_ten_seconds():
    c, clock = check()
    flaky = [pod("a", waiting="ErrImagePull", message="dial tcp: connect: connection refused")]
    m, failures = c.evaluate(flaky)
    assert (m.phase, m.message, failures) == (Phase.RUNNING, "a/hello ErrImagePull for 0s", [])
    clock.now += 9.4
    assert c.evaluate(flaky)[0].message == "a/hello ErrImagePull for 9s"
    clock.now += 0.6
    m, failures = c.evaluate(flaky)
    assert m.phase is Phase.FAILED
    assert (failures[0].reason, failures[0].message) == (
        "ErrImagePull", "dial tcp: connect: connection refused")


def test_every_not_found_wording_makes_err_image_pull_final_at_once():
    for message in ("manifest unknown", "pull access denied",
                    "repository does not exist", "dial tcp: lookup r.io: no such host",
                    "docker.io/hello:v9: NOT FOUND", "401 Unauthorized",
                    "denied: requested access to the resource is denied"):
        c, _ = check()
        m, _ = c.evaluate([pod("a", waiting="ErrImagePull", message=message)])
        assert m.phase is Phase.FAILED, message


def test_a_registry_the_node_cannot_reach_makes_the_pull_final_at_once():
    # the lab's hello:v9, and any image on a node without a route to its registry
    message = ('failed to do request: Head "https://registry-1.docker.io/v2/library/hello/'
               'manifests/v9": dial tcp: lookup registry-1.docker.io on 10.255.255.53:53: '
               'dial udp 10.255.255.53:53: connect: network is unreachable')
    for reason in ("ErrImagePull", "ImagePullBackOff"):
        c, _ = check()
        m, failures = c.evaluate([pod("a", waiting=reason, message=message)])
        assert m.phase is Phase.FAILED, reason
        assert failures[0].message == message
    c, _ = check()
    m, _ = c.evaluate([pod("a", waiting="ErrImagePull", message="connect: no route to host")])
    assert m.phase is Phase.FAILED


def test_a_final_err_image_pull_does_not_keep_the_persisting_clock_running():
    c, clock = check()
    timeout = [pod("a", waiting="ErrImagePull", message="connection refused")]
    c.evaluate(timeout)
    clock.now += 5
    assert c.evaluate([pod("a", waiting="ErrImagePull", message="not found")])[0].phase \
        is Phase.FAILED
    clock.now += 6
    assert c.evaluate(timeout)[0].message == "a/hello ErrImagePull for 0s"


def test_a_reason_that_disappears_is_forgotten():
    c, clock = check()
    bad = [pod("a", waiting="RunContainerError")]
    c.evaluate(bad)
    clock.now += 14
    assert c.evaluate([pod("a", waiting="CreateContainerError")])[0].message == \
        "a/hello CreateContainerError for 0s"
    clock.now += 14
    m, _ = c.evaluate(bad)
    assert m.phase is Phase.RUNNING and m.message == "a/hello RunContainerError for 0s"


def test_persistence_is_counted_per_pod():
    c, clock = check()
    c.evaluate([pod("a", waiting="CreateContainerError")])
    clock.now += 15
    m, failures = c.evaluate([pod("a", waiting="CreateContainerError"),
                              pod("b", waiting="CreateContainerError")])
    assert [f.pod for f in failures] == ["a"]
    assert m.phase is Phase.FAILED


@pytest.mark.parametrize("reason", ["CreateContainerConfigError", "CreateContainerError",
                                    "RunContainerError"])
def test_container_creation_errors_are_final_after_fifteen_seconds(reason):
    c, clock = check()
    bad = [pod("a", waiting=reason, message='configmap "cfg" not found')]
    assert c.evaluate(bad)[0].phase is Phase.RUNNING
    clock.now += 14
    m, _ = c.evaluate(bad)
    assert (m.phase, m.message) == (Phase.RUNNING, f"a/hello {reason} for 14s")
    clock.now += 1
    m, failures = c.evaluate(bad)
    assert m.phase is Phase.FAILED
    assert failures[0].message == 'configmap "cfg" not found'


def test_unschedulable_is_pending_until_ten_seconds_then_final():
    c, clock = check()
    pods = [pod("a", unschedulable="0/1 nodes are available: 1 Insufficient cpu.")]
    m, _ = c.evaluate(pods)
    assert (m.phase, m.message) == (Phase.RUNNING, "a unschedulable for 0s")
    clock.now += 9.9
    m, failures = c.evaluate(pods)
    assert (m.phase, m.message, failures) == (Phase.RUNNING, "a unschedulable for 10s", [])
    clock.now += 0.1
    m, failures = c.evaluate(pods)
    assert m.phase is Phase.FAILED
    assert (failures[0].pod, failures[0].container, failures[0].reason) == (
        "a", None, "Unschedulable")
    assert m.message == "a: Unschedulable: 0/1 nodes are available: 1 Insufficient cpu."


def test_unschedulable_without_a_message_says_so():
    c, clock = check()
    p = pod("a", unschedulable="x")
    del p["status"]["conditions"][1]["message"]
    c.evaluate([p])
    clock.now += 10
    assert c.evaluate([p])[1][0].message == "unschedulable"


def test_a_pod_not_scheduled_for_another_reason_is_not_a_failure():
    c, clock = check()
    p = pod("a", unschedulable="waiting for gates")
    p["status"]["conditions"][1]["reason"] = "SchedulingGated"
    c.evaluate([p])
    clock.now += 60
    assert c.evaluate([p])[0].phase is Phase.SUCCESSFUL


def test_only_the_pod_scheduled_condition_says_unschedulable():
    c, clock = check()
    p = pod("a")
    p["status"]["conditions"].append({"type": "ContainersReady", "status": "False",
                                      "reason": "Unschedulable"})
    c.evaluate([p])
    clock.now += 60
    assert c.evaluate([p])[0].phase is Phase.SUCCESSFUL


def test_pending_reasons_are_all_reported():
    c, _ = check()
    m, _ = c.evaluate([pod("a", unschedulable="no room"),
                       pod("b", waiting="CrashLoopBackOff", restarts=0, exit_code=1),
                       pod("c", waiting="ErrImagePull", message="connection refused")])
    assert m.message == ("a unschedulable for 0s; b/hello crashed once (exit 1); "
                         "c/hello ErrImagePull for 0s")


def test_a_crash_loop_reports_how_the_container_exited():
    c, _ = check()
    looping = pod("a", waiting="CrashLoopBackOff", restarts=4, exit_code=137,
                  message="back-off 40s restarting failed container")
    looping["status"]["containerStatuses"][0]["lastState"]["terminated"]["reason"] = "OOMKilled"
    m, failures = c.evaluate([looping])
    assert failures[0].message == "container exited with code 137 (OOMKilled), restarted 4 times"
    assert failures[0].exit_code == 137
    assert m.message == ("a/hello: CrashLoopBackOff (image hello:v2): "
                         "container exited with code 137 (OOMKilled), restarted 4 times")


def test_a_crash_loop_without_a_known_exit_keeps_the_waiting_message():
    c, _ = check()
    _, failures = c.evaluate([pod("a", waiting="CrashLoopBackOff", restarts=2,
                                  message="back-off 20s")])
    assert (failures[0].message, failures[0].exit_code) == ("back-off 20s", None)


def test_an_exit_reason_missing_from_the_last_state_is_reported_as_error():
    c, _ = check()
    looping = pod("a", waiting="CrashLoopBackOff", restarts=1, exit_code=2)
    del looping["status"]["containerStatuses"][0]["lastState"]["terminated"]["reason"]
    _, failures = c.evaluate([looping])
    assert failures[0].message == "container exited with code 2 (Error), restarted 1 times"


def test_a_single_crash_is_reported_with_its_exit_code_while_pending():
    c, _ = check()
    m, failures = c.evaluate([pod("a", waiting="CrashLoopBackOff", restarts=0, exit_code=3)])
    assert (m.phase, m.message, failures) == (Phase.RUNNING, "a/hello crashed once (exit 3)", [])


def test_the_crash_loop_threshold_is_a_restart_count():
    clock = Clock()
    c = PodFailureCheck(clock=clock, crashloop_restarts=3)
    assert c.evaluate([pod("a", waiting="CrashLoopBackOff", restarts=2)])[0].phase \
        is Phase.RUNNING
    clock.now += 600
    assert c.evaluate([pod("a", waiting="CrashLoopBackOff", restarts=2)])[0].phase \
        is Phase.RUNNING
    assert c.evaluate([pod("a", waiting="CrashLoopBackOff", restarts=3)])[0].phase \
        is Phase.FAILED


def test_not_ready_reasons_name_each_pod_that_is_not_ready():
    probing = pod("b", ready=False)
    gated = pod("c", ready=False)
    gated["status"]["conditions"][0]["reason"] = "ReadinessGatesNotReady"
    unknown = pod("e")
    unknown["status"]["conditions"][0]["status"] = "Unknown"
    no_status = {"metadata": {"name": "d"}}
    assert not_ready_reasons([pod("a"), probing, gated, no_status, unknown]) == [
        "b: not Ready (probe failing)", "c: not Ready (ReadinessGatesNotReady)",
        "e: not Ready (probe failing)"]


def test_a_quota_refusal_while_old_pods_free_room_is_not_counted_as_failing():
    c, clock = check()
    dep = deployment(conditions=[{"type": "ReplicaFailure", "status": "True",
                                  "reason": "FailedCreate",
                                  "message": "exceeded quota: pods, requested: pods=1"}])
    for _ in range(4):
        clock.now += 10
        assert c.evaluate([], dep, quota_freeing=True)[0].phase is Phase.SUCCESSFUL
    # once nothing frees room any more, it counts from zero
    assert c.evaluate([], dep)[0].phase is Phase.RUNNING
    clock.now += 10
    assert c.evaluate([], dep)[0].phase is Phase.FAILED


def test_freeing_room_excuses_only_quota_refusals():
    c, clock = check()
    dep = deployment(conditions=[{"type": "ReplicaFailure", "status": "True",
                                  "reason": "FailedCreate",
                                  "message": "admission webhook denied the request"}])
    c.evaluate([], dep, quota_freeing=True)
    clock.now += 10
    assert c.evaluate([], dep, quota_freeing=True)[0].phase is Phase.FAILED


TOO_MANY = ('failed to pull and unpack image "10.200.0.1:5001/hello:v2": failed to resolve '
            'reference "10.200.0.1:5001/hello:v2": unexpected status from HEAD request to '
            'http://10.200.0.1:5001/v2/hello/manifests/v2: 429 Too Many Requests')


@pytest.mark.parametrize("answer", [TOO_MANY, "503 Service Unavailable", "i/o timeout",
                                    "context deadline exceeded", "read: connection reset"])
def test_a_registry_error_that_may_pass_gets_the_pull_budget(answer):
    c, clock = check()
    c.pull_budget = 60.0
    pulling = [pod("a", waiting="ErrImagePull", message=answer)]
    backing_off = [pod("a", waiting="ImagePullBackOff",
                       message='Back-off pulling image "10.200.0.1:5001/hello:v2"')]
    m, _ = c.evaluate(pulling)
    assert m.phase is Phase.RUNNING and "may pass (retrying up to 60s)" in m.message
    for _ in range(5):  # the kubelet alternates the two while it retries
        clock.now += 10
        assert c.evaluate(backing_off)[0].phase is Phase.RUNNING
        clock.now += 1
        assert c.evaluate(pulling)[0].phase is Phase.RUNNING
    clock.now += 5
    m, failures = c.evaluate(backing_off)
    assert m.phase is Phase.FAILED and failures[0].reason == "ImagePullBackOff"


def test_a_back_off_after_a_not_found_answer_is_final_at_once():
    c, _ = check()
    c.evaluate([pod("a", waiting="ErrImagePull", message="unauthorized: authentication required")])
    m, _ = c.evaluate([pod("a", waiting="ImagePullBackOff", message="Back-off pulling image")])
    assert m.phase is Phase.FAILED


def test_the_pull_budget_comes_from_the_environment_and_is_checked(monkeypatch):
    from deployer.errors import InvalidInput
    from deployer.health.pods import pull_budget

    monkeypatch.setenv("DEPLOYER_IMAGE_PULL_BUDGET", "120")
    assert pull_budget() == 120.0
    monkeypatch.setenv("DEPLOYER_IMAGE_PULL_BUDGET", "soon")
    with pytest.raises(InvalidInput, match="DEPLOYER_IMAGE_PULL_BUDGET"):
        pull_budget()


def test_unschedulable_waits_while_a_cluster_autoscaler_adds_a_node():
    c, clock = check()
    waiting = [pod("a", unschedulable="0/1 nodes are available: 1 Insufficient cpu.")]
    clock.now += 30
    m, failures = c.evaluate(waiting, scaling_up=frozenset({"a"}))
    assert m.phase is Phase.RUNNING and failures == []
    assert "the cluster autoscaler is adding a node (TriggeredScaleUp)" in m.message
    c.evaluate(waiting)
    clock.now += 10
    assert c.evaluate(waiting)[0].phase is Phase.FAILED, "without a scale-up: 10 s, as before"


UNAUTHORIZED = ('failed to pull and unpack image "reg.example:5000/private/hello:v2": failed '
                'to resolve reference: pulling from host reg.example:5000 failed with status '
                'code [manifests v2]: 401 Unauthorized')


def test_a_registry_refusing_the_credentials_is_final_and_names_the_pull_secret():
    c, _ = check()
    p = pod("a", waiting="ErrImagePull", image="reg.example:5000/private/hello:v2",
            message=UNAUTHORIZED)
    p["spec"]["imagePullSecrets"] = [{"name": "registry-creds"}]
    _, failures = c.evaluate([p])
    assert len(failures) == 1
    assert failures[0].message == UNAUTHORIZED + (
        " (the pod pulls with imagePullSecrets registry-creds: check that it holds working "
        "credentials for reg.example:5000)")
    # the back-off that follows still reports the registry's answer, not "Back-off pulling"
    backoff = pod("a", waiting="ImagePullBackOff", image="reg.example:5000/private/hello:v2",
                  message='Back-off pulling image "reg.example:5000/private/hello:v2"')
    backoff["spec"]["imagePullSecrets"] = [{"name": "registry-creds"}]
    _, failures = c.evaluate([backoff])
    assert failures[0].message.startswith(UNAUTHORIZED)


def test_a_registry_refusing_an_anonymous_pull_says_there_is_no_pull_secret():
    c, _ = check()
    _, failures = c.evaluate([pod("a", waiting="ErrImagePull", image="private/app:v2",
                                  message="pull access denied, authorization failed")])
    assert failures[0].message.endswith(
        "(the pod has no imagePullSecrets: if the image exists, docker.io wants credentials; "
        "add a pull secret to the pod template or its ServiceAccount)")


def test_a_missing_image_gets_no_credentials_hint():
    c, _ = check()
    _, failures = c.evaluate([pod("a", waiting="ErrImagePull", image="hello:v9",
                                  message="hello:v9: not found")])
    assert failures[0].message == "hello:v9: not found"


def test_an_init_container_whose_image_is_missing_is_final_at_once_and_named():
    c, _ = check()
    p = waiting_pod("a", ("migrate", "ErrImagePull", "migrate:v2: not found"),
                    ("web", "PodInitializing", ""), init=("migrate",))
    m, failures = c.evaluate([p])
    assert [(f.container, f.reason, f.image) for f in failures] == [
        ("migrate", "ErrImagePull", "migrate:v2")]
    assert m.message == "a/migrate: ErrImagePull (image migrate:v2): migrate:v2: not found"


def test_unschedulable_for_want_of_room_waits_while_the_apps_own_pods_terminate():
    c, clock = check()
    full = [pod("a", unschedulable="0/1 nodes are available: 1 Too many pods.")]
    clock.now += 30
    m, failures = c.evaluate(full, terminating=4)
    assert (m.phase, failures) == (Phase.RUNNING, [])
    assert m.message == ("a unschedulable (0/1 nodes are available: 1 Too many pods.) while 4 "
                         "of the app's pods terminate: waiting for the room they free")
    assert c.evaluate(full)[0].phase is Phase.RUNNING, "their room is gone: 10 s from now on"
    clock.now += 10
    assert c.evaluate(full)[0].phase is Phase.FAILED


def test_unschedulable_for_a_rule_it_breaks_is_not_helped_by_terminating_pods():
    c, clock = check()
    tainted = [pod("a", unschedulable="0/1 nodes are available: 1 node(s) had taint "
                                       "{dedicated: db}, that the pod didn't tolerate.")]
    c.evaluate(tainted, terminating=4)
    clock.now += 10
    assert c.evaluate(tainted, terminating=4)[0].phase is Phase.FAILED
