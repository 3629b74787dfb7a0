"""Strategy plugins: every registered strategy listed with its package and version; one
that fails to load is a warning in the list and an error (exit 2) only when used; the
example plugin (tests/plugins/shadow) plans like any strategy."""

from __future__ import annotations

import json
from importlib import metadata

import pytest

from deployer import cli, strategy
from deployer.errors import InvalidInput
from tests.report_schema import checked

GROUP = strategy.ENTRY_POINT_GROUP


def with_broken(monkeypatch, target: str = "no_such_module:Strategy") -> None:
    real = metadata.entry_points(group=GROUP)
    broken = metadata.EntryPoint("broken", target, GROUP)

    def entry_points(group: str):
        assert group == GROUP
        return [*real, broken]

    monkeypatch.setattr(strategy.metadata, "entry_points", entry_points)


def test_every_strategy_is_listed_with_its_package_and_version(capsys):
    assert cli.run(["-o", "json", "strategies"]) == 0
    listed = {s["name"]: s for s in checked(json.loads(capsys.readouterr().out))["strategies"]}
    assert {"rolling", "recreate", "canary", "blue-green", "shadow"} <= set(listed)
    assert listed["canary"]["package"] == "kube-deployer" and listed["canary"]["problem"] is None
    assert (listed["shadow"]["package"], listed["shadow"]["version"]) == (
        "deployer-shadow", "0.1.0")


def test_a_broken_plugin_is_a_warning_in_the_list_and_an_error_when_used(monkeypatch, capsys):
    with_broken(monkeypatch)
    assert cli.run(["strategies"]) == 0
    out, err = capsys.readouterr()
    assert "broken" in out and "rolling" in out
    assert "warning: strategy 'broken'" in err and "ModuleNotFoundError" in err
    assert cli.run(["deploy", "--strategy", "broken", "--app", "hello", "--image", "v2"]) == 2
    err = capsys.readouterr().err
    assert "fails to load" in err and "broken-strategy" in err


def test_an_entry_point_that_is_no_strategy_is_refused(monkeypatch):
    with_broken(monkeypatch, "collections:OrderedDict")
    with pytest.raises(InvalidInput, match="is not a strategy"):
        strategy.load("broken")


def test_an_unknown_strategy_names_the_installed_ones():
    with pytest.raises(InvalidInput, match="installed: blue-green, canary"):
        strategy.load("nope")


def test_deploy_runs_a_plugin_through_the_engine_as_planned(cli_cluster, capsys):
    code = cli.run(["-o", "json", "deploy", "--strategy", "shadow", "--app", "hello",
                    "--image", "v2", "--set", "replicas=2", "--dry-run"])
    report = checked(json.loads(capsys.readouterr().out))
    assert code == 0 and report["strategy"] == "shadow"
    kinds = [s["type"] for s in report["plan"]["steps"]]
    assert kinds == ["ApplyDeployment", "AwaitRollout", "ScaleDeployment", "DeleteDeployment"]
    body = report["plan"]["steps"][0]["body"]
    assert body["spec"]["replicas"] == 2
    assert body["spec"]["template"]["metadata"]["labels"] == {"shadow-of": "hello"}
    assert cli.run(["deploy", "--strategy", "shadow", "--app", "hello", "--image", "v2",
                    "--set", "replicas"]) == 2
    assert "is not KEY=VALUE" in capsys.readouterr().err
