"""Where each strategy places the analyses (pure planners): canary on every VerifyTraffic
step, rolling after its rollout, blue-green before the switch and in its watched window;
the plan lines that say so, and plans that keep the spec through their JSON."""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace

import pytest

from deployer.analysis.spec import build
from deployer.model import (
    Analyse,
    AppRef,
    AppState,
    AwaitRollout,
    Gate,
    KeepOld,
    Plan,
    ScaleDeployment,
    SetServiceSelector,
    Target,
    UpdateDeployment,
    VerifyTraffic,
    analyses,
)
from deployer.strategy import Options
from deployer.validation import parse_image
from strategies.blue_green import BlueGreenStrategy
from strategies.canary import CanaryStrategy
from strategies.rolling import RollingStrategy
from tests.unit.fakes import deployment

APP = AppRef("t", "hello")
TARGET = Target(parse_image("hello:v2"), "2.0.0", None, "ana")
SPEC = {
    "templates": [{"source": "rate.yaml", "document": {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "rate"},
        "spec": {"metrics": [{"name": "rate", "successCondition": "result[0] < 0.05",
                              "provider": {"prometheus": {"address": "http://prom:9090",
                                                          "query": "up"}}}]}}}],
    "args": {}, "metrics": ["rate"], "jobs": False,
    "probe": {"path": "/", "maxErrorRate": 5.0, "requests": 100},
}
STABLE = {"app": "hello", "track": "stable"}


def service(selector=None, affinity="ClientIP"):
    return {"metadata": {"name": "hello"},
            "spec": {"selector": selector or {"app": "hello"}, "sessionAffinity": affinity,
                     "clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}}


def state(selector=None, autoscalers: dict | None = None) -> AppState:
    return AppState(APP, deployment(revision=2), "hello", parse_image("hello:v1"), 3, 2, (),
                    version="1.0.0", service=service(selector),
                    versions={"hello": "1.0.0"}, autoscalers=autoscalers or {})


def plan_of(strategy, options: dict, selector=None, **kw) -> Plan:
    return strategy.plan(state(selector, **kw), TARGET, Options(options))


def without(plan: Plan, kind: type) -> tuple:
    return tuple(s for s in plan.steps if not isinstance(s, kind))


# ------------------------------------------------------------------ canary


def test_canary_puts_the_spec_on_every_verify_traffic_step():
    plan = plan_of(CanaryStrategy(), {"steps": (25, 50, 100), "interval": 30.0,
                                      "analysis": SPEC})
    verifies = [s for s in plan.steps if isinstance(s, VerifyTraffic)]
    assert len(verifies) == 2  # 25 % and 50 %; 100 % is the promotion
    assert all(v.analysis == SPEC and v.duration == 30.0 for v in verifies)
    assert not any(isinstance(s, Analyse) for s in plan.steps)
    assert ("the analysis runs at each of the 2 steps, for 30s (longer while a metric's count "
            "asks for more measurements); Failed or Error rolls back, Inconclusive stops at a "
            "gate") in plan.notes


def test_canary_beside_an_autoscaled_stable_side_analyses_every_step_too():
    plan = plan_of(CanaryStrategy(), {"steps": (10, 50), "interval": 5.0, "analysis": SPEC},
                   autoscalers={"hello": "hello-hpa"})
    verifies = [s for s in plan.steps if isinstance(s, VerifyTraffic)]
    assert [v.weight for v in verifies] == [10, 50]
    assert all(v.analysis == SPEC for v in verifies)


def test_a_canary_without_analysis_is_the_same_plan_without_the_spec():
    options = {"steps": (25, 50, 100), "interval": 30.0}
    plain = plan_of(CanaryStrategy(), options)
    analysed = plan_of(CanaryStrategy(), {**options, "analysis": SPEC})
    assert plain.steps == tuple(replace(s, analysis=None) if isinstance(s, VerifyTraffic) else s
                                for s in analysed.steps)
    assert all(s.analysis is None for s in plain.steps if isinstance(s, VerifyTraffic))
    assert plain.rollback == analysed.rollback
    assert not any("the analysis runs" in n for n in plain.notes)
    assert tuple(n for n in analysed.notes if "the analysis runs" not in n) == plain.notes


# ------------------------------------------------------------------ rolling


def test_rolling_analyses_after_its_rollout_for_the_interval():
    plan = plan_of(RollingStrategy(), {"analysis": SPEC, "interval": 45.0})
    update, wait, analyse = plan.steps
    assert isinstance(update, UpdateDeployment)
    assert wait == AwaitRollout("hello", "2.0.0")
    assert analyse == Analyse("hello", "hello", "2.0.0", None, "1.0.0", SPEC, 45.0,
                              "after the rollout")
    assert ("once every new pod is Ready, the analysis runs for 45s before the run is declared "
            "done; Failed or Error undoes the rollout, Inconclusive stops at a gate") in plan.notes


def test_rolling_without_an_interval_analyses_for_0s():
    (analyse,) = [s for s in plan_of(RollingStrategy(), {"analysis": SPEC}).steps
                  if isinstance(s, Analyse)]
    assert analyse.duration == 0.0


def test_rolling_without_analysis_is_unchanged():
    plain = plan_of(RollingStrategy(), {"interval": 45.0})
    analysed = plan_of(RollingStrategy(), {"analysis": SPEC, "interval": 45.0})
    assert [type(s) for s in plain.steps] == [UpdateDeployment, AwaitRollout]
    assert plain.steps == without(analysed, Analyse)
    assert plain.rollback == analysed.rollback
    assert plain.notes == ()


def test_rolling_after_a_blue_green_analyses_the_live_side():
    green = deployment("hello-green", "hello:v2", revision=1)
    green["spec"]["selector"]["matchLabels"] = {"app": "hello", "track": "green"}
    green["spec"]["template"]["metadata"]["labels"] = {"app": "hello", "track": "green"}
    s = AppState(APP, deployment(replicas=0, revision=4), "hello", parse_image("hello:v1"), 0,
                 4, (), service=service({"app": "hello", "track": "green"}),
                 others={"hello-green": green}, versions={"hello-green": "1.5.0"})
    plan = RollingStrategy().plan(s, TARGET, Options({"analysis": SPEC, "interval": 10.0}))
    analyse = plan.steps[-1]
    assert isinstance(analyse, Analyse)
    assert (analyse.app, analyse.new_deployment, analyse.old_deployment,
            analyse.old_version) == ("hello", "hello-green", None, "1.5.0")


# ------------------------------------------------------------------ blue-green


def test_blue_green_analyses_before_the_switch_and_in_the_window():
    plan = plan_of(BlueGreenStrategy(), {"analysis": SPEC, "interval": 20.0, "keep_old": 30},
                   STABLE)
    kinds = [type(s) for s in plan.steps]
    assert kinds == [type(plan.steps[0]), AwaitRollout, Analyse, SetServiceSelector,
                     VerifyTraffic, KeepOld, ScaleDeployment]
    analyse = plan.steps[2]
    assert analyse == Analyse("hello", "hello-green", "2.0.0", "hello", "1.0.0", SPEC, 20.0,
                              "pre-promotion")
    switch, verify, keep = plan.steps[3], plan.steps[4], plan.steps[5]
    assert isinstance(switch, SetServiceSelector) and switch.require_ready == "hello-green"
    assert isinstance(verify, VerifyTraffic) and verify.analysis is None  # the switch's check
    assert keep == KeepOld("hello", "hello-green", "2.0.0", "hello", "1.0.0", 30.0, watch=True,
                           analysis=SPEC)
    assert any(n.startswith("the analysis runs on hello-green before the switch (pre-promotion,"
                            " 20s) and after it while hello stays up (post-promotion, 30s;")
               for n in plan.notes)


def test_blue_green_analyses_before_its_gate():
    plan = plan_of(BlueGreenStrategy(), {"analysis": SPEC, "until_gate": True}, STABLE)
    kinds = [type(s) for s in plan.steps]
    at = kinds.index(Analyse)
    assert kinds[at + 1:at + 3] == [Gate, SetServiceSelector]


def test_an_analysis_makes_a_long_window_watched():
    analysed = plan_of(BlueGreenStrategy(), {"analysis": SPEC, "keep_old": 600}, STABLE)
    keep = next(s for s in analysed.steps if isinstance(s, KeepOld))
    assert keep.watch is True and keep.seconds == 600.0 and keep.analysis == SPEC
    assert analysed.steps[-1] == ScaleDeployment("hello", 0)  # the run waits, then scales
    plain = plan_of(BlueGreenStrategy(), {"keep_old": 600}, STABLE)
    keep = next(s for s in plain.steps if isinstance(s, KeepOld))
    assert keep.watch is False and keep.analysis is None
    assert not any(isinstance(s, ScaleDeployment) and s.deployment == "hello"
                   for s in plain.steps)


def test_with_keep_old_0_there_is_no_post_promotion_analysis():
    plan = plan_of(BlueGreenStrategy(), {"analysis": SPEC, "keep_old": 0}, STABLE)
    assert not any(isinstance(s, KeepOld) for s in plan.steps)
    assert any(isinstance(s, Analyse) for s in plan.steps)
    assert any("with --keep-old 0s there is no post-promotion analysis" in n
               for n in plan.notes)


def test_blue_green_without_analysis_is_unchanged():
    options = {"interval": 20.0, "keep_old": 30}
    plain = plan_of(BlueGreenStrategy(), options, STABLE)
    analysed = plan_of(BlueGreenStrategy(), {**options, "analysis": SPEC}, STABLE)
    assert plain.steps == tuple(replace(s, analysis=None) if isinstance(s, KeepOld) else s
                                for s in without(analysed, Analyse))
    assert plain.rollback == analysed.rollback
    assert not any("analysis" in n for n in plain.notes)


def test_every_planned_analysis_step_is_declared_for_the_permission_preflight():
    for strategy, selector in ((RollingStrategy(), None), (CanaryStrategy(), None),
                               (BlueGreenStrategy(), STABLE)):
        plan = plan_of(strategy, {"analysis": SPEC, "steps": (25, 50), "keep_old": 90},
                       selector)
        kinds = {type(s) for s in (*plan.steps, *plan.rollback)}
        assert kinds <= set(strategy.steps), (strategy.name, kinds - set(strategy.steps))


# ------------------------------------------------------------------ the plan lines


@pytest.mark.parametrize(("spec", "text"), [
    (None, ""),
    ({}, ""),
    ({"args": {"a": "1"}}, ""),
    ({"metrics": ["rate", "latency"]}, "; analysis: metrics rate, latency"),
    ({"probe": {"path": "/api", "maxErrorRate": 0.5}},
     "; analysis: probe /api (at most 0.5% errors)"),
    ({"compare": {"queries": ["q{{track}}"]}}, "; analysis: 1 canary-vs-stable comparison"),
    ({"compare": {"queries": ["a{{track}}", "b{{track}}"]}},
     "; analysis: 2 canary-vs-stable comparisons"),
    ({"metrics": ["rate"], "probe": {"path": "/", "maxErrorRate": 5.0},
      "compare": {"queries": ["q{{track}}"]}},
     "; analysis: metrics rate; probe / (at most 5% errors); 1 canary-vs-stable comparison"),
])
def test_analyses_says_what_a_spec_asks_for(spec, text):
    assert analyses(spec) == text


def test_step_lines_name_the_analyses():
    analyse = Analyse("hello", "hello-green", "2.0.0", "hello", "1.0.0", SPEC, 20.0,
                      "pre-promotion")
    assert analyse.describe() == ("pre-promotion: analyse hello-green for 20s; analysis: "
                                  "metrics rate; probe / (at most 5% errors)")
    assert replace(analyse, duration=0.0).describe() == (
        "pre-promotion: analyse hello-green; analysis: metrics rate; probe / (at most 5% errors)")
    verify = VerifyTraffic("hello", "hello-canary", "2.0.0", "hello", "1.0.0", 0.25, 30.0,
                           analysis={"metrics": ["rate"]})
    assert verify.describe() == ("verify traffic through service hello: 25% of clients get "
                                 "2.0.0, analysed for 30s; analysis: metrics rate")
    keep = KeepOld("hello", "hello-green", "2.0.0", "hello", "1.0.0", 90.0, analysis=SPEC)
    assert keep.describe().endswith("(a failure switches back at once); analysis: metrics "
                                    "rate; probe / (at most 5% errors)")
    assert "analysis" not in replace(keep, watch=False).describe()


def test_a_dry_run_shows_the_analysis_in_the_plan():
    lines = plan_of(RollingStrategy(), {"analysis": SPEC, "interval": 45.0}).describe()
    assert ("3. after the rollout: analyse hello for 45s; analysis: metrics rate; probe / (at "
            "most 5% errors)") in lines


# ------------------------------------------------------------------ plans through JSON


ANALYSIS_FILE = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: rate
spec:
  args:
  - name: service-name
  - name: canary-hash
  metrics:
  - name: rate
    interval: 10s
    count: 3
    successCondition: len(result) == 0 || result[0] < 0.05
    provider:
      prometheus:
        address: http://prometheus:9090
        headers:
        - key: X-Scope-OrgID
          value: tenant
        query: rate(errors{service="{{args.service-name}}",hash="{{args.canary-hash}}"}[1m])
"""


@pytest.fixture
def built_spec(tmp_path) -> dict:
    path = tmp_path / "rate.yaml"
    path.write_text(textwrap.dedent(ANALYSIS_FILE))
    spec = build(files=[str(path)], args=["service-name=hello"], probe="/", max_error_rate="2",
                 compare=['sum(rate(e{track="{{track}}"}[30s]))'],
                 prometheus="http://prometheus:9090")
    assert spec is not None
    return spec


@pytest.mark.parametrize(("strategy", "selector"), [
    (CanaryStrategy(), None), (RollingStrategy(), None), (BlueGreenStrategy(), STABLE)])
def test_plans_with_analysis_survive_their_json(built_spec, strategy, selector):
    plan = plan_of(strategy, {"analysis": built_spec, "interval": 30.0, "steps": (25, 50),
                              "keep_old": 90}, selector)
    recorded = json.loads(json.dumps(plan.to_json()))  # as the journal keeps it
    again = Plan.from_json(APP, recorded)
    assert again == plan
    specs = [s.analysis for s in again.steps if getattr(s, "analysis", None)]
    assert specs and all(spec == built_spec for spec in specs)
    assert again.describe() == plan.describe()
