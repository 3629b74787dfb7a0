"""Strategies in any order on one app: every ordered pair of the four, successes and
failures alike, and rollback of a release made on a blue-green's live side.

After each run the test reads, independently of deployer, what users get through the
Service and what every pod of the live side answers.
"""

from __future__ import annotations

import pytest

from tests.e2e.app_checks import versions_by_pod
from tests.e2e.deployer_cli import deployer
from tests.e2e.lab import CLIENT_ADDRESSES, version_via_service, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

# (strategy, image, expected exit code). Three chains, each on an app of its own so that
# they run side by side; the second and third begin with a blue-green, so that
# hello-green is live when they go on. Together they visit every ordered pair of the
# four strategies (checked below), successes and failures alike.
CHAINS = {
    "from-the-app": [
        ("blue-green", "v9", 1),  # narrows the Service, fails: the Service is put back
        ("rolling", "v2", 0), ("recreate", "v1", 0), ("rolling", "v2", 0),
        ("canary", "v1", 0), ("rolling", "v2", 0), ("blue-green", "v1", 0),
    ],
    "from-a-live-green": [
        ("blue-green", "v2", 0),  # from here hello-green is live
        ("recreate", "v1", 0), ("canary", "v2", 0), ("canary", "v9", 1),
        ("recreate", "v1", 0), ("blue-green", "v2", 0), ("canary", "v1", 0),
        ("blue-green", "v2", 0),
    ],
    "rollback-on-green": [
        ("blue-green", "v2", 0),
        ("rolling", "v1", 0),  # on hello-green, the live side
        ("rollback", "v2", 0),  # undoes that rolling update, on hello-green
        ("rolling", "v9", 1), ("blue-green", "v9", 1), ("canary", "v1", 0),
    ],
}
STRATEGIES = ("rolling", "recreate", "canary", "blue-green")
PAIRS = {(a[0], b[0]) for chain in CHAINS.values()
         for a, b in zip(chain, chain[1:], strict=False)
         if a[0] != b[0] and a[0] in STRATEGIES and b[0] in STRATEGIES}
assert len(PAIRS) == 12, sorted(PAIRS)  # every ordered pair of the four
VERSION = {"v1": "1.0.0", "v2": "2.0.0"}


def clients(run: int) -> str:
    """Addresses no earlier run of this test used: ClientIP affinity pins a client to the
    pod it met for 3 hours, so reused clients would not meet a new canary."""
    first = run * 50 + 1
    return f"10.201.{first // 256}.{first % 256 or 1}-10.201.{(first + 44) // 256}." \
           f"{(first + 44) % 256}"


def served(kube, namespace) -> set[str]:
    return {version_via_service(namespace, "hello", ip, kube=kube) for ip in CLIENT_ADDRESSES}


def live_pods(kube, namespace) -> dict[str, str]:
    selector = kube.core.read_namespaced_service("hello", namespace).spec.selector
    return versions_by_pod(kube, namespace, ",".join(f"{k}={v}" for k, v in selector.items()))


@pytest.mark.parametrize("chain", list(CHAINS))
def test_every_ordered_pair_of_strategies_on_one_app(namespace, deploy_hello, kube, chain):
    deploy_hello(namespace)
    serving = "1.0.0"
    for i, (strategy, image, code) in enumerate(CHAINS[chain]):
        extra = {"blue-green": ["--keep-old", "0s"], "canary": ["--steps", "50"]}.get(
            strategy, [])
        if strategy in ("canary", "blue-green"):
            extra += ["--client-addresses", clients(i)]
        if strategy == "rollback":
            result = deployer(namespace, "-o", "json", "rollback", "--app", "hello")
        else:
            result = deployer(namespace, "-o", "json", strategy, "--app", "hello", "--image",
                              image, *extra)
        where = f"run {i + 1} ({strategy} {image})"
        assert result.code == code, f"{where}: {result}"
        if code == 0:
            serving = VERSION[image]
        # a native rolling update ends when the new pods are ready; the old ones leave
        # kube-proxy's rules a moment later (a canary or blue-green waits for that itself)
        settle = 10 if strategy in ("rolling", "recreate", "rollback") else 0
        wait_for(lambda want={serving}: served(kube, namespace) == want, settle, 1.0,
                 f"{where}: every client on {serving}")
        pods = live_pods(kube, namespace)
        assert len(pods) == 3 and set(pods.values()) == {serving}, f"{where}: {pods}"
        names = {d.metadata.name for d in kube.apps.list_namespaced_deployment(namespace).items}
        assert "hello-canary" not in names, where
        if i == 0 and code:  # the failed first blue-green put back the Service it narrowed
            selector = kube.core.read_namespaced_service("hello", namespace).spec.selector
            assert selector == {"app": "hello"}, selector
