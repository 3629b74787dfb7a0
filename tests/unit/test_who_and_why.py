"""History that answers who and why: --actor, the CI's actor or the cluster identity, the
reason and the CI run's URL; a rejected release says why; -o yaml beside -o json."""

from __future__ import annotations

import json

import pytest
import yaml

from deployer import cli, record
from deployer.model import Target
from deployer.record import Journal, RunRecord, ci_run_url, who_am_i
from deployer.strategy import change_cause
from deployer.validation import parse_reference
from tests.report_schema import checked

CI_VARS = ("DEPLOYER_ACTOR", "GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILD_USER_ID",
           "GITHUB_RUN_ID", "GITHUB_REPOSITORY", "GITHUB_SERVER_URL", "CI_JOB_URL", "BUILD_URL")


@pytest.fixture(autouse=True)
def no_ci(monkeypatch):
    for var in CI_VARS:
        monkeypatch.delenv(var, raising=False)
    yield
    record.set_actor(None)
    record.set_identity(None)


def test_the_ci_run_url_of_each_ci_system():
    assert ci_run_url({"GITHUB_RUN_ID": "42", "GITHUB_REPOSITORY": "acme/shop",
                       "GITHUB_SERVER_URL": "https://github.example"}) == \
        "https://github.example/acme/shop/actions/runs/42"
    assert ci_run_url({"GITHUB_RUN_ID": "42", "GITHUB_REPOSITORY": "acme/shop"}) == \
        "https://github.com/acme/shop/actions/runs/42"
    assert ci_run_url({"CI_JOB_URL": "https://gitlab.example/acme/shop/-/jobs/7"}) == \
        "https://gitlab.example/acme/shop/-/jobs/7"
    assert ci_run_url({"BUILD_URL": "https://jenkins.example/job/shop/9/"}) == \
        "https://jenkins.example/job/shop/9/"
    assert ci_run_url({}) is None


def test_who_is_the_actor_then_the_ci_actor_then_the_cluster_identity(monkeypatch):
    assert "@" in who_am_i() and "(" not in who_am_i()  # user@host only
    record.set_identity("system:serviceaccount:ci:deployer")
    assert who_am_i().startswith("system:serviceaccount:ci:deployer (")
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    assert who_am_i() == "octocat"
    record.set_actor("release-bot")
    assert who_am_i() == "release-bot"


def test_the_change_cause_names_the_ci_run():
    target = Target(parse_reference("hello:v2"), "2.0.0", "ticket 42", "octocat",
                    "https://github.com/acme/shop/actions/runs/42")
    assert change_cause("rolling update", target) == (
        "deployer rolling update to hello:v2 by octocat: ticket 42 "
        "(https://github.com/acme/shop/actions/runs/42)")


def test_a_run_records_who_and_the_ci_run(cli_cluster, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/shop")
    cli_cluster.identity_is = "alice@example.com"
    cli.run(["--actor", "release-bot", "rolling", "--app", "hello", "--image", "v2",
             "--reason", "ticket 42", "--timeout", "1s"])
    capsys.readouterr()
    run = record.read_run(cli_cluster, "hello") or record.read_history(cli_cluster, "hello")[-1]
    assert (run.who, run.reason) == ("release-bot", "ticket 42")
    assert run.ci_url == "https://github.com/acme/shop/actions/runs/42"


def test_an_actor_with_a_line_break_is_refused(cli_cluster, capsys):
    assert cli.run(["--actor", "bot\nx", "status", "--app", "hello"]) == 2
    assert "--actor" in capsys.readouterr().err


def test_history_says_why_a_release_was_rejected_and_from_which_run(cli_cluster, capsys):
    rejected = RunRecord("canary", "hello", "hello:v1", "hello:v6", "1.0.0", "6.0.0", 1,
                         who="octocat", reason="ticket 7", phase="done", verdict="rejected",
                         message="analysis failed: metric 'error-rate' Failed",
                         ci_url="https://ci.example/run/7")
    Journal(cli_cluster, "hello", rejected).finish()
    assert cli.run(["history", "--app", "hello"]) == 0
    text = capsys.readouterr().out
    assert "why: ticket 7  run: https://ci.example/run/7" in text
    assert "because: analysis failed: metric 'error-rate' Failed" in text
    assert cli.run(["-o", "yaml", "history", "--app", "hello"]) == 0
    data = checked(yaml.safe_load(capsys.readouterr().out))
    (release,) = data["releases"]
    assert release["ciUrl"] == "https://ci.example/run/7" and release["verdict"] == "rejected"
    assert cli.run(["-o", "json", "history", "--app", "hello"]) == 0
    assert checked(json.loads(capsys.readouterr().out)) == data  # the same report
