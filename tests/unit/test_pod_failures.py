"""Pod failure reasons: final ones fail at once, transient ones only when they persist."""

from deployer.health.pods import PodFailureCheck
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
    flaky = [pod("a", waiting="ErrImagePull", message="i/o timeout")]
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
