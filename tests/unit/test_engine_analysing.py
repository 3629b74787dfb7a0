"""One step's analyses (deployer.engine.analysing): the arguments deployer gives the
templates, the metrics measured on their schedule (prometheus and web answers canned,
Jobs on the fake gateway), the error-rate probe through the fake pod proxy, the
comparisons, and what goes to the report. Clocks are fake: nothing sleeps."""

from __future__ import annotations

import io
import json
import math
import textwrap
from typing import Any

import pytest

from deployer.analysis import providers
from deployer.analysis.assess import Result
from deployer.analysis.spec import build
from deployer.engine.analysing import (
    ANALYSIS_OF,
    Sides,
    StepAnalysis,
    arguments,
    json_safe,
    judge_probe,
    watch,
)
from deployer.engine.context import RunSettings, StepContext
from deployer.errors import ApiRejected, ClusterUnreachable, StepFailed, Undecided
from deployer.health.http import ErrorRate, ProbeOptions, VersionProbe
from deployer.model import HttpAnswer
from deployer.report import Reporter
from tests.unit.fakes import FakeGateway, deployment, labelled, pod, replicaset
from tests.unit.harness import Clock, relabel

WALL = 1_900_000_000.0  # 2030-03-17T17:46:40Z
CANARY = Sides("hello", "hello-canary", "2.0.0", "hello", "1.0.0")
ROLLING = Sides("hello", "hello", "2.0.0", None, "1.0.0")
STABLE_LABELS = {"app": "hello", "track": "stable"}
CANARY_LABELS = {"app": "hello", "track": "canary"}


# ------------------------------------------------------------------ set-up


class Gateway(FakeGateway):
    """The fake gateway, recording the pod proxy's GETs and the order of job writes."""

    def __init__(self, *deployments: dict[str, Any]):
        super().__init__(*deployments)
        self.gets: list[tuple[str, int | str, str]] = []
        self.order: list[str] = []
        self.refuse_jobs: str | None = None

    def pod_get(self, pod: str, port: int | str, path: str) -> HttpAnswer:
        self.gets.append((pod, port, path))
        return super().pod_get(pod, port, path)

    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        self.order.append("create")
        if self.refuse_jobs:
            raise ApiRejected(self.refuse_jobs)
        return super().create_job(body)


def cluster() -> Gateway:
    """hello (stable, revisions 9 and 10) and hello-canary (revision 1), with their
    ReplicaSets, and one more ReplicaSet that matches hello's selector but another owns."""
    stable = deployment("hello", "hello:v1", revision=10)
    canary = relabel(deployment("hello-canary", "hello:v2", replicas=1), **CANARY_LABELS)
    gw = Gateway(stable, canary)
    foreign = replicaset(stable, 11, "f0re1gn", owner_uid="uid-of-someone-else")
    foreign["metadata"]["ownerReferences"][0]["name"] = "someone-else"
    gw.replicasets = [replicaset(stable, 10, "st4b10"), foreign, replicaset(stable, 9, "st4b09"),
                      replicaset(canary, 1, "c4n4ry"), replicaset(stable, 2, "st4b02")]
    return gw


def context(gw: FakeGateway, clock: Clock | None = None, *, timeout: float = 600.0,
            confirm: Any = None) -> StepContext:
    clock = clock or Clock()
    start = clock()

    def wall() -> float:
        return WALL + clock() - start

    reporter = Reporter(out=io.StringIO(), err=io.StringIO(), clock=clock, wall=wall)
    return StepContext(gw, reporter, RunSettings(deadline=clock() + timeout),
                       checkpoint=lambda: None, execute=lambda step: None, clock=clock,
                       wall=wall, sleep=clock.sleep, confirm=confirm or (lambda: None))


def err_text(ctx: StepContext) -> str:
    return ctx.reporter.err.getvalue()  # type: ignore[union-attr]


@pytest.fixture
def write(tmp_path):
    def write(text: str, name: str = "analysis.yaml") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return str(path)
    return write


def template(metric: str, *, args: str = "", name: str = "t") -> str:
    return (f"apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata:\n"
            f"  name: {name}\nspec:\n" + (f"  args:\n{args}" if args else "")
            + "  metrics:\n" + textwrap.indent(textwrap.dedent(metric), "  "))


RATE = """\
- name: rate
  count: 3
  interval: 10s
  successCondition: result[0] < 0.05
  provider:
    prometheus:
      address: http://prometheus.test:9090
      query: rate(errors{app="{{args.app}}",hash="{{args.canary-hash}}"}[30s])
"""
RATE_ARGS = "  - name: app\n  - name: canary-hash\n"


class Canned:
    """Stands for providers.prometheus / providers.web: each call takes the next value (an
    exception is raised), and records the settings it was given."""

    def __init__(self, *values: Any, kind: str = "prometheus"):
        self.values = list(values)
        self.kind = kind
        self.settings: list[dict[str, Any]] = []

    def __call__(self, client: Any, settings: dict[str, Any]) -> tuple[Any, str]:
        self.settings.append(settings)
        value = self.values.pop(0) if len(self.values) > 1 else self.values[0]
        if isinstance(value, BaseException):
            raise value
        return value, f"{self.kind} asked"


class FakeClient:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def clients(monkeypatch) -> list[FakeClient]:
    made: list[FakeClient] = []

    def client_for(settings: dict[str, Any]) -> FakeClient:
        made.append(FakeClient())
        return made[-1]

    monkeypatch.setattr(providers, "client_for", client_for)
    return made


def canned(monkeypatch, *values: Any, kind: str = "prometheus") -> Canned:
    fake = Canned(*values, kind=kind)
    monkeypatch.setattr(providers, kind, fake)
    return fake


# ------------------------------------------------------------------ arguments


def test_arguments_name_the_app_tracks_versions_and_each_sides_latest_hash():
    gw = cluster()
    assert arguments(context(gw), CANARY) == {
        "app": "hello", "namespace": "test", "canary-track": "canary", "stable-track": "stable",
        "new-version": "2.0.0", "old-version": "1.0.0",
        "canary-hash": "c4n4ry", "latest-hash": "c4n4ry",
        # revision 10, not 9 (as text "9" > "10"), and not the one another Deployment owns
        "stable-hash": "st4b10"}


def test_in_a_rolling_update_the_stable_hash_is_the_previous_replicaset():
    gw = cluster()
    values = arguments(context(gw), ROLLING)
    assert (values["canary-hash"], values["latest-hash"], values["stable-hash"]) == (
        "st4b10", "st4b10", "st4b09")
    assert values["canary-track"] == values["stable-track"] == "stable"
    # the same Deployment named on both sides is a rolling update too
    same = Sides("hello", "hello", "2.0.0", "hello", "1.0.0")
    assert arguments(context(gw), same) == values


def test_arguments_without_old_version_replicasets_or_track_are_empty_strings():
    plain = deployment("plain", "plain:v1")
    plain["spec"]["template"]["metadata"]["labels"] = {"app": "plain"}
    plain["spec"]["selector"]["matchLabels"] = {"app": "plain"}
    gw = FakeGateway(plain)
    values = arguments(context(gw), Sides("plain", "plain", None, None, None))
    assert values == {"app": "plain", "namespace": "test", "canary-track": "",
                      "stable-track": "", "new-version": "", "old-version": "",
                      "canary-hash": "", "latest-hash": "", "stable-hash": ""}


def test_a_single_replicaset_has_no_previous_one():
    gw = cluster()
    gw.replicasets = [rs for rs in gw.replicasets if rs["metadata"]["name"] == "hello-st4b10"]
    values = arguments(context(gw), ROLLING)
    assert (values["latest-hash"], values["stable-hash"]) == ("st4b10", "")


# ------------------------------------------------------------------ argument precedence


def test_template_values_then_deployers_then_arg_overrides(write, monkeypatch, clients):
    args = ("  - name: app\n"                    # no value: deployer's
            "  - name: namespace\n    value: from-template\n"  # a value: kept over deployer's
            "  - name: canary-hash\n"            # no value, but --arg gives one
            "  - name: window\n    value: 1m\n"  # a value, and --arg overrides it
            "  - name: service\n")               # only --arg gives it
    metric = """\
    - name: rate
      provider:
        prometheus:
          address: http://prometheus.test:9090
          query: q{a="{{args.app}}",n="{{args.namespace}}",h="{{args.canary-hash}}",s="{{args.service}}"}[{{ args.window }}]
    """  # noqa: E501
    spec = build(files=[write(template(metric, args=args))],
                 args=["canary-hash=forced", "window=5m", "service=web"])
    fake = canned(monkeypatch, [0.0])
    analysis = StepAnalysis(context(cluster()), spec, CANARY, "step")
    assert analysis.values == {"app": "hello", "namespace": "from-template",
                               "canary-hash": "forced", "window": "5m", "service": "web"}
    analysis.tick(window_over=True)
    (settings,) = fake.settings
    assert settings["query"] == 'q{a="hello",n="from-template",h="forced",s="web"}[5m]'
    assert settings["address"] == "http://prometheus.test:9090"


# ------------------------------------------------------------------ metrics through watch


def test_a_counted_metric_is_measured_on_its_schedule_and_passes(write, monkeypatch, clients):
    fake = canned(monkeypatch, [0.01], [0.02], [0.0])
    clock = Clock()
    ctx = context(cluster(), clock)
    spec = build(files=[write(template(RATE, args=RATE_ARGS))])
    note = watch(ctx, StepAnalysis(ctx, spec, CANARY, "analyse hello-canary"), 0.0)
    assert note == "analysis: rate Successful (3 measured)"
    assert clock.now == 1020.0  # at 0, 10 and 20 s
    assert max(clock.sleeps) <= 3.0  # the loop looks again at least every 3 s
    assert [s["query"] for s in fake.settings] == \
        ['rate(errors{app="hello",hash="c4n4ry"}[30s])'] * 3
    (record,) = ctx.reporter.analyses
    assert record["result"] == "Successful" and record["message"] == note
    assert record["step"] == "analyse hello-canary"
    assert record["startedAt"] == "2030-03-17T17:46:40Z"
    assert record["args"] == {"app": "hello", "canary-hash": "c4n4ry"}
    (metric,) = record["metrics"]
    assert (metric["name"], metric["provider"], metric["result"]) == (
        "rate", "prometheus", "Successful")
    assert metric["message"] == "3 of 3 measurements taken"
    assert [m["at"] for m in metric["measurements"]] == [
        "2030-03-17T17:46:40Z", "2030-03-17T17:46:50Z", "2030-03-17T17:47:00Z"]
    first = metric["measurements"][0]
    assert first == {"at": "2030-03-17T17:46:40Z", "result": "Successful", "value": [0.01],
                     "asked": "prometheus asked",
                     "message": "[0.01]: successCondition 'result[0] < 0.05' holds"}
    assert all(c.closed for c in clients) and len(clients) == 1  # one client, closed


def test_a_metric_without_a_count_is_measured_until_the_window_ends(write, monkeypatch,
                                                                    clients):
    canned(monkeypatch, [0.01])
    metric = RATE.replace("  count: 3\n", "")
    clock = Clock()
    ctx = context(cluster(), clock)
    spec = build(files=[write(template(metric, args=RATE_ARGS))])
    analysis = StepAnalysis(ctx, spec, CANARY, "step")
    assert watch(ctx, analysis, 30.0) == "analysis: rate Successful (4 measured)"
    assert clock.now == 1030.0
    assert "analysing: 30s left" in err_text(ctx)


def test_a_failed_measurement_fails_the_step_with_the_metric_and_value(write, monkeypatch,
                                                                       clients):
    canned(monkeypatch, [0.01], [0.5])
    ctx = context(cluster())
    spec = build(files=[write(template(RATE, args=RATE_ARGS))])
    with pytest.raises(StepFailed) as exc:
        watch(ctx, StepAnalysis(ctx, spec, CANARY, "step"), 60.0)
    assert exc.value.message == ("analysis failed: metric 'rate' Failed: 1 failed measurements "
                                 "> failureLimit 0; last value [0.5]")
    (record,) = ctx.reporter.analyses  # recorded all the same
    assert record["result"] == "Failed"
    assert record["message"] == exc.value.message.removeprefix("analysis failed: ")
    assert [m["result"] for m in record["metrics"][0]["measurements"]] == [
        "Successful", "Failed"]


def test_an_inconclusive_measurement_is_undecided_not_a_failure(write, monkeypatch, clients):
    canned(monkeypatch, [0.05])
    metric = RATE.replace("  successCondition: result[0] < 0.05\n",
                          "  successCondition: result[0] < 0.01\n"
                          "  failureCondition: result[0] > 0.1\n")
    ctx = context(cluster())
    spec = build(files=[write(template(metric, args=RATE_ARGS))])
    with pytest.raises(Undecided) as exc:
        watch(ctx, StepAnalysis(ctx, spec, CANARY, "step"), 0.0)
    assert exc.value.message == ("analysis inconclusive: metric 'rate' Inconclusive: 1 "
                                 "inconclusive measurements > inconclusiveLimit 0; last value "
                                 "[0.05]")
    assert ctx.reporter.analyses[0]["result"] == "Inconclusive"


def test_measurements_that_cannot_be_taken_end_in_error_past_the_limit(write, monkeypatch,
                                                                       clients):
    down = providers.MeasureError("prometheus http://prometheus.test:9090: ConnectError")
    canned(monkeypatch, down)
    metric = RATE.replace("  count: 3\n", "").replace("10s", "5s")
    ctx = context(cluster())
    spec = build(files=[write(template(metric, args=RATE_ARGS))])
    with pytest.raises(StepFailed) as exc:
        watch(ctx, StepAnalysis(ctx, spec, CANARY, "step"), 300.0)
    assert exc.value.message == (
        "analysis error: metric 'rate' Error: 5 errors in a row > consecutiveErrorLimit 4: "
        "prometheus http://prometheus.test:9090: ConnectError")
    measurements = ctx.reporter.analyses[0]["metrics"][0]["measurements"]
    assert len(measurements) == 5
    assert measurements[0] == {"at": "2030-03-17T17:46:40Z", "result": "Error", "value": None,
                               "asked": "", "message": down.args[0]}


@pytest.mark.parametrize("error", [providers.MeasureError("web GET http://checker: timed out"),
                                   ConnectionError("refused")])
def test_a_counted_metric_never_measured_is_not_a_pass(write, monkeypatch, clients, error):
    canned(monkeypatch, error, kind="web")
    metric = """\
    - name: smoke
      successCondition: result == true
      provider:
        web:
          url: http://checker/ok
    """
    ctx = context(cluster())
    spec = build(files=[write(template(metric))])
    with pytest.raises(StepFailed) as exc:  # Argo retries until consecutiveErrorLimit: Error
        watch(ctx, StepAnalysis(ctx, spec, CANARY, "step"), 0.0)
    assert exc.value.message.startswith("analysis error")


def test_a_web_metric_gets_its_url_filled_in_and_its_value_judged(write, monkeypatch, clients):
    fake = canned(monkeypatch, {"ok": True}, kind="web")
    metric = """\
    - name: smoke
      successCondition: result.ok == true
      provider:
        web:
          url: http://checker/{{args.app}}/{{args.new-version}}?old={{args.old-version}}
          insecure: true
    """
    args = "  - name: app\n  - name: new-version\n  - name: old-version\n"
    ctx = context(cluster())
    spec = build(files=[write(template(metric, args=args))])
    assert watch(ctx, StepAnalysis(ctx, spec, CANARY, "step"), 0.0) == \
        "analysis: smoke Successful (1 measured)"
    assert fake.settings[0]["url"] == "http://checker/hello/2.0.0?old=1.0.0"
    (m,) = ctx.reporter.analyses[0]["metrics"][0]["measurements"]
    assert (m["result"], m["value"], m["asked"]) == ("Successful", {"ok": True}, "web asked")


def test_clients_are_shared_by_tls_settings_and_closed(write, monkeypatch, clients):
    canned(monkeypatch, [0.0])
    canned(monkeypatch, {"ok": True}, kind="web")
    docs = template(RATE.replace("  count: 3\n  interval: 10s\n", ""), args=RATE_ARGS) + \
        "---\n" + template("""\
    - name: a
      provider:
        web:
          url: http://checker/a
    - name: b
      provider:
        web:
          url: http://checker/b
          insecure: true
    """, name="w")
    ctx = context(cluster())
    analysis = StepAnalysis(ctx, build(files=[write(docs)]), CANARY, "step")
    watch(ctx, analysis, 0.0)
    assert len(clients) == 2  # the secure one (prometheus and a), the insecure one (b)
    assert all(c.closed for c in clients)


def test_nan_and_infinities_are_written_as_prometheus_writes_them(write, monkeypatch, clients):
    canned(monkeypatch, [math.nan, math.inf, -math.inf, 0.5])
    metric = """\
    - name: raw
      provider:
        prometheus:
          address: http://prometheus.test:9090
          query: up
    """
    ctx = context(cluster())
    watch(ctx, StepAnalysis(ctx, build(files=[write(template(metric))]), CANARY, "s"), 0.0)
    (m,) = ctx.reporter.analyses[0]["metrics"][0]["measurements"]
    assert m["value"] == ["NaN", "+Inf", "-Inf", 0.5]
    json.dumps(ctx.reporter.analyses, allow_nan=False)  # strict JSON: no bare NaN


def test_an_api_outage_while_measuring_is_ridden_out(write, monkeypatch, clients):
    canned(monkeypatch, ClusterUnreachable("the API server does not answer"), [0.0])
    metric = RATE.replace("  count: 3\n  interval: 10s\n", "")
    ctx = context(cluster())
    spec = build(files=[write(template(metric, args=RATE_ARGS))])
    assert watch(ctx, StepAnalysis(ctx, spec, CANARY, "step"), 0.0) == \
        "analysis: rate Successful (1 measured)"
    assert "the API server does not answer (0s so far)" in err_text(ctx)


# ------------------------------------------------------------------ job metrics

JOB = """\
- name: integration
  provider:
    job:
      metadata:
        labels:
          team: qa
        annotations:
          note: kept
      spec:
        backoffLimit: 0
        template:
          spec:
            containers:
            - name: test
              image: tests:latest
              command: [run-tests, "{{args.app}}", "{{args.new-version}}"]
            restartPolicy: Never
"""
JOB_ARGS = "  - name: app\n  - name: new-version\n"


def finish_jobs(gw: FakeGateway, condition: str = "Complete",
                logs: tuple[str, ...] = ("12 passed",), after: int = 1):
    """What the Job controller does: after ``after`` sleeps, each Job gets ``condition``
    and a pod (labelled job-name) with these log lines."""
    sleeps = {"n": 0}

    def on_sleep() -> None:
        sleeps["n"] += 1
        if sleeps["n"] < after:
            return
        for name, job in gw.jobs.items():
            if not (job.get("status") or {}).get("conditions"):
                job["status"] = {"conditions": [{"type": condition, "status": "True"}]}
                gw.pods.append(labelled(pod(f"{name}-abcde"), {"job-name": name}))
                gw.logs[f"{name}-abcde"] = list(logs)
    return on_sleep


def job_writes(gw: FakeGateway) -> list[tuple[str, str]]:
    return [(verb, body["metadata"]["name"]) for verb, kind, body in gw.writes if kind == "job"]


def test_a_job_that_completes_is_successful_with_its_logs_and_is_deleted(write):
    gw = cluster()
    clock = Clock()
    clock.on_sleep = finish_jobs(gw, logs=("collecting", "12 passed"))
    confirmed: list[str] = []

    def confirm() -> None:
        gw.order.append("confirm")
        confirmed.append("x")

    ctx = context(gw, clock, confirm=confirm)
    spec = build(files=[write(template(JOB, args=JOB_ARGS))])
    assert spec is not None and spec["jobs"] is True
    assert watch(ctx, StepAnalysis(ctx, spec, CANARY, "step"), 0.0) == \
        "analysis: integration Successful (1 measured)"
    (created, deleted) = job_writes(gw)
    name = created[1]
    assert created[0] == "create" and deleted == ("delete", name)
    assert gw.jobs == {}  # deleted afterwards
    assert gw.order[:2] == ["confirm", "create"]  # the lock is confirmed before the write
    assert name.startswith("hello-integration-") and len(name) == len("hello-integration-") + 6
    body = gw.writes[0][2]
    assert (body["apiVersion"], body["kind"]) == ("batch/v1", "Job")
    assert body["metadata"]["labels"] == {"team": "qa", ANALYSIS_OF: "hello"}
    assert body["metadata"]["annotations"] == {"note": "kept"}
    container = body["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["run-tests", "hello", "2.0.0"]
    assert body["spec"]["backoffLimit"] == 0
    (m,) = ctx.reporter.analyses[0]["metrics"][0]["measurements"]
    assert m["result"] == "Successful" and m["asked"] == f"job {name}"
    assert m["value"] == {"succeeded": True, "logs": ["collecting", "12 passed"]}
    assert m["message"].endswith(": the job succeeded")


def test_a_job_that_fails_fails_the_step_with_its_log_and_is_deleted(write):
    gw = cluster()
    clock = Clock()
    clock.on_sleep = finish_jobs(gw, "Failed", logs=("AssertionError: 500",))
    ctx = context(gw, clock)
    spec = build(files=[write(template(JOB, args=JOB_ARGS))])
    with pytest.raises(StepFailed) as exc:
        watch(ctx, StepAnalysis(ctx, spec, CANARY, "step"), 0.0)
    assert exc.value.message == ("analysis failed: metric 'integration' Failed: 1 failed "
                                 "measurements > failureLimit 0; last value job failed, log: "
                                 "AssertionError: 500")
    assert gw.jobs == {}
    assert [verb for verb, _ in job_writes(gw)] == ["create", "delete"]
    (m,) = ctx.reporter.analyses[0]["metrics"][0]["measurements"]
    assert m["result"] == "Failed"
    assert m["value"] == {"succeeded": False, "logs": ["AssertionError: 500"]}


def test_a_job_is_waited_for_until_a_condition_is_true(write):
    gw = cluster()
    clock = Clock()
    clock.on_sleep = finish_jobs(gw, after=4)
    ctx = context(gw, clock)
    spec = build(files=[write(template(JOB, args=JOB_ARGS))])
    analysis = StepAnalysis(ctx, spec, CANARY, "step")
    analysis.tick(window_over=True)
    assert clock.sleeps == [1.0] * 4  # read every second until it completed
    assert analysis.settle(window_over=True) is True


def test_a_job_not_finished_by_the_deadline_is_an_error_and_deleted(write):
    gw = cluster()
    ctx = context(gw, timeout=5.0)
    spec = build(files=[write(template(JOB, args=JOB_ARGS))])
    analysis = StepAnalysis(ctx, spec, CANARY, "step")
    analysis.tick(window_over=True)
    (m,) = analysis.to_json()["metrics"][0]["measurements"]
    assert m["result"] == "Error"
    assert m["message"].endswith(": not finished by the run's deadline (--timeout)")
    assert gw.jobs == {} and [verb for verb, _ in job_writes(gw)] == ["create", "delete"]


def test_a_job_deleted_by_someone_else_is_an_error(write):
    gw = cluster()
    clock = Clock()
    clock.on_sleep = lambda: gw.jobs.clear()
    ctx = context(gw, clock)
    analysis = StepAnalysis(ctx, build(files=[write(template(JOB, args=JOB_ARGS))]), CANARY,
                            "step")
    analysis.tick(window_over=True)
    (m,) = analysis.to_json()["metrics"][0]["measurements"]
    assert m["result"] == "Error" and m["message"].endswith(": deleted before it finished")


def test_a_job_the_api_server_refuses_is_an_error_naming_why(write):
    gw = cluster()
    gw.refuse_jobs = 'jobs.batch is forbidden: cannot create resource "jobs"'
    ctx = context(gw)
    analysis = StepAnalysis(ctx, build(files=[write(template(JOB, args=JOB_ARGS))]), CANARY,
                            "step")
    analysis.tick(window_over=True)
    (m,) = analysis.to_json()["metrics"][0]["measurements"]
    assert m["result"] == "Error"
    assert m["message"].startswith("job hello-integration-")
    assert m["message"].endswith(': could not be created: jobs.batch is forbidden: cannot '
                                 'create resource "jobs"')
    assert gw.jobs == {}


def test_a_job_name_is_a_dns_label_from_the_app_and_metric():
    gw = cluster()
    clock = Clock()
    clock.on_sleep = finish_jobs(gw)
    ctx = context(gw, clock)
    metric = build_job_metric("Weird_Name.With Spaces" + "x" * 60)
    analysis = StepAnalysis(ctx, metric, Sides("My.App", "hello-canary", "2", "hello", "1"),
                            "step")
    analysis.tick(window_over=True)
    name = job_writes(gw)[0][1]
    base, suffix = name.rsplit("-", 1)
    assert base == ("my-app-weird-name-with-spaces" + "x" * 60)[:50]
    assert len(suffix) == 6 and all(c in "0123456789abcdef" for c in suffix)
    assert gw.writes[0][2]["metadata"]["labels"] == {ANALYSIS_OF: "My.App"}


def build_job_metric(name: str) -> dict[str, Any]:
    """A spec with one job metric, its document built directly (a name YAML keeps as is)."""
    doc = {"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
           "metadata": {"name": "j"},
           "spec": {"metrics": [{"name": name, "provider": {"job": {"spec": {
               "template": {"spec": {"containers": [{"name": "t", "image": "t"}],
                                     "restartPolicy": "Never"}}}}}}]}}
    return {"templates": [{"source": "j.yaml", "document": doc}], "args": {},
            "metrics": [name], "jobs": True}


# ------------------------------------------------------------------ the error-rate probe


def probe_cluster(canary_answers: list[Any], stable: int = 3) -> Gateway:
    gw = cluster()
    for i, answer in enumerate(canary_answers):
        name = f"hello-canary-{i}"
        gw.pods.append(labelled(pod(name), CANARY_LABELS))
        gw.pod_answers[name] = answer
    for i in range(stable):
        name = f"hello-{i}"
        gw.pods.append(labelled(pod(name, image="hello:v1"), STABLE_LABELS))
        gw.pod_answers[name] = HttpAnswer(200, b"ok")
    # neither a pod that is not Ready nor one being deleted is probed
    gw.pods.append(labelled(pod("hello-canary-starting", ready=False), CANARY_LABELS))
    leaving = labelled(pod("hello-canary-leaving"), CANARY_LABELS)
    leaving["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    gw.pods.append(leaving)
    return gw


PROBE = {"probe": {"path": "/api/health", "maxErrorRate": 5.0, "requests": 20}}


def test_the_probe_asks_every_ready_new_pod_and_as_many_old_ones():
    gw = probe_cluster([HttpAnswer(200, b"ok"), HttpAnswer(200, b"ok")])
    ctx = context(gw)
    analysis = StepAnalysis(ctx, PROBE, CANARY, "step")
    assert analysis.metrics is None and analysis.values == {}
    analysis.tick(window_over=True)
    assert analysis.settle(window_over=True) is True
    asked = {p for p, _, _ in gw.gets}
    assert {p for p in asked if "canary" in p} == {"hello-canary-0", "hello-canary-1"}
    assert len([p for p in asked if "canary" not in p]) == 2  # as many old pods as new
    assert {(port, path) for _, port, path in gw.gets} == {(8080, "/api/health")}
    assert len(gw.gets) == 40  # 20 requests to each side
    probe = analysis.to_json()["probe"]
    assert probe["result"] == "Successful" and probe["path"] == "/api/health"
    assert probe["maxErrorRate"] == 5.0 and probe["at"] == "2030-03-17T17:46:40Z"
    assert probe["new"] == {"pods": 2, "requests": 20, "errors": 0, "errorPercent": 0.0,
                            "errorKinds": {}}
    assert probe["old"]["pods"] == 2 and probe["old"]["errors"] == 0
    assert analysis.summary() == "analysis: probe " + probe["message"]


def test_the_probe_runs_once_per_step():
    gw = probe_cluster([HttpAnswer(200, b"ok")])
    analysis = StepAnalysis(context(gw), PROBE, CANARY, "step")
    analysis.tick(window_over=False)
    analysis.tick(window_over=False)
    assert len([g for g in gw.gets if "canary" in g[0]]) == 20


def test_a_new_version_above_the_error_rate_fails_the_step():
    gw = probe_cluster([HttpAnswer(200, b"ok"), HttpAnswer(500, b"boom")])
    ctx = context(gw)
    with pytest.raises(StepFailed) as exc:
        watch(ctx, StepAnalysis(ctx, PROBE, CANARY, "step"), 0.0)
    assert exc.value.message == (
        "analysis failed: probe /api/health: the new version's error rate is above 5%: new "
        "50.0% of 20 requests to 2 pods (HTTP 500 x10); old 0.0% of 20 requests to 2 pods")
    assert ctx.reporter.analyses[0]["probe"]["new"]["errorKinds"] == {"HTTP 500": 10}


def test_no_ready_new_pod_to_probe_is_an_error():
    gw = probe_cluster([])
    ctx = context(gw)
    with pytest.raises(StepFailed) as exc:
        watch(ctx, StepAnalysis(ctx, PROBE, CANARY, "step"), 0.0)
    assert exc.value.message == "analysis error: probe /api/health: no Ready new pod to probe"


def test_without_old_pods_the_probe_judges_the_new_ones_alone():
    gw = probe_cluster([HttpAnswer(200, b"ok")], stable=0)
    sides = Sides("hello", "hello-canary", "2.0.0", None, None)
    analysis = StepAnalysis(context(gw), PROBE, sides, "step")
    analysis.tick(window_over=True)
    assert analysis.settle(window_over=True) is True
    probe = analysis.to_json()["probe"]
    assert probe["old"] is None
    assert probe["message"].endswith("; old: not measured (no old pod serving)")


# ------------------------------------------------------------------ judge_probe


def rate(pods: int, requests: int, errors: int, **kinds: int) -> ErrorRate:
    return ErrorRate(pods, requests, errors, {k.replace("_", " "): n for k, n in kinds.items()})


def test_judge_probe_fails_a_new_rate_above_the_limit_naming_both_rates():
    result, message = judge_probe(rate(2, 100, 10, HTTP_500=7, timed_out=3),
                                  rate(3, 100, 1, HTTP_503=1), 5.0)
    assert result is Result.FAILED
    assert message == ("the new version's error rate is above 5%: new 10.0% of 100 requests to "
                       "2 pods (HTTP 500 x7, timed out x3); old 1.0% of 100 requests to 3 pods "
                       "(HTTP 503 x1)")


def test_judge_probe_fails_a_new_rate_more_than_the_limit_above_the_old_one():
    result, message = judge_probe(rate(2, 100, 8), rate(2, 100, 2), 5.0)
    assert result is Result.FAILED
    assert "new 8.0% of 100 requests to 2 pods" in message
    assert "old 2.0% of 100 requests to 2 pods" in message


def test_judge_probe_passes_at_the_limit_and_below():
    assert judge_probe(rate(2, 100, 5), rate(2, 100, 4), 5.0) == (
        Result.SUCCESSFUL, "at most 5%: new 5.0% of 100 requests to 2 pods; old 4.0% of 100 "
                           "requests to 2 pods")
    result, _ = judge_probe(rate(1, 50, 0), None, 0.0)
    assert result is Result.SUCCESSFUL


def test_judge_probe_with_no_new_pod_is_an_error_and_unmeasured_old_is_said():
    assert judge_probe(ErrorRate(0, 0, 0), rate(2, 100, 0), 5.0) == (
        Result.ERROR, "no Ready new pod to probe")
    result, message = judge_probe(rate(1, 10, 0), ErrorRate(0, 0, 0), 5.0)
    assert result is Result.SUCCESSFUL
    assert message == ("at most 5%: new 0.0% of 10 requests to 1 pods; old: not measured (no "
                       "old pod serving)")


# ------------------------------------------------------------------ VersionProbe.error_rate


def test_error_rate_spreads_the_requests_over_the_pods_and_counts_kinds():
    gw = Gateway()
    gw.pod_answers = {"a": HttpAnswer(200, b"fine"), "b": HttpAnswer(500, b"boom"),
                      "c": HttpAnswer(None, error="timed out"),
                      "d": HttpAnswer(204), "e": HttpAnswer(302, location="/login")}
    pods = [pod(n) for n in "abcde"]
    with VersionProbe(gw) as client:
        found = client.error_rate(pods, 8080, "/api/health", 10)
    assert found == ErrorRate(5, 10, 6, {"HTTP 500": 2, "timed out": 2, "HTTP 302": 2})
    assert sorted(p for p, _, _ in gw.gets) == sorted("abcde" * 2)
    assert {(port, path) for _, port, path in gw.gets} == {(8080, "/api/health")}
    assert found.percent == 60.0
    assert found.to_json() == {"pods": 5, "requests": 10, "errors": 6, "errorPercent": 60.0,
                               "errorKinds": {"HTTP 500": 2, "timed out": 2, "HTTP 302": 2}}


def test_error_rate_asks_each_pod_at_least_once_and_an_unknown_pod_is_a_503():
    gw = Gateway()
    with VersionProbe(gw) as client:
        found = client.error_rate([pod("x"), pod("y"), pod("z")], "http", "/", 1)
    assert (found.pods, found.requests, found.errors) == (3, 3, 3)
    assert found.kinds == {"HTTP 503": 3}
    assert found.to_json()["errorPercent"] == 100.0


def test_error_rate_of_no_pods_is_unmeasured():
    found = VersionProbe(Gateway()).error_rate([], 8080, "/", 100)
    assert found == ErrorRate(0, 0, 0) and found.percent is None
    assert found.to_json()["errorPercent"] is None


def test_error_rate_rounds_the_percent_to_two_places():
    gw = Gateway()
    gw.pod_answers = {"a": HttpAnswer(200, b"ok"), "b": HttpAnswer(200, b"ok"),
                      "c": HttpAnswer(503)}
    found = VersionProbe(gw).error_rate([pod("a"), pod("b"), pod("c")], 80, "/", 3)
    assert found.percent == pytest.approx(100 / 3)
    assert found.to_json()["errorPercent"] == 33.33


def test_error_rate_by_pod_ip_gets_the_path_from_each_pods_address(monkeypatch):
    from deployer.health import http

    seen: list[str] = []

    def get(client: Any, url: str, **kw: Any) -> HttpAnswer:
        seen.append(url)
        return HttpAnswer(None, error="ConnectError: [Errno 111] Connection refused")

    monkeypatch.setattr(http, "get", get)
    p = pod("a")
    p["status"]["podIP"] = "10.1.0.7"
    with VersionProbe(Gateway(), ProbeOptions(via="pod-ip")) as client:
        found = client.error_rate([p], 8080, "/api/health?deep=1", 2)
    assert seen == ["http://10.1.0.7:8080/api/health?deep=1"] * 2
    assert found.kinds == {"ConnectError": 2}


# ------------------------------------------------------------------ comparisons


QUERY = 'sum(rate(errors{app="hello",track="{{track}}"}[30s]))'
HIGH = [float(x) for x in range(20, 36)]  # every value above LOW's
LOW = [float(x) for x in range(0, 16)]


class Ranges:
    def __init__(self, canary: Any, stable: Any):
        self.answers = {"canary": canary, "stable": stable}
        self.asked: list[tuple[str, str, float, float, float]] = []

    def __call__(self, client: Any, address: str, query: str, start: float, end: float,
                 step: float) -> list[float]:
        self.asked.append((address, query, start, end, step))
        track = "canary" if 'track="canary"' in query else "stable"
        answer = self.answers[track]
        if isinstance(answer, BaseException):
            raise answer
        return list(answer)


def compare_spec(**kw: Any) -> dict[str, Any]:
    return {"compare": {"queries": [QUERY], "prometheus": "http://prom.test:9090",
                        "alpha": 0.05, "worse": "higher", "minSamples": 8, **kw}}


def test_a_comparison_runs_once_the_window_is_over_for_each_track(monkeypatch, clients):
    ranges = Ranges(HIGH, LOW)
    monkeypatch.setattr(providers, "prometheus_range", ranges)
    clock = Clock()
    ctx = context(cluster(), clock)
    with pytest.raises(StepFailed) as exc:
        watch(ctx, StepAnalysis(ctx, compare_spec(), CANARY, "step"), 30.0)
    assert exc.value.message.startswith(
        f"analysis failed: --compare {QUERY}: the canary is significantly higher (p < 0.05)")
    assert clock.now == 1030.0  # only at the window's end
    assert ranges.asked == [
        ("http://prom.test:9090", QUERY.replace("{{track}}", "canary"), WALL, WALL + 30, 2.0),
        ("http://prom.test:9090", QUERY.replace("{{track}}", "stable"), WALL, WALL + 30, 2.0)]
    (comparison,) = ctx.reporter.analyses[0]["comparisons"]
    assert comparison["result"] == "Failed" and comparison["u"] == 256.0
    assert comparison["canary"] == {"samples": 16, "median": 27.5}
    assert comparison["stable"] == {"samples": 16, "median": 7.5}


def test_a_comparison_before_the_window_is_over_keeps_the_step_running(monkeypatch, clients):
    monkeypatch.setattr(providers, "prometheus_range", Ranges(HIGH, LOW))
    analysis = StepAnalysis(context(cluster()), compare_spec(), CANARY, "step")
    analysis.tick(window_over=False)
    assert analysis.comparisons is None
    assert analysis.settle(window_over=False) is False
    assert analysis.result is Result.RUNNING


def test_the_comparisons_settings_are_used(monkeypatch, clients):
    monkeypatch.setattr(providers, "prometheus_range", Ranges(HIGH, LOW))
    analysis = StepAnalysis(context(cluster()), compare_spec(worse="lower", step=5), CANARY,
                            "step")
    analysis.tick(window_over=True)
    assert analysis.settle(window_over=True) is True  # higher is fine when lower is worse
    assert analysis.summary() == "analysis: compare Successful"


def test_too_few_samples_stop_at_a_gate(monkeypatch, clients):
    monkeypatch.setattr(providers, "prometheus_range", Ranges(HIGH[:3], LOW))
    ctx = context(cluster())
    with pytest.raises(Undecided) as exc:
        watch(ctx, StepAnalysis(ctx, compare_spec(), CANARY, "step"), 0.0)
    assert exc.value.message == (f"analysis inconclusive: --compare {QUERY}: not enough "
                                 "samples to compare: 3 canary and 16 stable values (at least "
                                 "8 each)")


def test_prometheus_out_of_reach_makes_a_comparison_an_error(monkeypatch, clients):
    down = providers.MeasureError("prometheus http://prom.test:9090 range: ConnectError")
    monkeypatch.setattr(providers, "prometheus_range", Ranges(HIGH, down))
    ctx = context(cluster())
    with pytest.raises(StepFailed) as exc:
        watch(ctx, StepAnalysis(ctx, compare_spec(), CANARY, "step"), 0.0)
    assert exc.value.message == f"analysis error: --compare {QUERY}: {down.args[0]}"


# ------------------------------------------------------------------ settle, record, close


def test_settle_passes_only_once_the_window_is_over(write, monkeypatch, clients):
    canned(monkeypatch, [0.0])
    metric = RATE.replace("  count: 3\n  interval: 10s\n", "")
    analysis = StepAnalysis(context(cluster()),
                            build(files=[write(template(metric, args=RATE_ARGS))]), CANARY, "s")
    analysis.tick(window_over=False)
    assert analysis.settle(window_over=False) is False
    assert analysis.result is Result.SUCCESSFUL  # the count is reached, the window is not over
    assert analysis.settle(window_over=True) is True


def test_an_analysis_closed_before_it_ended_says_so(write, monkeypatch, clients):
    canned(monkeypatch, [0.0])
    ctx = context(cluster())
    analysis = StepAnalysis(ctx, build(files=[write(template(RATE, args=RATE_ARGS))]), CANARY,
                            "verify traffic")
    with analysis:
        analysis.tick(window_over=False)
    (record,) = ctx.reporter.analyses
    assert record["result"] == "Running"
    assert record["message"] == "not finished: the step ended before the analysis did"
    assert record["metrics"][0]["result"] == "Running"
    assert len(record["metrics"][0]["measurements"]) == 1
    assert clients[0].closed


def test_the_record_of_a_probe_not_yet_run_and_no_comparison_yet():
    record = StepAnalysis(context(cluster()), {**PROBE, **compare_spec()}, CANARY,
                          "step").to_json()
    assert record == {"step": "step", "startedAt": "2030-03-17T17:46:40Z", "result": "Running",
                      "message": "", "probe": None, "comparisons": []}


def test_waiting_says_the_time_left_then_the_counted_metrics(write, monkeypatch, clients):
    canned(monkeypatch, [0.0])
    clock = Clock()
    ctx = context(cluster(), clock)
    analysis = StepAnalysis(ctx, build(files=[write(template(RATE, args=RATE_ARGS))]), CANARY,
                            "s")
    assert analysis.waiting(clock() + 12.4) == "analysing: 12s left"
    analysis.tick(window_over=True)
    assert analysis.waiting(clock()) == "analysing: waiting for the counted measurements of rate"
    assert analysis.wait(clock() + 100.0) == 10.0  # the next measurement comes first


# ------------------------------------------------------------------ json_safe


def test_json_safe_writes_nan_and_infinities_as_text_at_any_depth():
    assert json_safe(math.nan) == "NaN"
    assert json_safe(math.inf) == "+Inf"
    assert json_safe(-math.inf) == "-Inf"
    assert json_safe([1.5, math.nan, {"a": [math.inf]}]) == [1.5, "NaN", {"a": ["+Inf"]}]
    assert json_safe({"succeeded": True, "logs": ["x"]}) == {"succeeded": True, "logs": ["x"]}
    for plain in (0.25, 3, "NaN", None, True):
        assert json_safe(plain) == plain


def test_a_deploy_without_analysis_never_imports_it():
    """Analysis is imported only by a run that asks for it: a plain deploy's start (the
    time before its first write) does not pay for it."""
    import subprocess
    import sys

    from tests.unit.test_validation import REPO_ROOT

    code = ("import sys\nimport deployer.cli, deployer.engine, deployer.engine.engine\n"
            "print(sorted(m for m in sys.modules if m.startswith('deployer.analysis')))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout
