"""The traffic analysis of a canary step or a blue-green switch (VerifyTraffic).

Per-pod versions come from the fake gateway's pod proxy. What clients get through the
Service is measured for real, over HTTP: a small server on 127.0.0.1 stands for the
Service's ClusterIP and answers each client address (127.0.0.2, 127.0.0.3, ...) with the
version kube-proxy's ClientIP affinity would have pinned it to.
"""

from __future__ import annotations

import http.server
import itertools
import pathlib
import re
import socket
import threading
from collections.abc import Iterator

import certifi
import pytest

from deployer.engine.holds import WINDOW_CLIENTS
from deployer.engine.traffic import ROUND_INTERVAL
from deployer.errors import ClusterUnreachable, StepFailed
from deployer.model import HttpAnswer, KeepOld, Phase, VerifyTraffic
from tests.unit.fakes import FakeGateway, deployment, service
from tests.unit.harness import Clock, Controller, err_text, make_engine, relabel

VERSIONS = {"hello:v1": "1.0.0", "hello:v2": "2.0.0"}


class ClusterIP(http.server.ThreadingHTTPServer):
    """Answers GET /version with the version of the pod each client address is pinned to
    (a list of versions: the client gets them in turn, i.e. it is not sticky)."""

    daemon_threads = True
    # deployer's clients connect 8 at a time: a listen backlog of 5 (the default) dropped
    # connections on a busy machine, which then timed out
    request_queue_size = 64

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.pinned: dict[str, str | list[str]] = {}
        self._turns: dict[str, Iterator[str]] = {}

    @property
    def port(self) -> int:
        return self.server_address[1]

    def answer(self, client: str) -> str:
        pinned = self.pinned.get(client, "1.0.0")
        if isinstance(pinned, str):
            return pinned
        return next(self._turns.setdefault(client, itertools.cycle(pinned)))


class _Handler(http.server.BaseHTTPRequestHandler):
    server: ClusterIP

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        body = self.server.answer(self.client_address[0]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(autouse=True)
def small_ca_bundle(tmp_path_factory, monkeypatch) -> None:
    """ServiceTraffic makes an httpx transport per client address, and each loads the CA
    bundle (~0.1 s); one certificate is enough for plain-HTTP calls and keeps this fast."""
    path = tmp_path_factory.getbasetemp() / "one-ca.pem"
    if not path.exists():
        bundle = pathlib.Path(certifi.where()).read_text()
        end = "-----END CERTIFICATE-----\n"
        path.write_text(bundle[bundle.index("-----BEGIN CERTIFICATE-----"):
                               bundle.index(end) + len(end)])
    monkeypatch.setenv("SSL_CERT_FILE", str(path))


@pytest.fixture
def cluster_ip() -> Iterator[ClusterIP]:
    server = ClusterIP()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def clients(n: int) -> tuple[str, ...]:
    return tuple(f"127.0.0.{i}" for i in range(2, n + 2))


def canary_cluster(stable: int = 3, canary: int = 1,
                   port: int = 80) -> tuple[FakeGateway, Controller, Clock]:
    gw = FakeGateway(deployment("hello", replicas=stable),
                     relabel(deployment("hello-canary", "hello:v2", replicas=canary),
                             app="hello", track="canary"))
    gw.services["hello"] = service("hello", {"app": "hello"}, cluster_ip="127.0.0.1",
                                   ports=[{"name": "http", "port": port}])
    clock = Clock()
    controller = Controller(gw, VERSIONS, clock=clock)
    controller.tick()
    return gw, controller, clock


def step(**kw) -> VerifyTraffic:
    values = {"service": "hello", "new_deployment": "hello-canary", "new_version": "2.0.0",
              "old_deployment": "hello", "old_version": "1.0.0", "share": 0.25}
    return VerifyTraffic(**{**values, **kw})


def note(engine) -> str:
    return engine.reporter.steps[-1].note or ""


# ------------------------------------------------------------------ per-pod versions


def test_one_round_checks_both_tracks_and_says_the_share_was_not_measured():
    gw, _, clock = canary_cluster()
    engine = make_engine(gw, clock)
    engine.execute(step())
    assert note(engine) == ("1 round(s) passed; not measured: no --client-addresses to call "
                            "the Service from")
    checks = engine.reporter.checks
    assert checks["new-pods"].message == "1 new pods answer 2.0.0"
    assert checks["old-pods"].message == "3 old pods answer 1.0.0"
    assert checks["pod-failures"].phase is Phase.SUCCESSFUL
    assert checks["traffic-share"].phase is Phase.INCONCLUSIVE
    assert clock.sleeps == []


def test_the_analysis_repeats_rounds_until_its_time_has_passed():
    gw, _, clock = canary_cluster()
    engine = make_engine(gw, clock)
    engine.execute(step(duration=10))
    assert note(engine).startswith("5 round(s) passed; ")
    assert clock.sleeps == [ROUND_INTERVAL] * 3 + [1.0]
    assert "analysing: round 1 passed, 10s left" in err_text(engine)
    assert "analysing: round 4 passed, 1s left" in err_text(engine)


def test_a_new_pod_answering_another_version_rejects_the_release():
    gw, controller, clock = canary_cluster()
    (pod,) = controller.pods_of("hello-canary")
    gw.pod_answers[pod["metadata"]["name"]] = "1.0.0"  # the canary image is the old build
    engine = make_engine(gw, clock)
    with pytest.raises(StepFailed) as exc:
        engine.execute(step(duration=30))
    assert exc.value.message == ("new pods answer another version than 2.0.0: "
                                 f"{{'{pod['metadata']['name']}': '1.0.0'}}")
    assert clock.sleeps == []  # the first round decided it
    assert engine.reporter.checks["new-pods"].phase is Phase.FAILED


def test_an_old_pod_answering_another_version_rejects_too():
    gw, controller, clock = canary_cluster()
    victim = controller.pods_of("hello")[1]["metadata"]["name"]
    gw.pod_answers[victim] = "2.0.0"
    with pytest.raises(StepFailed, match=r"old pods answer another version than 1\.0\.0: "
                                         rf"{{'{victim}': '2\.0\.0'}}"):
        make_engine(gw, clock).execute(step())


def test_new_pods_that_do_not_answer_are_an_error():
    gw, controller, clock = canary_cluster()
    (pod,) = controller.pods_of("hello-canary")
    gw.pod_answers[pod["metadata"]["name"]] = HttpAnswer(None, error="timed out")
    with pytest.raises(StepFailed, match="no Ready new pod of hello-canary answered"):
        make_engine(gw, clock).execute(step())


def test_no_ready_new_pod_at_all_is_an_error():
    gw, controller, clock = canary_cluster()
    controller.pod_state["hello:v2"] = {"ready": False}
    gw.deployments["hello-canary"]["spec"]["template"]["metadata"]["labels"]["rev"] = "2"
    controller.tick()  # the canary's new pods are not Ready
    engine = make_engine(gw, clock)
    with pytest.raises(StepFailed, match="no Ready new pod of hello-canary answered"):
        engine.execute(step())
    assert engine.reporter.checks["new-pods"].details == {"expected": "2.0.0", "answers": {}}


def test_a_canary_that_is_gone_rejects_the_release():
    gw, _, clock = canary_cluster()
    del gw.deployments["hello-canary"]
    with pytest.raises(StepFailed, match="deployment hello-canary is gone"):
        make_engine(gw, clock).execute(step())


def test_a_track_without_an_expected_version_is_not_checked_and_says_so():
    gw, _, clock = canary_cluster()
    engine = make_engine(gw, clock)
    engine.execute(step(old_version=None))
    assert "no expected version for hello; not checked" in note(engine)
    assert engine.reporter.checks["old-pods"].phase is Phase.INCONCLUSIVE


def test_after_a_switch_only_the_one_track_is_checked():
    gw, _, clock = canary_cluster()
    engine = make_engine(gw, clock)
    engine.execute(step(old_deployment="hello-canary", share=1.0))
    assert "old-pods" not in engine.reporter.checks
    assert engine.reporter.checks["new-pods"].phase is Phase.SUCCESSFUL


def test_a_crash_looping_new_pod_rejects_the_release_with_its_logs():
    gw, controller, clock = canary_cluster(canary=2)
    bad = controller.pods_of("hello-canary")[0]
    name = bad["metadata"]["name"]
    bad["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    bad["status"]["containerStatuses"][0].update(
        state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}},
        lastState={"terminated": {"exitCode": 1, "reason": "Error"}}, restartCount=3)
    gw.logs[name] = ["panic: no DATABASE_URL"]
    engine = make_engine(gw, clock)
    with pytest.raises(StepFailed) as exc:
        engine.execute(step())
    assert exc.value.message == (f"{name}/hello: CrashLoopBackOff (image hello:v2): container "
                                 "exited with code 1 (Error), restarted 3 times")
    (failure,) = engine.reporter.failures
    assert (failure.pod, failure.logs) == (name, ("panic: no DATABASE_URL",))


# ------------------------------------------------------------------ through the Service


def test_the_share_and_stickiness_are_measured_from_each_client_address(cluster_ip):
    gw, _, clock = canary_cluster(port=cluster_ip.port)
    addresses = clients(40)
    cluster_ip.pinned = {a: "2.0.0" for a in addresses[:10]}
    engine = make_engine(gw, clock, client_addresses=addresses)
    engine.execute(step())
    assert note(engine) == ("1 round(s) passed; each of 40 clients stayed on one version over "
                            "200 requests; 10 of 40 clients (25%) got 2.0.0, planned 25%")
    memory = engine.ctx.traffic.client_versions
    assert len(memory) == 40 and memory["127.0.0.2"] == "2.0.0"
    assert memory["127.0.0.13"] == "1.0.0"


def test_a_canary_that_no_client_reaches_rejects_the_release(cluster_ip):
    gw, _, clock = canary_cluster(port=cluster_ip.port)
    cluster_ip.pinned = {}  # every client lands on the stable version
    with pytest.raises(StepFailed, match=re.escape("0 of 40 clients (0%) got 2.0.0, planned 25%")):
        make_engine(gw, clock, client_addresses=clients(40)).execute(step())


def test_too_few_clients_for_the_share_say_not_measured(cluster_ip):
    gw, _, clock = canary_cluster(port=cluster_ip.port)
    cluster_ip.pinned = {}
    engine = make_engine(gw, clock, client_addresses=clients(20))
    engine.execute(step())
    assert "not measured: too few clients: 20 cannot tell a 25% share from none" in note(engine)
    assert engine.reporter.checks["traffic-share"].phase is Phase.INCONCLUSIVE


def test_a_client_that_is_not_sticky_rejects_the_release(cluster_ip):
    gw, _, clock = canary_cluster(port=cluster_ip.port)
    cluster_ip.pinned = {"127.0.0.2": ["1.0.0", "2.0.0"], "127.0.0.3": "2.0.0"}
    with pytest.raises(StepFailed, match=re.escape(
            "1 of 4 clients did not stay on one version: 127.0.0.2 got ['1.0.0', '2.0.0']")):
        make_engine(gw, clock, client_addresses=clients(4)).execute(step())


def test_clients_on_a_third_version_reject_the_release(cluster_ip):
    gw, _, clock = canary_cluster(port=cluster_ip.port)
    cluster_ip.pinned = {"127.0.0.2": "2.0.0", "127.0.0.3": "1.5.0"}
    with pytest.raises(StepFailed, match=re.escape(
            "clients got versions that are neither 2.0.0 nor 1.0.0: {'1.5.0': 1}")):
        make_engine(gw, clock, client_addresses=clients(4)).execute(step())


def test_later_steps_measure_the_share_on_fresh_clients_and_keep_the_earlier_ones(cluster_ip):
    gw, _, clock = canary_cluster(port=cluster_ip.port)
    addresses = clients(80)
    first, second = addresses[:40], addresses[40:]
    cluster_ip.pinned = {a: "2.0.0" for a in (*first[:10], *second[:20])}
    engine = make_engine(gw, clock, client_addresses=addresses)
    engine.execute(step(share=0.25, fresh_clients=(0, 40)))
    assert "each of 40 clients stayed on one version" in note(engine)
    assert "10 of 40 clients (25%) got 2.0.0, planned 25%" in note(engine)
    engine.execute(step(share=0.5, fresh_clients=(40, 80)))
    assert "each of 80 clients stayed on one version" in note(engine)  # the earlier ones too
    assert "20 of 40 clients (50%) got 2.0.0, planned 50%" in note(engine)  # the fresh ones


def test_a_client_that_moved_to_another_version_since_the_last_step_rejects(cluster_ip):
    gw, _, clock = canary_cluster(port=cluster_ip.port)
    cluster_ip.pinned = {"127.0.0.2": "2.0.0"}
    engine = make_engine(gw, clock, client_addresses=clients(4))
    engine.execute(step(share=0.5, fresh_clients=(0, 2)))
    cluster_ip.pinned["127.0.0.3"] = "2.0.0"  # was on 1.0.0 at the first step
    with pytest.raises(StepFailed, match="127.0.0.3 moved from 1.0.0 to 2.0.0"):
        engine.execute(step(share=0.5, fresh_clients=(2, 4)))


def test_a_cluster_ip_not_routed_here_is_reported_as_unsupported_not_passed():
    with socket.socket() as s:  # a port nobody listens on: connections are refused
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    gw, _, clock = canary_cluster(port=closed)
    engine = make_engine(gw, clock, client_addresses=clients(3))
    engine.execute(step())
    assert note(engine) == ("1 round(s) passed; unsupported here: service hello's ClusterIP "
                            "127.0.0.1 is not reachable from this machine")
    assert engine.reporter.checks["traffic-share"].phase is Phase.INCONCLUSIVE


def test_a_service_that_is_gone_rejects_the_release():
    gw, _, clock = canary_cluster()
    del gw.services["hello"]
    with pytest.raises(StepFailed, match="service hello is gone"):
        make_engine(gw, clock, client_addresses=clients(3)).execute(step())


# ------------------------------------------------------------------ resize, outage


def test_a_resized_stable_deployment_resizes_the_canary_to_keep_its_weight(cluster_ip):
    gw, controller, clock = canary_cluster(port=cluster_ip.port)
    gw.deployments["hello"]["spec"]["replicas"] = 6  # the autoscaler, since the canary step
    controller.tick()
    addresses = clients(40)
    cluster_ip.pinned = {a: "2.0.0" for a in addresses[:10]}
    engine = make_engine(gw, clock, client_addresses=addresses)
    engine.ctx.traffic.stable_size = 3
    engine.ctx.traffic.client_versions["127.0.0.2"] = "1.0.0"  # met a pod that is gone now
    engine.execute(step(share=0.5, weight=25))  # 1 canary pod beside 3: planned at 25%

    assert [(s.kind, s.result) for s in engine.reporter.steps] == [
        ("verify-traffic", "done"), ("scale-deployment", "done"), ("await-rollout", "done")]
    assert gw.deployments["hello-canary"]["spec"]["replicas"] == 2
    assert engine.reporter.notes == ["hello now has 6 replicas: 2 canary pods (instead of 1) "
                                     "keep the weight at 25% (25% of new clients)"]
    assert engine.reporter.checks["new-pods"].message == "2 new pods answer 2.0.0"
    share = engine.reporter.checks["traffic-share"]
    assert share.phase is Phase.SUCCESSFUL
    assert share.details["planned"] == 0.25  # the weight's share now, not the planned 50%
    assert engine.ctx.traffic.stable_size == 6
    assert engine.ctx.traffic.client_versions["127.0.0.2"] == "2.0.0"  # measured afresh


def test_a_stable_side_that_gave_pods_to_the_canary_forgets_what_clients_met(cluster_ip):
    # The canary took a pod from stable since the last step: clients of the removed pod
    # met another one, which is not a broken affinity. The canary is left as it is.
    gw, _, clock = canary_cluster(port=cluster_ip.port, stable=2)
    addresses = clients(40)
    cluster_ip.pinned = {a: "2.0.0" for a in addresses[:10]}
    engine = make_engine(gw, clock, client_addresses=addresses)
    engine.ctx.traffic.stable_size = 3
    engine.ctx.traffic.client_versions["127.0.0.2"] = "1.0.0"  # its pod was given away
    engine.execute(step(share=0.25))
    assert [s.kind for s in engine.reporter.steps] == ["verify-traffic"]
    assert engine.reporter.checks["stickiness"].phase is Phase.SUCCESSFUL
    assert engine.ctx.traffic.stable_size == 2
    assert engine.ctx.traffic.client_versions["127.0.0.2"] == "2.0.0"  # measured afresh


def test_a_canary_scaled_down_by_a_forced_rollback_is_not_scaled_back_up():
    """``rollback --force`` took the lock a moment ago and scaled the canary to 0; the
    analysis would resize it to keep the weight, but that write reads the Lease first."""
    from deployer.errors import LockHeld
    from deployer.lock import Lock

    gw, _, clock = canary_cluster()
    lock = Lock(gw, "hello", "run-1 by me", "deployer canary", clock=lambda: 1_700_000_000.0)
    lock.acquire()
    gw.leases["deployer-hello"]["spec"]["holderIdentity"] = "run-2 by on-call"
    gw.deployments["hello-canary"]["spec"]["replicas"] = 0
    engine = make_engine(gw, clock, lock=lock)
    with pytest.raises(LockHeld, match="now held by run-2 by on-call"):
        engine.execute(step(weight=25))
    assert gw.deployments["hello-canary"]["spec"]["replicas"] == 0
    assert gw.deployment_writes() == []


def test_a_canary_gone_during_the_analysis_is_not_resized_but_rejected():
    gw, _, clock = canary_cluster()
    del gw.deployments["hello-canary"]
    engine = make_engine(gw, clock)
    with pytest.raises(StepFailed, match="deployment hello-canary is gone"):
        engine.execute(step(weight=25))
    assert [s.kind for s in engine.reporter.steps] == ["verify-traffic"]


def test_an_unchanged_stable_size_keeps_the_canary_as_it_is():
    gw, _, clock = canary_cluster(stable=3)
    engine = make_engine(gw, clock)
    engine.execute(step(weight=25, duration=3))
    assert gw.deployment_writes() == []
    assert engine.reporter.notes == []
    assert engine.ctx.traffic.stable_size == 3


def test_the_analysis_rides_out_a_short_api_outage():
    class Flaky(FakeGateway):
        failing = 0

        def get_deployment(self, name):
            if self.failing:
                self.failing -= 1
                raise ClusterUnreachable("connection reset")
            return super().get_deployment(name)

    gw = Flaky(deployment("hello"), relabel(deployment("hello-canary", "hello:v2", replicas=1),
                                            app="hello", track="canary"))
    clock = Clock()
    Controller(gw, VERSIONS, clock=clock).tick()
    gw.failing = 2
    engine = make_engine(gw, clock)
    engine.execute(step())
    assert note(engine).startswith("1 round(s) passed")
    assert clock.sleeps == [2.0, 2.0]
    assert "the API server does not answer (2s so far)" in err_text(engine)


# ------------------------------------------------------------------ blue-green's window


def switched_cluster(port: int) -> tuple[FakeGateway, Clock]:
    gw = FakeGateway(deployment("hello"),
                     relabel(deployment("hello-green", "hello:v2"), app="hello", track="green"))
    gw.services["hello"] = service("hello", {"app": "hello", "track": "green"},
                                   cluster_ip="127.0.0.1", ports=[{"name": "http", "port": port}])
    clock = Clock()
    Controller(gw, VERSIONS, clock=clock).tick()
    return gw, clock


def test_a_watched_window_asks_its_first_clients_each_round_not_all_of_them(cluster_ip):
    gw, clock = switched_cluster(cluster_ip.port)
    addresses = clients(120)
    cluster_ip.pinned = {a: "2.0.0" for a in addresses[:WINDOW_CLIENTS]}  # the rest get 1.0.0
    engine = make_engine(gw, clock, client_addresses=addresses)
    engine.execute(KeepOld("hello", "hello-green", "2.0.0", "hello", "1.0.0", 6))
    assert f"each of {WINDOW_CLIENTS} clients stayed on one version" in note(engine)

    cluster_ip.pinned[addresses[WINDOW_CLIENTS - 1]] = "1.0.0"  # one asked client moved back
    with pytest.raises(StepFailed, match="failed in the rollback window"):
        engine.execute(KeepOld("hello", "hello-green", "2.0.0", "hello", "1.0.0", 6))
