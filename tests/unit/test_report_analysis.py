"""The analyses in the report (the Result block's lines, the JSON's "analyses"), and the
engine stopping at a gate when an analysis is Inconclusive (deployer.errors.Undecided)."""

from __future__ import annotations

import io
import json
import textwrap
from typing import Any

import pytest

from deployer.analysis import providers
from deployer.analysis.spec import build
from deployer.engine import engine as engine_module
from deployer.errors import Undecided
from deployer.exitcodes import ExitCode
from deployer.model import (
    Analyse,
    AppRef,
    AwaitRollout,
    Outcome,
    Plan,
    Step,
    UndoRollout,
    UpdateDeployment,
    Verdict,
)
from deployer.record import Journal, RunRecord, read_history, read_run
from deployer.report import Reporter, analysis_lines
from tests.unit.fakes import FakeGateway, deployment
from tests.unit.harness import Controller, make_engine

APP = AppRef("test", "hello")
VERSIONS = {"hello:v1": "1.0.0", "hello:v2": "2.0.0", "hello:v3": "3.0.0"}

RECORD: dict[str, Any] = {
    "step": "after the rollout: analyse hello for 30s; analysis: metrics rate",
    "startedAt": "2030-03-17T17:46:40Z", "result": "Failed",
    "message": "metric 'rate' Failed: 1 failed measurements > failureLimit 0; last value [0.5]",
    "args": {"app": "hello"},
    "metrics": [{
        "name": "rate", "provider": "prometheus", "result": "Failed",
        "message": "1 failed measurements > failureLimit 0",
        "measurements": [
            {"at": "2030-03-17T17:46:40Z", "result": "Successful", "value": [0.01],
             "asked": "prometheus http://prom:9090: rate(x[1m])",
             "message": "[0.01]: successCondition 'result[0] < 0.05' holds"},
            {"at": "2030-03-17T17:46:50Z", "result": "Error", "value": None, "asked": "",
             "message": "prometheus http://prom:9090: ConnectError"},
            {"at": "2030-03-17T17:47:00Z", "result": "Successful", "value": [0.02],
             "asked": "prometheus http://prom:9090: rate(x[1m])",
             "message": "[0.02]: successCondition 'result[0] < 0.05' holds"},
            {"at": "2030-03-17T17:47:10Z", "result": "Failed", "value": [0.5],
             "asked": "prometheus http://prom:9090: rate(x[1m])",
             "message": "[0.5]: successCondition 'result[0] < 0.05' does not hold"}]}],
    "probe": {"path": "/", "maxErrorRate": 5.0, "result": "Successful",
              "message": "at most 5%: new 0.0% of 100 requests to 2 pods"},
    "comparisons": [{"query": "q{{track}}", "result": "Inconclusive",
                     "message": "not enough samples to compare"}],
}


# ------------------------------------------------------------------ analysis_lines


def test_no_analysis_is_no_line():
    assert analysis_lines([]) == []


def test_each_analysis_its_metrics_measurements_probe_and_comparisons():
    assert analysis_lines([RECORD]) == [
        "analysis:         Failed: metric 'rate' Failed: 1 failed measurements > failureLimit "
        "0; last value [0.5]",
        "  during: after the rollout: analyse hello for 30s; analysis: metrics rate",
        "  metric rate (prometheus): Failed: 1 failed measurements > failureLimit 0",
        "    asked: prometheus http://prom:9090: rate(x[1m])",
        "    2030-03-17T17:46:40Z Successful: [0.01]: successCondition 'result[0] < 0.05' holds",
        "    2030-03-17T17:46:50Z Error: prometheus http://prom:9090: ConnectError",
        # the same question again after an unanswered one is not repeated
        "    2030-03-17T17:47:00Z Successful: [0.02]: successCondition 'result[0] < 0.05' holds",
        "    2030-03-17T17:47:10Z Failed: [0.5]: successCondition 'result[0] < 0.05' does not "
        "hold",
        "  probe /: Successful: at most 5%: new 0.0% of 100 requests to 2 pods",
        "  compare q{{track}}: Inconclusive: not enough samples to compare",
    ]


def test_a_new_question_is_said_again_and_an_empty_message_is_left_out():
    record = {"step": "verify traffic", "result": "Successful", "message": "",
              "metrics": [{"name": "a", "provider": "web", "result": "Successful",
                           "message": "2 of 2 measurements taken", "measurements": [
                               {"at": "T1", "result": "Successful", "asked": "web GET http://x",
                                "message": "true: no condition: any value passes"},
                               {"at": "T2", "result": "Successful", "asked": "web GET http://y",
                                "message": "true: no condition: any value passes"}]}]}
    second = {"step": "keep hello up", "result": "Running", "message": "not finished"}
    assert analysis_lines([record, second]) == [
        "analysis:         Successful",
        "  during: verify traffic",
        "  metric a (web): Successful: 2 of 2 measurements taken",
        "    asked: web GET http://x",
        "    T1 Successful: true: no condition: any value passes",
        "    asked: web GET http://y",
        "    T2 Successful: true: no condition: any value passes",
        "analysis:         Running: not finished",
        "  during: keep hello up",
    ]


# ------------------------------------------------------------------ the Reporter


OUTCOME = Outcome(Verdict.REJECTED, ExitCode.REJECTED, "analysis failed")


def test_the_json_report_carries_every_analysis():
    reporter = Reporter(out=io.StringIO(), err=io.StringIO())
    assert reporter.to_json(OUTCOME)["analyses"] == []
    reporter.analysed(RECORD)
    reporter.analysed({"step": "second", "result": "Successful", "message": ""})
    data = reporter.to_json(OUTCOME)
    assert data["analyses"] == [RECORD, {"step": "second", "result": "Successful",
                                         "message": ""}]


def test_the_result_block_holds_the_analysis_lines():
    out, err = io.StringIO(), io.StringIO()
    reporter = Reporter(out=out, err=err)
    reporter.analysed(RECORD)
    reporter.result(OUTCOME)
    text = out.getvalue()
    for line in analysis_lines([RECORD]):
        assert line in text.splitlines()
    assert text.index("analysis:         Failed") > text.index("verdict:")


def test_json_output_prints_the_analyses_in_the_document():
    out, err = io.StringIO(), io.StringIO()
    reporter = Reporter(output="json", out=out, err=err)
    reporter.analysed(RECORD)
    reporter.result(OUTCOME)
    assert json.loads(out.getvalue())["analyses"] == [RECORD]
    assert "  metric rate (prometheus): Failed" in err.getvalue()  # the words go to stderr


# ------------------------------------------------------------------ Undecided in the engine


def update(image: str) -> UpdateDeployment:
    return UpdateDeployment("hello", "hello", image, f"deployer to {image}")


ANALYSE = Analyse("hello", "hello", "2.0.0", None, "1.0.0", {"metrics": ["rate"]}, 30.0,
                  "after the rollout")
ROLLBACK = (UndoRollout("hello", 1, "undo"), AwaitRollout("hello", "1.0.0"))


def plan(*steps: Step) -> Plan:
    return Plan("rolling", APP, steps, ROLLBACK, summary="hello to v2")


def journal(gw: FakeGateway) -> Journal:
    return Journal(gw, "hello", RunRecord("rolling", "hello", "hello:v1", "hello:v2"))


def cluster() -> FakeGateway:
    gw = FakeGateway(deployment())
    Controller(gw, VERSIONS).tick()
    return gw


def images_written(gw: FakeGateway) -> list[str]:
    return [w["spec"]["template"]["spec"]["containers"][0]["image"]
            for w in gw.deployment_writes()]


@pytest.fixture
def inconclusive(monkeypatch) -> list[Step]:
    ran: list[Step] = []

    def analyse(ctx: Any, step: Analyse) -> str | None:
        ran.append(step)
        raise Undecided("analysis inconclusive: metric 'rate' Inconclusive: 1 inconclusive "
                        "measurements > inconclusiveLimit 0")

    monkeypatch.setitem(engine_module.HANDLERS, Analyse, analyse)
    return ran


GATED = plan(update("hello:v2"), AwaitRollout("hello", "2.0.0"), ANALYSE, update("hello:v3"),
             AwaitRollout("hello", "3.0.0"))
WHY = "analysis inconclusive: metric 'rate' Inconclusive: 1 inconclusive measurements > " \
      "inconclusiveLimit 0"


def test_an_inconclusive_analysis_pauses_the_run_after_its_step(inconclusive):
    gw = cluster()
    engine = make_engine(gw)
    outcome = engine.run(GATED, journal(gw))
    assert (outcome.verdict, outcome.exit_code) == (Verdict.PAUSED, ExitCode.PAUSED)
    assert int(ExitCode.PAUSED) == 5
    assert outcome.message == (f"paused: {WHY}; neither promoted nor rolled back: promote goes "
                               "on from the next step, abort rolls back")
    assert outcome.next_command == "deployer promote --app hello"
    assert outcome.other_commands == ("deployer abort --app hello",)
    assert outcome.verified_version == "2.0.0"
    assert len(inconclusive) == 1
    assert images_written(gw) == ["hello:v2"]  # nothing rolled back, nothing more applied
    assert [(s.kind, s.result) for s in engine.reporter.steps] == [
        ("update-deployment", "done"), ("await-rollout", "done"), ("analyse", "inconclusive")]
    assert engine.reporter.steps[-1].note == WHY
    assert WHY in engine.reporter.warnings
    run = read_run(gw, "hello")
    assert (run.phase, run.position) == ("paused", 3)  # the step after the analysis
    assert run.step == f"pause at the promotion gate ({WHY})"
    assert read_history(gw, "hello") == []


def test_promote_goes_on_from_the_step_after_the_inconclusive_analysis(inconclusive):
    gw = cluster()
    make_engine(gw).run(GATED, journal(gw))
    record = read_run(gw, "hello")
    engine = make_engine(gw)
    outcome = engine.run(Plan.from_json(APP, record.plan), Journal(gw, "hello", record),
                         start=record.position)
    assert (outcome.verdict, outcome.exit_code) == (Verdict.PROMOTED, ExitCode.OK)
    assert len(inconclusive) == 1  # not analysed again
    assert [s.kind for s in engine.reporter.steps] == ["update-deployment", "await-rollout"]
    assert images_written(gw) == ["hello:v2", "hello:v3"]


# ------------------------------------------------------------------ through the real handler


TEMPLATE = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: rate
spec:
  metrics:
  - name: rate
    successCondition: result[0] < 0.01
    failureCondition: result[0] > 0.1
    provider:
      prometheus:
        address: http://prometheus.test:9090
        query: rate(errors[1m])
"""


@pytest.fixture
def spec(tmp_path) -> dict:
    path = tmp_path / "rate.yaml"
    path.write_text(textwrap.dedent(TEMPLATE))
    built = build(files=[str(path)])
    assert built is not None
    return built


def answer(monkeypatch, value: list[float]) -> None:
    def prometheus(client: Any, settings: dict) -> tuple[Any, str]:
        return value, f"prometheus {settings['address']}: {settings['query']}"

    monkeypatch.setattr(providers, "prometheus", prometheus)


def analysed_plan(spec: dict) -> Plan:
    return plan(update("hello:v2"), AwaitRollout("hello", "2.0.0"),
                Analyse("hello", "hello", "2.0.0", None, "1.0.0", spec, 0.0,
                        "after the rollout"))


def test_an_inconclusive_metric_pauses_with_its_measurements_in_the_json(monkeypatch, spec):
    answer(monkeypatch, [0.05])
    gw = cluster()
    engine = make_engine(gw)
    outcome = engine.run(analysed_plan(spec), journal(gw))
    assert (outcome.verdict, outcome.exit_code) == (Verdict.PAUSED, ExitCode.PAUSED)
    assert (read_run(gw, "hello").phase, read_run(gw, "hello").position) == ("paused", 3)
    data = engine.reporter.to_json(outcome)
    (record,) = data["analyses"]
    assert record["result"] == "Inconclusive"
    assert record["step"] == analysed_plan(spec).steps[2].describe()
    (m,) = record["metrics"][0]["measurements"]
    assert (m["result"], m["value"], m["asked"]) == (
        "Inconclusive", [0.05], "prometheus http://prometheus.test:9090: rate(errors[1m])")
    assert data["exitCode"] == 5 and data["verdict"] == "paused"


def test_a_failed_metric_rolls_back_with_its_measurements_in_the_report(monkeypatch, spec):
    answer(monkeypatch, [0.5])
    gw = cluster()
    engine = make_engine(gw)
    outcome = engine.run(analysed_plan(spec), journal(gw))
    assert (outcome.verdict, outcome.exit_code) == (Verdict.REJECTED, ExitCode.REJECTED)
    assert outcome.message.startswith("analysis failed: metric 'rate' Failed")
    assert engine.reporter.analyses[0]["result"] == "Failed"
    assert [s.kind for s in engine.reporter.steps][-2:] == ["undo-rollout", "await-rollout"]


def test_a_passing_metric_promotes(monkeypatch, spec):
    answer(monkeypatch, [0.001])
    gw = cluster()
    engine = make_engine(gw)
    outcome = engine.run(analysed_plan(spec), journal(gw))
    assert (outcome.verdict, outcome.exit_code) == (Verdict.PROMOTED, ExitCode.OK)
    assert engine.reporter.steps[-1].note == "analysis: rate Successful (1 measured)"
    assert engine.reporter.analyses[0]["result"] == "Successful"
