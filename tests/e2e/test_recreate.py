"""recreate on the lab cluster: stop old, start new, measure downtime, restore the strategy."""

from __future__ import annotations

import threading
import time

import pytest

from tests.e2e.app_checks import deployment_image, versions_by_pod
from tests.e2e.deployer_cli import deployer
from tests.e2e.lab import CLIENT_ADDRESSES, _http_get, service_url

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_recreate_to_v2_reports_downtime_and_keeps_the_rolling_strategy(namespace, deploy_hello,
                                                                        kube):
    deploy_hello(namespace)

    url = service_url(kube, namespace, "hello")
    seen: list[tuple[float, str]] = []  # (when, what a new client met through the Service)
    done = threading.Event()

    def clients() -> None:
        n = 0
        while not done.is_set():
            n += 1
            try:
                answer = _http_get(url, local_address=CLIENT_ADDRESSES[n % 40], timeout=1.0)
            except Exception as exc:  # noqa: BLE001 - refused, reset, timed out: not served
                answer = type(exc).__name__
            seen.append((time.time(), answer))
            time.sleep(0.1)

    watcher = threading.Thread(target=clients, daemon=True)
    watcher.start()
    result = deployer(namespace, "-o", "json", "recreate", "--app", "hello", "--image", "v2")
    ended = time.time()
    time.sleep(3)
    done.set()
    watcher.join(5)

    assert result.code == 0, result
    # done means users are served again: no client met an error after the command ended
    unserved = [(round(t - ended, 2), a) for t, a in seen if a not in ("1.0.0", "2.0.0")]
    assert unserved, "a recreate has downtime: clients met it while the command ran"
    assert max(t for t, _ in unserved) < 0, unserved
    assert {a for t, a in seen if t > ended} == {"2.0.0"}
    assert result.report["verdict"] == "promoted"
    assert result.report["downtimeSeconds"] is not None and result.report["downtimeSeconds"] > 0
    assert set(versions_by_pod(kube, namespace).values()) == {"2.0.0"}
    dep = kube.apps.read_namespaced_deployment("hello", namespace)
    assert dep.spec.strategy.type == "RollingUpdate", "the user's strategy is restored"


def test_recreate_to_a_missing_image_rolls_back_to_v1(namespace, deploy_hello, kube):
    deploy_hello(namespace)

    result = deployer(namespace, "-o", "json", "recreate", "--app", "hello", "--image", "v9")

    assert result.code == 1, result
    assert deployment_image(kube, namespace) == "hello:v1"
    versions = versions_by_pod(kube, namespace)
    assert len(versions) == 3 and set(versions.values()) == {"1.0.0"}, versions
    dep = kube.apps.read_namespaced_deployment("hello", namespace)
    assert dep.spec.strategy.type == "RollingUpdate"
