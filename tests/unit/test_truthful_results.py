"""Exit 0 means verified, or says "not verified" in those words."""

import io
from types import SimpleNamespace

import pytest

from deployer.cli import _already_running
from deployer.model import Outcome, Target, Verdict
from deployer.report import Reporter
from deployer.validation import parse_image

TARGET = Target(parse_image("hello:v5"), "5.0.0")


def answering(version):
    """The app state as _already_running reads it: the live side's measured version."""
    state = SimpleNamespace(version=version)
    state.on_live_side = lambda: state
    return state


@pytest.mark.parametrize(("answers", "verdict", "code", "said"), [
    ("5.0.0", Verdict.NOOP, 0, "nothing to do"),
    ("1.0.0", Verdict.REJECTED, 1, "its pods answer 1.0.0, not 5.0.0; nothing was changed"),
    (None, Verdict.REJECTED, 1, "do not all answer one version"),
])
def test_an_app_already_on_the_image_is_a_no_op_only_when_it_answers_the_version(
        answers, verdict, code, said):
    outcome = _already_running("hello", answering(answers), TARGET)
    assert (outcome.verdict, outcome.exit_code) == (verdict, code)
    assert said in outcome.message
    assert outcome.verified_version == (answers if code == 0 else None)


def test_with_the_check_off_the_no_op_says_not_verified():
    outcome = _already_running("hello", answering("1.0.0"),
                               Target(parse_image("hello:v5"), None))
    assert outcome.exit_code == 0 and "not verified" in outcome.message
    assert outcome.verified_version is None


@pytest.mark.parametrize(("expected", "line"), [
    (None, "verified:         not verified (the version check is off)"),
    ("2.0.0", "verified:         not verified\n"),
])
def test_a_success_without_a_verified_version_says_not_verified(expected, line):
    out = io.StringIO()
    reporter = Reporter(output="text", out=out, err=io.StringIO())
    reporter.fact(app="shop/hello", expected_version=expected)
    reporter.result(Outcome(Verdict.PROMOTED, 0, "rolled out"))
    assert line in out.getvalue() + "\n"


def test_printed_commands_name_the_namespace_and_context_so_they_run_as_printed():
    import json

    out = io.StringIO()
    reporter = Reporter(output="json", out=out, err=io.StringIO())
    reporter.where = "-n shop --context prod"
    reporter.result(Outcome(Verdict.PAUSED, 5, "paused at the gate",
                            next_command="deployer promote --app web",
                            other_commands=("deployer abort --app web",
                                            "the same command again, to continue the run")))
    report = json.loads(out.getvalue())
    assert report["next"] == "deployer promote --app web -n shop --context prod"
    assert report["otherCommands"] == ["deployer abort --app web -n shop --context prod",
                                       "the same command again, to continue the run"]
    text = reporter.err.getvalue()
    assert "next:             deployer promote --app web -n shop --context prod" in text
    assert "or:               deployer abort --app web -n shop --context prod" in text


def test_the_live_side_is_what_the_service_routes_to():
    from deployer.model import AppRef, AppState
    from tests.unit.fakes import deployment, service

    blue = deployment("hello", "hello:v1", replicas=0)
    green = deployment("hello-green", "hello:v2")
    green["spec"]["template"]["metadata"]["labels"] = {"app": "hello", "track": "green"}
    state = AppState(AppRef("shop", "hello"), blue, "hello-green", parse_image("hello:v1"), 0,
                     1, (), service=service("hello", {"app": "hello", "track": "green"}),
                     others={"hello-green": green}, versions={"hello-green": "2.0.0"})
    assert state.live_text() == ("hello:v2 (hello-green)", "2.0.0")


def test_mid_canary_both_sides_are_live():
    from deployer.model import AppRef, AppState
    from tests.unit.fakes import deployment, service

    stable = deployment("hello", "hello:v1")
    canary = deployment("hello-canary", "hello:v2", replicas=1)
    canary["spec"]["template"]["metadata"]["labels"] = {"app": "hello", "track": "canary"}
    state = AppState(AppRef("shop", "hello"), stable, "hello", parse_image("hello:v1"), 3, 1, (),
                     service=service("hello", {"app": "hello"}),
                     others={"hello-canary": canary},
                     versions={"hello": "1.0.0", "hello-canary": "2.0.0"})
    assert state.live_text() == ("hello:v1 (hello) + hello:v2 (hello-canary)", "1.0.0 + 2.0.0")
