"""Usage errors are exit 2 with a message, never a traceback, and touch no cluster.

These run deployer's real entry point in-process. The kubeconfig points at a file that
does not exist, so a command that got as far as connecting would fail differently.
"""

import pytest
import structlog

from deployer.cli import run
from deployer.exitcodes import ExitCode


@pytest.fixture(autouse=True)
def no_cluster(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.delenv("CI", raising=False)
    yield
    structlog.reset_defaults()  # run() pointed logging at this test's captured stderr


@pytest.mark.parametrize(("argv", "message"), [
    (["status", "--bogus"], "No such option: --bogus"),
    (["rolling", "--app", "hello"], "Missing option '--image'"),
    (["rolling", "--app", "hello", "--image", "v2", "--max-surge"],
     "'--max-surge' requires an argument"),
    (["launch", "--app", "hello"], "No such command 'launch'"),
])
def test_usage_errors_exit_2_with_the_problem_named(argv, message, capsys):
    assert run(argv) == ExitCode.INVALID
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    if "requires an argument" not in message:  # click names no command for that one
        assert "Try 'deployer" in err  # and where to find help


def test_in_ci_without_a_context_nothing_is_read(monkeypatch, capsys):
    monkeypatch.setenv("CI", "true")
    assert run(["status", "--app", "hello"]) == ExitCode.INVALID
    err = capsys.readouterr().err
    assert "without --context" in err
    assert "missing-kubeconfig" not in err  # refused before the kubeconfig was opened


@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_ci_switched_off_does_not_require_a_context(monkeypatch, capsys, value):
    monkeypatch.setenv("CI", value)
    code = run(["status", "--app", "hello"])
    err = capsys.readouterr().err
    assert "without --context" not in err
    # it went on to read the kubeconfig, which does not exist here
    assert code == ExitCode.INVALID and "cannot read the kubeconfig" in err
