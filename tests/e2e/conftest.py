"""Fixtures for end-to-end tests on the lab cluster.

Run them inside the lab: `make test-e2e`, or `lab/run python3 -m pytest tests/e2e`.
Outside it (no KUBECONFIG, or the API server does not answer) every e2e test fails with
"run through lab/run (make test-e2e)" rather than being skipped.

Tests that disturb the whole lab are marked `serial`; `make test-e2e` runs the others in
parallel (pytest-xdist, `-n N -m "not serial"`), then the serial ones alone. Each test
works in its own namespace, so parallel tests share nothing but the node.

Fixtures:
  kube            (session)  Kube(api_client, core, apps) for the lab, checked to answer
  namespace       (function) a fresh namespace `e2e-<test>-<hex4>`, deleted afterwards
                             (kept when DEPLOYER_E2E_KEEP_NAMESPACES=1)
  deploy_hello    (function) deploy_hello(namespace, image="hello:v1", replicas=3,
                             name="hello", labels=None, wait=True) -> V1Deployment
  version_via_service        the function of the same name in tests/e2e/lab.py
  shared_hello    (session)  the namespace of one hello v1 (3 replicas, one revision, no
                             run recorded) for tests that only read: dry runs, refusals,
                             status. Each such test must leave it as it found it, and
                             checks that itself. Each pytest-xdist worker deploys it once,
                             when a test first asks for it.

Plain helpers (wait_for, version_via_pod_proxy, version_via_pod_ip, CLIENT_ADDRESSES,
live_pods, pod_ready, waiting_reasons, ...) are in tests/e2e/lab.py.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# `tests.e2e.*` must be importable however pytest was started (pytest, python -m pytest).
_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from tests.e2e import lab  # noqa: E402
from tests.e2e.lab import (  # noqa: E402,F401 - re-exported for tests
    CLIENT_ADDRESSES,
    Kube,
    LabUnavailable,
    version_via_pod_ip,
    version_via_pod_proxy,
    wait_for,
)

_E2E_DIR = Path(__file__).resolve().parent


# The longest tests (1-2.5 min on a loaded 2-core lab; the strategies in any order, about
# 5), started first so that the parallel phase does not end waiting on one of them while
# the other workers are idle.
LONGEST_FIRST = (
    "test_every_ordered_pair_of_strategies_on_one_app",
    "test_an_autoscaler_resizing_stable_mid_canary_keeps_the_weight",
    "test_canary_of_v2_passes_the_template_the_comparison_and_the_probe",
    "test_canary_of_v6_is_rejected_by_its_5xx_ratio_in_prometheus_while_users_call_it",
    "test_recreate_to_a_missing_image_rolls_back_to_v1",
    "test_canary_and_blue_green_run_as_the_ci_service_account",
    "test_api_unreachable_past_the_budget_exits_69_and_destroys_nothing",
    "test_use_context_during_a_run_does_not_move_it_to_another_cluster",
    "test_rollback_to_a_named_revision",
    "test_rollback_after_a_promoted_canary_restores_v1",
    "test_recreate_to_v2_reports_downtime_and_keeps_the_rolling_strategy",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is an e2e test, marked or not; the longest run first."""
    for item in items:
        if _E2E_DIR in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.e2e)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.name.split("[")[0], len(rank)))  # stable


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A `serial` test (it restarts the API server, or reads what every test changes) must
    have the lab to itself: on a pytest-xdist worker it fails instead of running."""
    if item.get_closest_marker("serial") is not None and hasattr(item.config, "workerinput"):
        pytest.fail('a serial test cannot run under pytest-xdist: select the others with '
                    '-n N -m "not serial", and run this one without -n (make test-e2e does '
                    "both)", pytrace=False)


@pytest.fixture(scope="session")
def kube() -> Kube:
    try:
        return lab.default_kube()
    except LabUnavailable as e:
        reason = str(e)
    pytest.fail(reason, pytrace=False)


@pytest.fixture(autouse=True)
def _lab_required(request: pytest.FixtureRequest) -> None:
    """An e2e test fails (not skips) when the lab is out of reach, even without fixtures."""
    if request.node.get_closest_marker("e2e") is not None:
        request.getfixturevalue("kube")


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    name = lab.create_namespace(kube, lab.namespace_name(request.node.name))
    yield name
    if os.environ.get("DEPLOYER_E2E_KEEP_NAMESPACES") != "1":
        lab.delete_namespace(kube, name)


@pytest.fixture(scope="session")
def shared_hello(kube: Kube) -> Iterator[str]:
    name = lab.create_namespace(kube, lab.namespace_name("shared-hello"))
    try:
        lab.deploy_hello(kube, name)
        yield name
    finally:
        if os.environ.get("DEPLOYER_E2E_KEEP_NAMESPACES") != "1":
            lab.delete_namespace(kube, name)


@pytest.fixture
def deploy_hello(kube: Kube) -> Callable[..., Any]:
    """deploy_hello(namespace, image="hello:v1", replicas=3, name="hello", labels=None,
    wait=True, timeout=120, service=True) -> V1Deployment (see lab.deploy_hello)."""

    def deploy(
        namespace: str,
        image: str = "hello:v1",
        replicas: int = 3,
        name: str = "hello",
        labels: dict[str, str] | None = None,
        wait: bool = True,
        **kwargs: Any,
    ) -> Any:
        return lab.deploy_hello(kube, namespace, image, replicas, name, labels, wait, **kwargs)

    return deploy


@pytest.fixture
def version_via_service(kube: Kube) -> Callable[..., str]:
    """version_via_service(namespace, service, client_ip, path="/version") -> str."""

    def get(namespace: str, service: str, client_ip: str, path: str = "/version") -> str:
        return lab.version_via_service(namespace, service, client_ip, path, kube=kube)

    return get
