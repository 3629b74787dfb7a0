"""A continued run keeps its recorded settings; a differing flag is refused or applied and
said, never silently dropped."""

import pytest

from deployer import cli, recorded
from deployer.exitcodes import ExitCode
from deployer.record import Journal, RunRecord, read_run
from tests.unit.fakes import FakeGateway, service

STARTED_WITH = {"steps": [25, 50, 100], "interval": 30.0, "until_gate": False,
                "check_via": "proxy", "samples": 3, "progress_deadline": None}


def test_a_plan_option_that_differs_is_refused_naming_both_values():
    refused, applied = recorded.compare(STARTED_WITH, {"interval": 5.0, "steps": (25, 50, 100)})
    assert refused == ["--interval 5s (the run was started with 30s)"]
    assert applied == {}


def test_a_check_setting_that_differs_is_applied():
    refused, applied = recorded.compare(STARTED_WITH, {"samples": 5, "check_via": "pod-ip"})
    assert refused == [] and applied == {"samples": 5, "check_via": "pod-ip"}


def test_analyses_are_recorded_by_digest_and_other_ones_are_refused():
    spec = {"probe": {"path": "/", "maxErrorRate": 5.0, "requests": 100}}
    record = recorded.snapshot({"analysis": spec}, {})
    assert record["analysis"].startswith("sha256:")  # not the templates themselves
    assert recorded.compare(record, {"analysis": dict(spec)}) == ([], {})
    other = {"probe": {**spec["probe"], "maxErrorRate": 1.0}}
    refused, _ = recorded.compare(record, {"analysis": other})
    assert refused == ["--analysis/--arg/--probe/--compare ask for other analyses than the "
                       "run was started with"]
    refused, _ = recorded.compare(recorded.snapshot({"analysis": None}, {}),
                                  {"analysis": spec})
    assert len(refused) == 1


def test_settings_the_record_does_not_have_are_neither_refused_nor_applied():
    assert recorded.compare({"interval": 30.0}, {"keep_old": 0.0}) == ([], {})


def test_the_record_is_described_in_the_words_of_its_flags():
    assert recorded.describe(STARTED_WITH) == (
        "--steps 25,50,100, --interval 30s, --check-via proxy, --samples 3")


@pytest.fixture
def gw(cli_cluster) -> FakeGateway:
    fake = cli_cluster
    run = RunRecord("canary", "hello", "hello:v1", "hello:v2", "1.0.0", "2.0.0", 1,
                    phase="interrupted", position=0, settings=dict(STARTED_WITH),
                    plan={"schemaVersion": 1, "strategy": "canary", "steps": [],
                          "rollback": []})
    Journal(fake, "hello", run).update()
    fake.writes.clear()
    return fake


def test_a_re_run_with_another_interval_is_refused_before_any_write(gw, capsys):
    code = cli.run(["canary", "--app", "hello", "--image", "v2", "--interval", "5s"])
    err = capsys.readouterr().err
    assert code == ExitCode.INVALID and "differs-from-recorded-run" in err
    assert "--interval 5s (the run was started with 30s)" in err
    assert "re-run without --interval" in err
    assert gw.writes == []


def test_a_re_run_with_more_samples_resumes_and_says_what_applies(gw, capsys):
    code = cli.run(["canary", "--app", "hello", "--image", "v2", "--samples", "5"])
    captured = capsys.readouterr()
    said = captured.out + captured.err
    assert code == ExitCode.OK, said
    assert "with the settings it was started with: --steps 25,50,100, --interval 30s" in said
    assert "--samples 5 applies from now on (the run was started with 3)" in said


def test_promote_says_it_checks_as_the_run_was_started(gw, capsys):
    record = read_run(gw, "hello")
    Journal(gw, "hello", record).update(phase="paused")
    code = cli.run(["promote", "--app", "hello"])
    captured = capsys.readouterr()
    assert code == ExitCode.OK, captured.err
    assert "with the settings it was started with" in captured.out + captured.err


def test_a_flag_that_is_on_is_described_by_its_name_alone():
    assert recorded.describe({"until_gate": True, "interval": 0.0}) == "--until-gate, --interval 0s"


@pytest.mark.parametrize("command", [["rollback", "--app", "shop", "--dry-run"],
                                     ["abort", "--app", "shop"]])
def test_the_printed_rollback_and_abort_need_no_container_on_a_two_container_app(
        monkeypatch, capsys, command):
    from tests.unit.fakes import deployment

    shop = deployment("shop", "hello:v2")
    shop["spec"]["template"]["spec"]["containers"].insert(
        0, {"name": "sidecar", "image": "pause:lab"})
    shop["spec"]["template"]["spec"]["containers"][1]["name"] = "web"
    fake = FakeGateway(shop)
    fake.services["shop"] = service("shop", {"app": "shop"})
    monkeypatch.setattr(cli, "_connect", lambda g, **kw: fake)
    run = RunRecord("rolling", "shop", "hello:v1", "hello:v2", "1.0.0", "2.0.0", 1,
                    phase="interrupted", position=1, container="web",
                    plan={"schemaVersion": 1, "strategy": "rolling", "steps": [],
                          "rollback": [{"type": "ScaleDeployment", "deployment": "shop",
                                        "replicas": 3, "missing_ok": False}]})
    Journal(fake, "shop", run).update()
    code = cli.run(command)
    err = capsys.readouterr().err
    assert code == ExitCode.OK, err
    assert "ambiguous-container" not in err
