"""Bad input exits 2 with a precise message, refused before the kubeconfig is even read.

deployer's real entry point runs in-process with a kubeconfig that does not exist: a
command that got as far as connecting would exit 69 ("cannot read kubeconfig"), so exit 2
with the problem named means it was refused before any API call and changed nothing.
tests/e2e/test_bad_input.py runs cases that need the cluster, and one of these, against
the lab and checks that no object changed.
"""

import pytest
import structlog

from deployer.cli import run
from deployer.exitcodes import ExitCode

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
    (["recreate", "--app", "hello", "--image", "hello:latest"], "latest"),
    (["rolling", "--app", "hello", "--image", "v2", "--progress-deadline", "soon"],
     "--progress-deadline"),
    (["rollback", "--app", "hello", "--to-revision", "-3"], "revision"),
    (["rolling", "--app", "hello", "--image", "v2", "--samples", "0"], "--samples 0"),
    (["recreate", "--app", "hello", "--image", "v2", "--samples", "101"], "--samples 101"),
    (["blue-green", "--app", "hello", "--image", "v2", "--samples", "0"], "--samples 0"),
    (["canary", "--app", "hello", "--image", "v2", "--samples", "1000"], "--samples 1000"),
]


@pytest.fixture(autouse=True)
def no_cluster(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.delenv("CI", raising=False)
    yield
    structlog.reset_defaults()  # run() pointed logging at this test's captured stderr


@pytest.mark.parametrize(("args", "named"), CASES, ids=[" ".join(c[0][3:5]) for c in CASES])
def test_bad_input_exits_2_names_the_problem_before_any_api_call(args, named, capsys):
    code = run(["-n", "bad-input", *args])

    err = capsys.readouterr().err
    assert code == ExitCode.INVALID, err
    assert named in err, err
    assert "deployer: " in err  # the stable error id
    assert "kubeconfig" not in err, "refused before the kubeconfig was read"
    assert "Traceback" not in err
