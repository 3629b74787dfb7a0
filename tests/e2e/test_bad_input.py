"""Bad input exits 2 with a precise message and changes nothing in the cluster."""

from __future__ import annotations

import pytest

from tests.e2e.app_checks import resource_versions
from tests.e2e.deployer_cli import deployer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CASES = [
    (["rolling", "--app", "hello", "--image", "Hello:V2"], "lowercase"),
    (["rolling", "--app", "hello", "--image", "hello:v2;rm"], "';'"),
    (["rolling", "--app", "hello", "--image", "hello: v2"], "whitespace"),
    (["rolling", "--app", "hello", "--image", "v" * 129], "128"),
    (["rolling", "--app", "Hello", "--image", "v2"], "--app"),
    (["rolling", "--app", "h" * 64, "--image", "v2"], "--app"),
    (["rolling", "--app", "hello", "--image", "v2", "--max-surge", "-1"], "--max-surge"),
    (["rolling", "--app", "hello", "--image", "v2", "--max-unavailable", "101%"],
     "--max-unavailable"),
    (["rolling", "--app", "nope", "--image", "v2"], "no Deployment named 'nope'"),
    (["recreate", "--app", "hello", "--image", "hello:latest"], "latest"),
    (["rolling", "--app", "hello", "--image", "v2", "--progress-deadline", "soon"],
     "--progress-deadline"),
    (["rolling", "--app", "hello", "--image", "stable"], "--expect-version"),
    (["rollback", "--app", "hello", "--to-revision", "-3"], "revision"),
]


@pytest.mark.parametrize(("args", "named"), CASES, ids=[" ".join(c[0][3:5]) for c in CASES])
def test_bad_input_exits_2_names_the_problem_and_changes_nothing(namespace, deploy_hello, kube,
                                                                 args, named):
    deploy_hello(namespace)
    before = resource_versions(kube, namespace)

    result = deployer(namespace, *args)

    assert result.code == 2, result
    assert named in result.stderr, result
    assert "deployer: " in result.stderr  # the stable error id
    assert resource_versions(kube, namespace) == before
