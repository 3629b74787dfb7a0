"""The fault proxy itself: Given a FaultProxy in front of the lab's API server, When a
Kubernetes client talks through it with or without fault rules, Then requests pass through
unchanged, and each fault reaches the client the way a real failure would."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from urllib3.exceptions import MaxRetryError, ProtocolError, ReadTimeoutError

from tests.e2e.faultproxy import (
    FaultProxy,
    Rule,
    blackhole,
    delay,
    drop_watch_after,
    reset_after_forward,
    respond,
    watch_gone,
)
from tests.e2e.lab import Kube, live_pods, version_via_pod_proxy, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

RETRY_AFTER_429 = {"Retry-After": "3"}


def _proxy_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("faultproxy")]


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    with FaultProxy() as p:
        yield p
    # stop() leaves nothing running: no listener, connection or monitor thread.
    wait_for(lambda: not _proxy_threads(), 5.0, 0.05, "the proxy's threads to end")


def _client(proxy: FaultProxy, path: Path, retries: object = None) -> client.ApiClient:
    kubeconfig = proxy.write_kubeconfig(path)
    if retries is None:
        return config.new_client_from_config(kubeconfig)
    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    cfg.retries = retries
    return client.ApiClient(cfg)


@pytest.fixture
def via(proxy: FaultProxy, tmp_path: Path) -> Iterator[Kube]:
    """The official client through the proxy, as new_client_from_config makes it (urllib3's
    default retries included)."""
    api = _client(proxy, tmp_path / "kubeconfig")
    yield Kube.from_api_client(api)
    api.close()


@pytest.fixture
def strict(proxy: FaultProxy, tmp_path: Path) -> Iterator[Kube]:
    """The official client through the proxy with urllib3's retries off: every fault shows."""
    api = _client(proxy, tmp_path / "kubeconfig-strict", retries=False)
    yield Kube.from_api_client(api)
    api.close()


def _configmap(name: str, data: dict[str, str] | None = None) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data=data or {"a": "1"})


def _outcomes(proxy: FaultProxy, method: str, path: str) -> list[int | str]:
    return [e.outcome for e in proxy.requests(method, path)]


# ----------------------------------------------------------------------------- passthrough


@pytest.mark.serial  # compares two lists of every namespace: no test may add one
def test_given_no_rules_when_listing_namespaces_then_the_answer_is_the_servers(
    proxy: FaultProxy, via: Kube, kube: Kube, namespace: str
) -> None:
    """Given no rules, When namespaces and the version are read through the proxy, Then the
    answers match the API server's and every request is logged with its status."""
    through = {n.metadata.name for n in via.core.list_namespace().items}
    direct = {n.metadata.name for n in kube.core.list_namespace().items}
    version = client.VersionApi(via.api_client).get_code()

    assert namespace in through and "default" in through
    assert through == direct
    assert version.git_version == client.VersionApi(kube.api_client).get_code().git_version
    assert _outcomes(proxy, "GET", r"^/api/v1/namespaces(\?|$)") == [200]
    assert _outcomes(proxy, "GET", r"^/version") == [200]


def test_given_no_rules_when_writing_a_configmap_every_way_then_each_write_applies(
    proxy: FaultProxy, via: Kube, kube: Kube, namespace: str
) -> None:
    """Given no rules, When a ConfigMap is created, patched (merge, strategic merge, JSON
    patch), replaced and deleted through the proxy, Then the server saw each change."""
    core = via.core
    core.create_namespaced_config_map(namespace, _configmap("cm", {"a": "1", "b": "2"}))
    core.patch_namespaced_config_map(
        "cm", namespace, {"data": {"b": None, "c": "3"}},
        _content_type="application/merge-patch+json",
    )
    after_merge = kube.core.read_namespaced_config_map("cm", namespace).data
    core.patch_namespaced_config_map("cm", namespace, {"data": {"d": "4"}})  # strategic
    core.patch_namespaced_config_map(
        "cm", namespace, [{"op": "replace", "path": "/data/a", "value": "10"}]
    )  # a list: JSON patch
    after_patches = core.read_namespaced_config_map("cm", namespace)
    after_patches.data["e"] = "5"
    core.replace_namespaced_config_map("cm", namespace, after_patches)
    after_put = kube.core.read_namespaced_config_map("cm", namespace).data
    core.delete_namespaced_config_map("cm", namespace)

    assert after_merge == {"a": "1", "c": "3"}
    assert after_put == {"a": "10", "c": "3", "d": "4", "e": "5"}
    with pytest.raises(ApiException) as gone:
        kube.core.read_namespaced_config_map("cm", namespace)
    assert gone.value.status == 404
    cm_path = rf"/namespaces/{namespace}/configmaps"
    assert _outcomes(proxy, "POST", cm_path) == [201]
    assert _outcomes(proxy, "PATCH", cm_path) == [200, 200, 200]
    assert _outcomes(proxy, "PUT", cm_path) == [200]
    assert _outcomes(proxy, "DELETE", cm_path) == [200]


def test_given_no_rules_when_watching_configmaps_then_an_added_event_arrives_at_once(
    proxy: FaultProxy, via: Kube, kube: Kube, namespace: str
) -> None:
    """Given a watch on ConfigMaps through the proxy, When one is created, Then the ADDED
    event reaches the client right away (the stream is relayed, not buffered)."""
    rv = via.core.list_namespaced_config_map(namespace).metadata.resource_version
    created_at: list[float] = []

    def create_later() -> None:
        time.sleep(1.0)
        created_at.append(time.monotonic())
        kube.core.create_namespaced_config_map(namespace, _configmap("watched"))

    creator = threading.Thread(target=create_later, daemon=True)
    creator.start()
    w = watch.Watch()
    seen = None
    for event in w.stream(
        via.core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=15
    ):
        if event["type"] == "ADDED" and event["object"].metadata.name == "watched":
            seen = time.monotonic()
            w.stop()
    creator.join(5)

    assert seen is not None and created_at, "no ADDED event for the new ConfigMap"
    assert seen - created_at[0] < 3.0, f"event took {seen - created_at[0]:.1f} s"
    assert _outcomes(proxy, "GET", r"configmaps\?.*watch=true") == [200]


def test_given_no_rules_when_head_expect_and_chunked_requests_arrive_then_they_are_forwarded(
    proxy: FaultProxy, kube: Kube, namespace: str
) -> None:
    """Given no rules, When a raw HTTP client sends HEAD, a POST with `Expect:
    100-continue` and a POST with a chunked body, Then each gets the server's answer."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.request("HEAD", "/healthz")
    head = conn.getresponse()
    head_body = head.read()
    results = []
    for name, extra in (("expect", {"Expect": "100-continue"}), ("chunked", None)):
        body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": name}, "data": {"k": name}})
        headers = {"Content-Type": "application/json", **(extra or {})}
        if extra is None:
            conn.request("POST", f"/api/v1/namespaces/{namespace}/configmaps",
                         body=iter([body[:10].encode(), body[10:].encode()]),
                         headers=headers, encode_chunked=True)
        else:
            conn.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body=body,
                         headers=headers)
        resp = conn.getresponse()
        results.append((resp.status, json.loads(resp.read())["metadata"]["name"]))
    conn.close()

    assert (head.status, head.getheader("Content-Length"), head_body) == (200, "2", b"")
    assert results == [(201, "expect"), (201, "chunked")]
    assert kube.core.read_namespaced_config_map("chunked", namespace).data == {"k": "chunked"}


def test_given_a_running_pod_when_read_through_the_pod_proxy_then_its_answer_comes_back(
    proxy: FaultProxy, via: Kube, kube: Kube, namespace: str, deploy_hello
) -> None:
    """Given hello:v1 runs, When /version is read through the API server's pod proxy via
    the fault proxy, Then the app's answer comes back."""
    deploy_hello(namespace, replicas=1, timeout=60)
    pod = live_pods(kube, namespace)[0].metadata.name

    assert version_via_pod_proxy(via, namespace, pod) == "1.0.0"
    assert _outcomes(proxy, "GET", rf"/pods/{pod}(:|%3A)8080/proxy/version") == [200]


# ----------------------------------------------------------------------------- respond


def test_given_a_429_rule_when_the_client_reads_then_it_sees_429_with_retry_after(
    proxy: FaultProxy, strict: Kube, namespace: str
) -> None:
    """Given a rule answering 429 with Retry-After: 3, When the client lists ConfigMaps, Then
    it gets ApiException 429 with the header and a TooManyRequests Status, every time, until
    the rule is cleared."""
    rule = proxy.add(respond(429, RETRY_AFTER_429), method="GET", path=r"/configmaps")

    errors = []
    for _ in range(2):
        with pytest.raises(ApiException) as e:
            strict.core.list_namespaced_config_map(namespace)
        errors.append(e.value)
    proxy.clear()
    strict.core.list_namespaced_config_map(namespace)

    assert [e.status for e in errors] == [429, 429]
    assert errors[0].headers["Retry-After"] == "3"
    status = json.loads(errors[0].body)
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "TooManyRequests", 429)
    assert rule.hits == 2
    assert _outcomes(proxy, "GET", r"/configmaps") == ["respond:429", "respond:429", 200]


@pytest.mark.parametrize("code", [500, 503, 504])
def test_given_a_times_1_rule_when_the_client_reads_twice_then_only_the_first_fails(
    proxy: FaultProxy, strict: Kube, namespace: str, code: int
) -> None:
    """Given a rule answering CODE once (times=1), When the client reads twice, Then the first
    read fails with CODE, the second succeeds, and the rule counts one hit."""
    rule = proxy.add(Rule(respond(code), method="GET", path=r"/configmaps", times=1))

    with pytest.raises(ApiException) as first:
        strict.core.list_namespaced_config_map(namespace)
    second = strict.core.list_namespaced_config_map(namespace)

    assert first.value.status == code
    assert second.items is not None
    assert rule.hits == 1 and rule.exhausted
    assert _outcomes(proxy, "GET", r"/configmaps") == [f"respond:{code}", 200]


def test_given_a_429_once_when_the_default_client_reads_then_urllib3_waits_and_retries(
    proxy: FaultProxy, via: Kube, namespace: str
) -> None:
    """Given a 429 with Retry-After: 3 once, When the default client (urllib3's own retries)
    GETs, Then the call succeeds, after a second GET sent at least 3 s after the first."""
    rule = proxy.add(respond(429, RETRY_AFTER_429), method="GET", path=r"/configmaps",
                     times=1)

    via.core.list_namespaced_config_map(namespace)

    gets = proxy.requests("GET", r"/configmaps")
    assert [e.outcome for e in gets] == ["respond:429", 200]
    assert gets[1].time - gets[0].time >= 2.9, gets
    assert rule.hits == 1


def test_given_a_delay_rule_when_the_client_reads_then_the_answer_is_late_but_correct(
    proxy: FaultProxy, strict: Kube, namespace: str
) -> None:
    """Given a 1.5 s delay on reads of ConfigMaps, When the client lists them, Then the list
    arrives after at least 1.5 s while other reads are not delayed."""
    proxy.add(delay(1.5), method="GET", path=r"/configmaps")

    started = time.monotonic()
    listed = strict.core.list_namespaced_config_map(namespace)
    slow = time.monotonic() - started
    started = time.monotonic()
    strict.core.read_namespace(namespace)
    fast = time.monotonic() - started

    assert listed.items is not None
    assert slow >= 1.5 and fast < 1.0, (slow, fast)
    assert _outcomes(proxy, "GET", r"/configmaps") == ["delay:200"]


# ----------------------------------------------------------------------------- connection faults


@pytest.mark.parametrize("retries", [False, None], ids=["no-retries", "default-retries"])
def test_given_reset_after_forward_when_patching_then_the_client_fails_but_the_patch_applied(
    proxy: FaultProxy, kube: Kube, namespace: str, tmp_path: Path, retries: object
) -> None:
    """Given a ConfigMap and a reset_after_forward rule on its PATCH, When the client
    patches it, Then the client gets a connection error, the PATCH was sent exactly once,
    and a re-read shows the patch applied."""
    kube.core.create_namespaced_config_map(namespace, _configmap("target"))
    rule = proxy.add(reset_after_forward(), method="PATCH", path=r"/configmaps/target$")
    api = _client(proxy, tmp_path / "kubeconfig", retries=retries)
    try:
        with pytest.raises((ProtocolError, MaxRetryError)) as failure:
            client.CoreV1Api(api).patch_namespaced_config_map(
                "target", namespace, {"data": {"a": "patched"}}
            )
    finally:
        api.close()

    assert "ConnectionResetError" in repr(failure.value), repr(failure.value)
    assert kube.core.read_namespaced_config_map("target", namespace).data == {"a": "patched"}
    assert rule.hits == 1
    assert _outcomes(proxy, "PATCH", r"/configmaps/target") == ["reset_after_forward:200"]


def test_given_a_blackhole_when_the_client_reads_then_it_times_out_while_others_pass(
    proxy: FaultProxy, strict: Kube, namespace: str
) -> None:
    """Given a blackhole on one ConfigMap, When the client reads it with a 2 s timeout, Then
    it times out within 2-5 s, other requests through the proxy still work meanwhile, and
    the proxy lets the connection go once the client gave up."""
    rule = proxy.add(blackhole(), path=r"/configmaps/held$")
    outcome: dict[str, object] = {}

    def read_held() -> None:
        started = time.monotonic()
        try:
            strict.core.read_namespaced_config_map("held", namespace, _request_timeout=(2, 2))
        except Exception as e:  # noqa: BLE001 - the test inspects it
            outcome["error"] = e
        outcome["elapsed"] = time.monotonic() - started

    reader = threading.Thread(target=read_held, daemon=True)
    reader.start()
    wait_for(lambda: proxy.held == 1, 2.0, 0.05, "the proxy to hold the request")
    started = time.monotonic()
    others = strict.core.list_namespace(_request_timeout=(2, 2))
    other_took = time.monotonic() - started
    reader.join(10)

    assert others.items and other_took < 1.0, other_took
    assert not reader.is_alive()
    assert isinstance(outcome.get("error"), (ReadTimeoutError, MaxRetryError)), outcome
    assert 1.9 <= outcome["elapsed"] <= 5.0, outcome
    assert rule.hits == 1
    wait_for(lambda: proxy.held == 0, 3.0, 0.05, "the proxy to release the given-up request")


def test_given_a_held_connection_when_the_proxy_stops_then_the_client_sees_it_closed(
    proxy: FaultProxy, namespace: str
) -> None:
    """Given a raw connection held by a blackhole, When the proxy stops, Then stop returns
    promptly and the client's connection is closed."""
    proxy.add(blackhole())
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    try:
        sock.sendall(f"GET /api/v1/namespaces/{namespace} HTTP/1.1\r\n"
                     "Host: lab\r\n\r\n".encode())
        wait_for(lambda: proxy.held == 1, 2.0, 0.05, "the proxy to hold the request")
        started = time.monotonic()
        proxy.stop()
        stop_took = time.monotonic() - started
        try:
            tail = sock.recv(100)
        except ConnectionResetError:
            tail = b""
    finally:
        sock.close()

    assert stop_took < 3.0, stop_took
    assert tail == b""


# ----------------------------------------------------------------------------- watch faults


def test_given_watch_gone_when_the_client_watches_then_it_reads_one_410_error_event(
    proxy: FaultProxy, strict: Kube, namespace: str
) -> None:
    """Given a watch_gone rule, When the client opens a raw watch, Then the stream holds
    exactly one ERROR event with a 410 Expired Status and ends; plain lists pass through."""
    rule = proxy.add(watch_gone(), path=r"/configmaps")

    listed = strict.core.list_namespaced_config_map(namespace)
    resp = strict.core.list_namespaced_config_map(
        namespace, watch=True, _preload_content=False, _request_timeout=(2, 5)
    )
    lines = [json.loads(line) for line in resp.data.splitlines() if line.strip()]
    resp.release_conn()

    assert listed.items is not None
    assert resp.status == 200
    assert len(lines) == 1, lines
    event = lines[0]
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
    assert event["object"]["message"] == "too old resource version"
    assert rule.hits == 1  # the rule only claims watches


def test_given_watch_gone_when_watch_helper_streams_then_it_raises_410(
    proxy: FaultProxy, via: Kube, namespace: str
) -> None:
    """Given a watch_gone rule, When kubernetes' Watch helper streams (with a timeout, so
    without its own 410 retry), Then it raises ApiException 410."""
    rule = proxy.add(watch_gone())

    with pytest.raises(ApiException) as gone:
        for _ in watch.Watch().stream(
            via.core.list_namespaced_config_map, namespace, timeout_seconds=5
        ):
            pass

    assert gone.value.status == 410
    assert rule.hits == 1


def test_given_drop_watch_after_1_when_watching_then_the_stream_ends_after_one_event(
    proxy: FaultProxy, strict: Kube, kube: Kube, namespace: str
) -> None:
    """Given three ConfigMaps and drop_watch_after(1) once, When the client watches from the
    start (one ADDED per ConfigMap), Then the stream ends early after one event; the next
    watch is not cut."""
    for i in range(3):
        kube.core.create_namespaced_config_map(namespace, _configmap(f"cm{i}"))
    rule = proxy.add(drop_watch_after(1), path=r"/configmaps", times=1)

    def watch_events(timeout_seconds: int) -> tuple[list[dict], float]:
        started = time.monotonic()
        resp = strict.core.list_namespaced_config_map(
            namespace, watch=True, timeout_seconds=timeout_seconds, _preload_content=False,
            _request_timeout=(2, timeout_seconds + 5),
        )
        events = [json.loads(line) for line in resp.data.splitlines() if line.strip()]
        resp.release_conn()
        return events, time.monotonic() - started

    cut, cut_took = watch_events(30)
    full, _ = watch_events(2)

    assert [e["type"] for e in cut] == ["ADDED"]
    assert cut_took < 5.0, cut_took
    names = {e["object"]["metadata"]["name"] for e in full}
    assert {"cm0", "cm1", "cm2"} <= names, names
    assert rule.hits == 1
    assert _outcomes(proxy, "GET", r"watch=true") == ["drop_watch_after:200", 200]


def test_given_a_watch_when_the_client_hangs_up_then_the_proxy_ends_the_upstream_watch(
    proxy: FaultProxy, strict: Kube, namespace: str
) -> None:
    """Given a quiet watch relayed by the proxy, When the client closes it, Then the proxy
    stops relaying (and drops its upstream request) within a few seconds."""
    resp = strict.core.list_namespaced_config_map(
        namespace, watch=True, resource_version="0", timeout_seconds=60,
        _preload_content=False, _request_timeout=(2, 70),
    )
    wait_for(lambda: proxy.active_streams == 1, 5.0, 0.05, "the watch to be relayed")
    resp.close()

    wait_for(lambda: proxy.active_streams == 0, 5.0, 0.05, "the proxy to end the watch")
