"""Shell completion: typer's --install-completion / --show-completion, and --app completed
from the namespace's Deployments when the cluster answers."""

from __future__ import annotations

import subprocess
import sys

import typer

from deployer import cli, cluster
from tests.unit.fakes import FakeGateway, deployment
from tests.unit.test_validation import REPO_ROOT


def app_context(*argv: str) -> typer.Context:
    command = typer.main.get_command(cli.app)
    root = command.make_context("deployer", list(argv), resilient_parsing=True)
    sub = command.get_command(root, "rolling")  # type: ignore[attr-defined]
    return sub.make_context("rolling", ["--app", "h"], parent=root, resilient_parsing=True)


def test_app_names_come_from_the_namespace_without_the_extra_sides(monkeypatch):
    fake = FakeGateway(deployment("hello"), deployment("hello-canary"),
                       deployment("hello-green"), deployment("web"), deployment("hub"))
    asked = {}

    def connect(**kwargs):
        asked.update(kwargs)
        return fake

    monkeypatch.setattr(cluster, "Gateway", connect)
    assert cli.complete_app(app_context("-n", "shop", "--context", "prod"), "h") == [
        "hello", "hub"]
    assert (asked["namespace"], asked["context"], asked["request_timeout"]) == (
        "shop", "prod", 2.0)
    assert asked["budget"].attempts == 1  # completion never waits out retries


def test_no_cluster_completes_nothing_and_says_nothing(monkeypatch, capsys):
    def unreachable(**kwargs):
        raise OSError("no route to host")

    monkeypatch.setattr(cluster, "Gateway", unreachable)
    assert cli.complete_app(app_context(), "") == []
    assert capsys.readouterr() == ("", "")


def test_show_completion_prints_a_script_for_the_shell():
    result = subprocess.run([sys.executable, "-m", "deployer", "--show-completion", "bash"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "_DEPLOYER_COMPLETE=complete_bash" in result.stdout
