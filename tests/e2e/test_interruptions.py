"""Interruption, one run per app, and recovery, on the lab cluster.

Given hello v1 is stable, when a run is interrupted (SIGINT/SIGTERM), killed (SIGKILL) at
any step, or raced by a second run, then the stable version keeps answering, `status`
says what happened, `rollback` restores v1 and a second rollback is a no-op.
"""

from __future__ import annotations

import json
import re
import signal
import time

import pytest

from tests.e2e.app_checks import (
    ServiceClient,
    analysing,
    deployment_image,
    run_record,
    versions_by_pod,
)
from tests.e2e.deployer_cli import Background, deployer, run_printed
from tests.e2e.lab import CLIENT_ADDRESSES, version_via_service, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

CLIENTS = f"{CLIENT_ADDRESSES[0]}-{CLIENT_ADDRESSES[-1]}"


def at_step(kube, namespace, position: int) -> bool:
    record = run_record(kube, namespace)
    return bool(record and (record.get("position") or 0) >= position)


def test_two_deploys_of_one_app_the_second_fails_fast_naming_the_holder(namespace,
                                                                        deploy_hello, kube):
    deploy_hello(namespace)
    # v3 never becomes Ready: the first run holds the lock at least until its progress
    # deadline (25 s), well past the 15 s the second may take.
    first = Background(namespace, "rolling", "--app", "hello", "--image", "v3",
                       "--progress-deadline", "25s")
    try:
        wait_for(lambda: run_record(kube, namespace) is not None, 30, 0.3, "the first run")

        second = deployer(namespace, "rolling", "--app", "hello", "--image", "v2")

        assert second.code == 4, second
        assert "is locked by" in second.stderr and "rolling --app hello --image v3" in \
            second.stderr
        assert second.seconds < 15
    finally:
        result = first.wait(180)
    assert result.code == 1, result  # v3 never becomes Ready: rejected and rolled back
    assert deployment_image(kube, namespace) == "hello:v1"


def test_wait_for_lock_waits_for_the_holder_then_runs(namespace, deploy_hello, kube):
    deploy_hello(namespace)
    first = Background(namespace, "rolling", "--app", "hello", "--image", "v2")
    wait_for(lambda: run_record(kube, namespace) is not None, 30, 0.3, "the first run")

    second = deployer(namespace, "-o", "json", "recreate", "--app", "hello", "--image", "v5",
                      "--expect-version", "1.0.0", "--wait-for-lock", "2m")

    assert first.wait(60).code == 0
    assert second.code == 0, second
    assert deployment_image(kube, namespace) == "hello:v5"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_at_a_safe_point_records_it_and_releases_the_lock(namespace,
                                                                         deploy_hello, kube,
                                                                         sig):
    deploy_hello(namespace)
    run = Background(namespace, "-o", "json", "rolling", "--app", "hello", "--image", "v3",
                     "--progress-deadline", "60s")
    wait_for(lambda: at_step(kube, namespace, 1), 30, 0.3, "the wait step")

    run.proc.send_signal(sig)
    result = run.wait(30)

    assert result.code == 130, result
    report = json.loads(result.stdout)
    assert report["verdict"] == "interrupted"
    assert report["next"].startswith(f"deployer rollback --app hello -n {namespace} ")
    assert run_record(kube, namespace)["phase"] == "interrupted"
    status = deployer(namespace, "-o", "json", "status", "--app", "hello").report
    assert status["runInProgress"]["phase"] == "interrupted"
    assert status["lock"] is None, "the lock is released"

    rollback = run_printed(report["next"])  # as printed, pasted into a CI step

    assert rollback.code == 0, rollback
    assert set(versions_by_pod(kube, namespace).values()) == {"1.0.0"}
    again = deployer(namespace, "-o", "json", "rollback", "--app", "hello")
    assert again.code == 0 and again.report["verdict"] == "no-op", again


def test_with_atomic_a_cancelled_ci_job_rolls_a_canary_back_before_exiting(namespace,
                                                                           deploy_hello, kube):
    deploy_hello(namespace)
    run = Background(namespace, "-o", "json", "canary", "--app", "hello", "--image", "v2",
                     "--weight", "50", "--interval", "120s", "--atomic",
                     "--client-addresses", CLIENTS)
    wait_for(lambda: analysing(kube, namespace), 90, 0.3, "the analysis step")
    with ServiceClient(kube, namespace) as traffic:
        run.proc.send_signal(signal.SIGTERM)
        result = run.wait(120)

    assert result.code == 130, result
    report = json.loads(result.stdout)
    assert report["verdict"] == "rolled-back"
    assert "interrupted by SIGTERM; --atomic: rolled back" in report["message"]
    assert traffic.errors == [], "the stable version keeps serving throughout"
    names = [d.metadata.name for d in kube.apps.list_namespaced_deployment(namespace).items]
    assert names == ["hello"], "the canary is gone"
    assert set(versions_by_pod(kube, namespace).values()) == {"1.0.0"}
    assert {version_via_service(namespace, "hello", ip, kube=kube)
            for ip in CLIENT_ADDRESSES} == {"1.0.0"}
    status = deployer(namespace, "-o", "json", "status", "--app", "hello").report
    assert status["runInProgress"] is None and status["lock"] is None
    assert status["lastRun"]["verdict"] == "rolled-back"


def test_a_killed_runs_lock_expires_and_is_taken_over_without_surgery(namespace, deploy_hello,
                                                                     kube):
    deploy_hello(namespace)
    # A 15 s Lease instead of 30 s: the same expiry, waited out sooner (and still long
    # enough for `status` below to see it held on a loaded node).
    run = Background(namespace, "rolling", "--app", "hello", "--image", "v3",
                     "--progress-deadline", "60s", env={"DEPLOYER_LEASE_SECONDS": "15"})
    wait_for(lambda: at_step(kube, namespace, 1), 30, 0.3, "the wait step")
    run.kill()

    blocked = deployer(namespace, "-o", "json", "status", "--app", "hello")
    assert blocked.report["lock"] is not None and blocked.report["lock"]["expiresIn"] > 0
    assert blocked.report["runInProgress"]["phase"] == "running"

    result = deployer(namespace, "-o", "json", "rollback", "--app", "hello",
                      "--wait-for-lock", "60s")

    assert result.code == 0, result
    assert any("took over the lock" in n and "expired" in n for n in result.report["notes"])
    assert set(versions_by_pod(kube, namespace).values()) == {"1.0.0"}


def test_rerunning_a_killed_deploy_resumes_without_an_extra_revision(namespace, deploy_hello,
                                                                    kube):
    deploy_hello(namespace)
    run = Background(namespace, "rolling", "--app", "hello", "--image", "v2")
    wait_for(lambda: at_step(kube, namespace, 1), 30, 0.3, "the wait step")
    run.kill()
    revisions_before = {rs.metadata.annotations["deployment.kubernetes.io/revision"]
                        for rs in kube.apps.list_namespaced_replica_set(namespace).items}

    result = deployer(namespace, "-o", "json", "rolling", "--app", "hello", "--image", "v2",
                      "--force")

    assert result.code == 0, result
    assert any("resuming run" in n for n in result.report["notes"])
    revisions_after = {rs.metadata.annotations["deployment.kubernetes.io/revision"]
                       for rs in kube.apps.list_namespaced_replica_set(namespace).items}
    assert revisions_after == revisions_before
    assert set(versions_by_pod(kube, namespace).values()) == {"2.0.0"}


def test_force_rollback_during_a_deploy_stops_that_deploy_before_its_next_write(namespace,
                                                                               deploy_hello,
                                                                               kube):
    deploy_hello(namespace)
    run = Background(namespace, "canary", "--app", "hello", "--image", "v2", "--steps",
                     "25,50,100", "--interval", "20s", "--client-addresses", CLIENTS)
    wait_for(lambda: analysing(kube, namespace), 60, 0.3, "the first analysis")

    rollback = deployer(namespace, "-o", "json", "rollback", "--app", "hello", "--force")
    deploy = run.wait(120)

    assert rollback.code == 0, rollback
    assert deploy.code == 4, deploy
    assert "stopped before writing" in deploy.stderr
    assert set(versions_by_pod(kube, namespace).values()) == {"1.0.0"}
    names = [d.metadata.name for d in kube.apps.list_namespaced_deployment(namespace).items]
    assert names == ["hello"]


# 3 replicas at 25,50: apply 1 canary pod, await it, scale stable to 2, verify, verify (the
# same 1 + 2), then update stable, await, scale it to 3, await, scale the canary to 0, delete
CANARY_STEPS = 11
BLUE_GREEN_STEPS = 6  # narrow selector, apply green, await, switch, verify, scale old


@pytest.mark.parametrize("position", range(CANARY_STEPS))
def test_sigkill_at_each_canary_step_then_rollback_restores_v1(namespace, deploy_hello, kube,
                                                               position):
    deploy_hello(namespace)
    with ServiceClient(kube, namespace, clients=40, pause=0.1) as traffic:
        run = Background(namespace, "canary", "--app", "hello", "--image", "v2", "--steps",
                         "25,50,100", "--client-addresses", CLIENTS)
        wait_for(lambda: at_step(kube, namespace, position) or run.proc.poll() is not None,
                 120, 0.1, f"step {position + 1}")
        run.kill()

        result = deployer(namespace, "-o", "json", "rollback", "--app", "hello", "--force")

        assert result.code == 0, result
        assert set(versions_by_pod(kube, namespace).values()) == {"1.0.0"}
        names = [d.metadata.name for d in kube.apps.list_namespaced_deployment(namespace).items]
        assert names == ["hello"], "the canary is gone"
    assert traffic.failed == 0, f"failed during kill + rollback: {traffic.errors}"
    assert "1.0.0" in traffic.answers
    again = deployer(namespace, "-o", "json", "rollback", "--app", "hello")
    assert again.code == 0 and again.report["verdict"] == "no-op", again


@pytest.mark.parametrize("position", range(BLUE_GREEN_STEPS))
def test_sigkill_at_each_blue_green_step_then_rollback_restores_blue(namespace, deploy_hello,
                                                                     kube, position):
    deploy_hello(namespace)
    with ServiceClient(kube, namespace, clients=40, pause=0.1) as traffic:
        run = Background(namespace, "blue-green", "--app", "hello", "--image", "v2",
                         "--keep-old", "0s", "--client-addresses", CLIENTS)
        wait_for(lambda: at_step(kube, namespace, position) or run.proc.poll() is not None,
                 120, 0.1, f"step {position + 1}")
        run.kill()

        result = deployer(namespace, "-o", "json", "rollback", "--app", "hello", "--force")

        assert result.code == 0, result
        svc = kube.core.read_namespaced_service("hello", namespace)
        assert svc.spec.selector == {"app": "hello"}, "the Service as it was before the run"
        assert {version_via_service(namespace, "hello", ip, kube=kube)
                for ip in CLIENT_ADDRESSES} == {"1.0.0"}
    assert traffic.failed == 0, f"failed during kill + rollback: {traffic.errors}"



# ------------------------------------------------------------------ pause and resume


def generations(kube, namespace) -> dict[str, int]:
    """metadata.generation of each Deployment (their specs) and the Service's version:
    what a held run must not change (the controllers still write status)."""
    out = {f"deployment/{d.metadata.name}": d.metadata.generation
           for d in kube.apps.list_namespaced_deployment(namespace).items}
    svc = kube.core.read_namespaced_service("hello", namespace)
    out["service/hello"] = svc.metadata.resource_version
    return out


def test_pause_holds_a_canary_for_a_minute_and_resume_finishes_it(namespace, deploy_hello,
                                                                   kube):
    deploy_hello(namespace, replicas=4)
    # --timeout 100s bounds the run, which takes about 50 s unpaused: held 65 s, it would
    # time out if the deadline counted the time held.
    run = Background(namespace, "-o", "json", "--timeout", "100s", "canary", "--app",
                     "hello", "--image", "v2", "--steps", "25,50", "--interval", "10s")
    wait_for(lambda: at_step(kube, namespace, 1), 60, 0.3, "the canary's first step")

    paused = deployer(namespace, "-o", "json", "pause", "--app", "hello", "--reason",
                      "the error budget looks off")

    assert paused.code == 0, paused
    assert paused.report["verdict"] == "paused" and "is paused at" in \
        paused.report["message"], paused
    assert paused.report["next"].startswith(f"deployer resume --app hello -n {namespace}")
    before = generations(kube, namespace)
    with ServiceClient(kube, namespace) as client:
        held_since = time.monotonic()
        while time.monotonic() - held_since < 65:
            status = deployer(namespace, "-o", "json", "status", "--app", "hello").report
            held = status["runInProgress"]["held"]
            assert held["reason"] == "the error budget looks off" and held["by"], status
            assert status["lock"]["expiresIn"] > 0, "the held run keeps renewing its lock"
            time.sleep(10)
        text = deployer(namespace, "status", "--app", "hello").stdout
    assert generations(kube, namespace) == before, "a held run changes nothing"
    assert client.failed == 0 and "1.0.0" in client.answers, "stable serves while held"
    assert set(client.answers) <= {"1.0.0", "2.0.0"}
    assert "paused:    by " in text and "(the error budget looks off)" in text

    resumed = run_printed(paused.report["next"])  # as printed, pasted by the engineer

    assert resumed.code == 0 and "verdict:          resumed (exit 0)" in resumed.stdout, \
        resumed
    result = run.wait(300)
    assert result.code == 0, result
    assert result.report["verdict"] == "promoted"
    held = re.search(r"Resumed after (\d+)s paused", result.stderr)
    assert held and int(held.group(1)) >= 65, result.stderr  # not counted by --timeout
    assert set(versions_by_pod(kube, namespace).values()) == {"2.0.0"}
    assert deployer(namespace, "resume", "--app", "hello").code == 2  # nothing to resume


def test_a_paused_rolling_update_pauses_the_deployment_and_resume_goes_on_after_a_kill(
        namespace, deploy_hello, kube):
    deploy_hello(namespace)
    kube.apps.patch_namespaced_deployment("hello", namespace, {"spec": {
        "minReadySeconds": 8,  # one new pod at a time, each 8 s: a rollout to pause inside
        "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}})
    wait_for(lambda: kube.apps.read_namespaced_deployment("hello", namespace).status
             .observed_generation == 2, 30, 0.3, "the patched Deployment")
    run = Background(namespace, "rolling", "--app", "hello", "--image", "v2",
                     env={"DEPLOYER_LEASE_SECONDS": "8"})
    wait_for(lambda: at_step(kube, namespace, 1), 60, 0.3, "the rollout's wait")

    paused = deployer(namespace, "-o", "json", "pause", "--app", "hello")

    assert paused.code == 0 and "is paused at 'wait for hello" in \
        paused.report["message"], paused
    dep = kube.apps.read_namespaced_deployment("hello", namespace)
    assert dep.spec.paused is True, "as kubectl rollout pause does"
    run.kill()  # the process holding the run is gone
    refused = deployer(namespace, "rolling", "--app", "hello", "--image", "v2")
    assert refused.code == 2 and "deployer resume --app hello" in refused.stderr, refused

    result = deployer(namespace, "-o", "json", "resume", "--app", "hello")

    assert result.code == 0, result
    assert result.report["verdict"] == "promoted", result
    assert any("the process that ran rolling run" in n for n in result.report["notes"])
    assert not kube.apps.read_namespaced_deployment("hello", namespace).spec.paused
    assert set(versions_by_pod(kube, namespace).values()) == {"2.0.0"}
