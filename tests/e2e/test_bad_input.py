"""Bad input exits 2 with a precise message and changes nothing in the cluster.

Input that is wrong on its face (bad names, images, durations, surges, revisions) is
refused before the kubeconfig is read: tests/unit/test_bad_input.py runs each such case
through deployer's entry point. Here, on the lab, run the cases that need the cluster to
be found wrong (an app that does not exist, a tag whose version cannot be inferred), bad
budgets from the environment and an unknown context or namespace, plus one on-its-face
case as the real proof that such input changes nothing (no Lease either). The cases only
read, so they use the shared hello v1 (conftest's shared_hello); each takes its own
snapshot right before it runs.
"""

from __future__ import annotations

import pytest

from tests.e2e.app_checks import resource_versions
from tests.e2e.deployer_cli import deployer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CASES = [
    (["rolling", "--app", "hello", "--image", "Hello:V2"], {}, "lowercase"),
    (["rolling", "--app", "nope", "--image", "v2"], {}, "no Deployment named 'nope'"),
    (["canary", "--app", "helo", "--image", "v2"], {}, "did you mean hello?"),  # no Lease left
    (["rollback", "--app", "helo"], {}, "did you mean hello?"),
    (["rolling", "--app", "hello", "--image", "v2", "--context", "nope"], {},
     "context 'nope' is not in the kubeconfig"),  # a global option after the subcommand
    (["rolling", "--app", "hello", "--image", "stable"], {}, "--expect-version"),
    (["rolling", "--app", "hello", "--image", "v2"], {"DEPLOYER_LEASE_SECONDS": "0"},
     "DEPLOYER_LEASE_SECONDS='0' is invalid"),
    (["rollback", "--app", "hello"], {"DEPLOYER_API_OUTAGE_BUDGET": "soon"},
     "DEPLOYER_API_OUTAGE_BUDGET='soon' is invalid"),
]


def case_id(case: tuple[list[str], dict[str, str], str]) -> str:
    args, env, _ = case
    return " ".join([args[0], *args[2:5:2], *(f"{k}={v}" for k, v in env.items())])


@pytest.mark.parametrize(("args", "env", "named"), CASES, ids=[case_id(c) for c in CASES])
def test_bad_input_exits_2_names_the_problem_and_changes_nothing(shared_hello, kube, args,
                                                                 env, named):
    before = resource_versions(kube, shared_hello)

    result = deployer(shared_hello, *args, env=env)

    assert result.code == 2, result
    assert named in result.stderr, result
    assert "deployer: " in result.stderr  # the stable error id
    assert resource_versions(kube, shared_hello) == before


def test_a_namespace_that_does_not_exist_is_input_not_a_human_needed(shared_hello, kube):
    before = resource_versions(kube, shared_hello)

    result = deployer("e2e-no-such-namespace", "rolling", "--app", "hello", "--image", "v2")

    assert result.code == 2, result
    assert "namespace 'e2e-no-such-namespace' does not exist" in result.stderr, result
    assert resource_versions(kube, shared_hello) == before
