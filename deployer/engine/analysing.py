"""The analyses a step runs beside its own checks, judged by what users get.

Three kinds, any of them in one step's spec (see :func:`deployer.model.analyses`):

- **metrics** from AnalysisTemplates in Argo Rollouts' format (``--analysis``): Prometheus
  queries, web requests and Jobs, measured on their own schedule (:mod:`deployer.analysis`);
- **the error-rate probe** (``--probe PATH``): a bounded number of GETs to every new pod
  and to as many old pods, by the version check's route, once per step;
- **comparisons** (``--compare QUERY``): one range query for each track over the step's
  window, compared with the Mann-Whitney U test once the window is over.

Results are the verifier's: Successful, Failed (the release is rejected), Error (could
not measure, past a metric's ``consecutiveErrorLimit``: rejected too, never a pass) and
Inconclusive (the run stops at a gate after the step; a person decides). Every
measurement goes to the report, whatever the outcome.
"""

from __future__ import annotations

import contextlib
import math
import secrets
from dataclasses import dataclass
from typing import Any

from deployer.analysis import providers
from deployer.analysis.assess import Result, overall
from deployer.analysis.compare import TRACK, Comparison, compare
from deployer.analysis.run import AnalysisRun
from deployer.analysis.run import Outcome as MetricsOutcome
from deployer.analysis.template import Metric, merge
from deployer.engine.context import StepContext
from deployer.engine.outage import Outage
from deployer.errors import (
    ApiRejected,
    ClusterUnreachable,
    Conflict,
    NotAuthorised,
    StepFailed,
    Undecided,
)
from deployer.health.http import ErrorRate, VersionProbe
from deployer.health.verifier import DEFAULT_PORT, container_port, is_ready, selector_of
from deployer.labels import TRACK_KEY, pod_labels
from deployer.snapshot import revisions
from deployer.timestamps import iso

PROBE_REQUESTS = 100  # GETs to each side's pods per step, unless --probe-requests says
COMPARE_STEP = 2.0  # seconds between the points of a comparison's range query
JOB_POLL = 1.0  # seconds between reads of a job metric's Job
JOB_LOG_LINES = 20
ANALYSIS_OF = "deployer.dev/analysis-of"
HASH_LABEL = "pod-template-hash"


@dataclass(frozen=True)
class Sides:
    """What a step analyses: the new pods, and the old ones beside them (if any)."""

    app: str
    new_deployment: str
    new_version: str | None
    old_deployment: str | None
    old_version: str | None


def arguments(ctx: StepContext, sides: Sides) -> dict[str, str]:
    """The arguments deployer gives every template (``PROVIDED`` in the template module):
    the app and namespace, each side's track label and version, and the pod-template hash
    of the new pods and of the old ones (the previous ReplicaSet when both sides are one
    Deployment, as in a rolling update)."""
    new = ctx.gateway.get_deployment(sides.new_deployment)
    old = (ctx.gateway.get_deployment(sides.old_deployment)
           if sides.old_deployment and sides.old_deployment != sides.new_deployment else None)
    new_hashes = _hashes(ctx, new)
    stable_hash = (_hashes(ctx, old)[-1:] or [""])[0] if old is not None else \
        (new_hashes[-2:-1] or [""])[0]
    latest = (new_hashes[-1:] or [""])[0]
    return {"app": sides.app, "namespace": ctx.gateway.namespace,
            "canary-track": _track(new), "stable-track": _track(old if old is not None else new),
            "new-version": sides.new_version or "", "old-version": sides.old_version or "",
            "canary-hash": latest, "latest-hash": latest, "stable-hash": stable_hash}


def _track(dep: dict[str, Any] | None) -> str:
    return pod_labels(dep or {}).get(TRACK_KEY, "")


def _hashes(ctx: StepContext, dep: dict[str, Any] | None) -> list[str]:
    """The pod-template hashes of a Deployment's revisions, oldest first."""
    if dep is None:
        return []
    return [str(((r.template.get("metadata") or {}).get("labels") or {}).get(HASH_LABEL, ""))
            for r in revisions(ctx.gateway, dep)]


class StepAnalysis:
    """One step's analyses, from its start: ``tick`` measures what is due, ``settle``
    says whether the step may end (raising when the analyses reject or cannot decide)."""

    def __init__(self, ctx: StepContext, spec: dict[str, Any], sides: Sides, step: str):
        self.ctx = ctx
        self.spec = spec
        self.sides = sides
        self.step = step
        self.started = ctx.clock()
        self.started_wall = ctx.wall()
        self._clients: dict[tuple[bool, str], Any] = {}
        self.values: dict[str, str] = {}
        self.metrics: AnalysisRun | None = None
        self.probe: dict[str, Any] | None = None  # the probe's findings, once it ran
        self.comparisons: list[Comparison] | None = None
        self.result: Result = Result.RUNNING
        self.message = ""
        self.over = False  # the step's window is over (as last ticked)
        templates = spec.get("templates") or []
        if templates:
            analysis = merge(templates, spec.get("args") or {})
            provided = arguments(ctx, sides)
            self.values = {**{k: v for k, v in analysis.args.items() if v is not None},
                           **{k: provided[k] for k, v in analysis.args.items()
                              if v is None and k in provided},
                           **(spec.get("args") or {})}
            self.metrics = AnalysisRun(analysis, self.values, self.started, self._measure,
                                       lambda: str(iso(ctx.wall())))

    # ------------------------------------------------------------------ the loop

    def tick(self, window_over: bool) -> None:
        """Take what is due now: metrics on their schedule, the probe once, the
        comparisons once the window is over."""
        self.over = window_over
        if self.metrics is not None:
            self.metrics.measure_due(self.ctx.clock())
        if self.spec.get("probe") and self.probe is None:
            self.probe = self._run_probe(self.spec["probe"])
        if self.spec.get("compare") and self.comparisons is None and window_over:
            self.comparisons = self._compare(self.spec["compare"])

    def outcome(self, window_over: bool) -> tuple[Result, str]:
        results: list[Result] = []
        why: dict[Result, str] = {}
        if self.metrics is not None:
            metrics = self.metrics.outcome(window_over)
            results.append(metrics.result)
            bad = metrics.failed_metric()
            if bad is not None:
                why[metrics.result] = _metric_failure(bad, metrics)
        if self.spec.get("probe"):
            result = Result(self.probe["result"]) if self.probe else Result.RUNNING
            results.append(result)
            if self.probe:
                why.setdefault(result, f"probe {self.probe['path']}: {self.probe['message']}")
        if self.spec.get("compare"):
            if self.comparisons is None:
                results.append(Result.RUNNING)
            for c in self.comparisons or []:
                results.append(c.result)
                why.setdefault(c.result, f"--compare {c.query}: {c.message}")
        result = overall(results) if results else Result.SUCCESSFUL
        return result, why.get(result, "")

    def settle(self, window_over: bool) -> bool:
        """True once the analyses passed (and the window is over); raises StepFailed when
        they reject the release, Undecided when they are Inconclusive."""
        result, why = self.outcome(window_over)
        self.result = result
        self.message = self.summary() if result is Result.SUCCESSFUL else why
        if result in (Result.FAILED, Result.ERROR):
            raise StepFailed(f"analysis {result.value.lower()}: {why}")
        if result is Result.INCONCLUSIVE:
            raise Undecided(f"analysis inconclusive: {why}")
        return result is Result.SUCCESSFUL and window_over

    def wait(self, end: float) -> float:
        """How long the loop may sleep: until the next measurement, or the window's end."""
        now = self.ctx.clock()
        waits = [max(end - now, 0.0)] if now < end else []
        if self.metrics is not None:
            due = self.metrics.next_due(now)
            if due is not None:
                waits.append(due)
        return min(waits) if waits else 1.0

    def waiting(self, end: float) -> str:
        left = end - self.ctx.clock()
        if left > 0:
            return f"analysing: {left:.0f}s left"
        running = [m.name for m in (self.metrics.outcome(True).metrics if self.metrics else ())
                   if not m.result.completed]
        return f"analysing: waiting for the counted measurements of {', '.join(running)}"

    def summary(self) -> str:
        parts = []
        if self.metrics is not None:
            parts += [f"{m.name} {m.result.value} ({len(m.measurements)} measured)"
                      for m in self.metrics.outcome(True).metrics]
        if self.probe:
            parts.append(f"probe {self.probe['message']}")
        parts += [f"compare {c.result.value}" for c in self.comparisons or []]
        return "analysis: " + "; ".join(parts)

    # ------------------------------------------------------------------ measuring

    def _client(self, settings: dict[str, Any]) -> Any:
        key = (bool(settings.get("insecure")), str(settings.get("caCert") or ""))
        if key not in self._clients:
            self._clients[key] = providers.client_for(settings)
        return self._clients[key]

    def _measure(self, metric: Metric, settings: dict[str, Any]) -> tuple[Any, str]:
        if metric.provider == "prometheus":
            return providers.prometheus(self._client(settings), settings)
        if metric.provider == "web":
            return providers.web(self._client(settings), settings)
        return self._job(metric, settings)

    def _job(self, metric: Metric, settings: dict[str, Any]) -> tuple[Any, str]:
        """A Job from the metric's template, waited for: Successful when it succeeds,
        Failed when it fails; its last log lines go in the report. It is deleted after."""
        ctx = self.ctx
        base = "".join(c if c.isalnum() else "-" for c in
                       f"{self.sides.app}-{metric.name}".lower()).strip("-")[:50]
        name = f"{base}-{secrets.token_hex(3)}"
        meta = dict(settings.get("metadata") or {})
        body = {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {**meta, "name": name,
                             "labels": {**(meta.get("labels") or {}),
                                        ANALYSIS_OF: self.sides.app}},
                "spec": settings["spec"]}
        asked = f"job {name}"
        ctx.confirm()  # a write: only while the run holds the app
        try:
            ctx.gateway.create_job(body)
        except (ApiRejected, NotAuthorised, Conflict) as exc:
            raise providers.MeasureError(f"{asked}: could not be created: {exc.message}"
                                         ) from None
        try:
            while True:
                job = ctx.gateway.get_job(name)
                if job is None:
                    raise providers.MeasureError(f"{asked}: deleted before it finished")
                done = _job_done(job)
                if done is not None:
                    break
                if ctx.clock() > ctx.settings.deadline:
                    raise providers.MeasureError(f"{asked}: not finished by the run's "
                                                 "deadline (--timeout)")
                ctx.pause(JOB_POLL)
            logs: list[str] = []
            for pod in ctx.gateway.list_pods(f"job-name={name}")[-1:]:
                containers = pod["spec"].get("containers") or []
                if containers:
                    logs = ctx.gateway.pod_logs(pod["metadata"]["name"], containers[0]["name"],
                                                tail_lines=JOB_LOG_LINES)
            return {"succeeded": done, "logs": logs}, asked
        finally:
            with contextlib.suppress(Exception):
                ctx.gateway.delete_job(name)

    def _ready_pods(self, deployment: str | None) -> tuple[list[dict[str, Any]], int | str]:
        dep = self.ctx.gateway.get_deployment(deployment) if deployment else None
        if dep is None:
            return [], DEFAULT_PORT
        pods = [p for p in self.ctx.gateway.list_pods(selector_of(dep))
                if is_ready(p) and not p["metadata"].get("deletionTimestamp")]
        port = container_port(dep, self.ctx.settings.verify.container,
                              self.ctx.settings.verify.port) or DEFAULT_PORT
        return pods, port

    def _run_probe(self, probe: dict[str, Any]) -> dict[str, Any]:
        path, limit = str(probe["path"]), float(probe["maxErrorRate"])
        requests = int(probe.get("requests") or PROBE_REQUESTS)
        new_pods, new_port = self._ready_pods(self.sides.new_deployment)
        old_pods: list[dict[str, Any]] = []
        old_port: int | str = DEFAULT_PORT
        if self.sides.old_deployment and self.sides.old_deployment != self.sides.new_deployment:
            old_pods, old_port = self._ready_pods(self.sides.old_deployment)
            old_pods = old_pods[:max(len(new_pods), 1)]
        with VersionProbe(self.ctx.gateway, self.ctx.settings.verify.probe) as client:
            new = client.error_rate(new_pods, new_port, path, requests)
            old = client.error_rate(old_pods, old_port, path, requests) if old_pods else None
        result, message = judge_probe(new, old, limit)
        return {"path": path, "maxErrorRate": limit, "result": result.value,
                "message": message, "at": iso(self.ctx.wall()), "new": new.to_json(),
                "old": old.to_json() if old is not None else None}

    def _compare(self, spec: dict[str, Any]) -> list[Comparison]:
        """Each query for the canary's track and stable's over the step's window."""
        new_track = arguments_track(self.ctx, self.sides.new_deployment)
        old_track = arguments_track(self.ctx, self.sides.old_deployment)
        start, end = self.started_wall, self.ctx.wall()
        step = float(spec.get("step") or COMPARE_STEP)
        client = self._client({})
        out = []
        for query in spec["queries"]:
            try:
                canary = providers.prometheus_range(client, spec["prometheus"],
                                                    query.replace(TRACK, new_track),
                                                    start, end, step)
                stable = providers.prometheus_range(client, spec["prometheus"],
                                                    query.replace(TRACK, old_track),
                                                    start, end, step)
            except providers.MeasureError as exc:
                out.append(Comparison(query, Result.ERROR, str(exc)))
                continue
            try:
                out.append(compare(query, canary, stable,
                                   alpha=float(spec.get("alpha") or 0.05),
                                   worse=str(spec.get("worse") or "higher"),
                                   min_samples=int(spec.get("minSamples") or 8)))
            except ValueError as exc:  # scipy on values it cannot rank (infinities)
                out.append(Comparison(query, Result.ERROR, f"cannot compare: {exc}"))
        return out

    # ------------------------------------------------------------------ the record

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step, "startedAt": iso(self.started_wall),
                               "result": self.result.value, "message": self.message}
        if self.metrics is not None:
            out["args"] = dict(sorted(self.values.items()))
            out["metrics"] = [
                {"name": m.name, "provider": run.metric.provider, "result": m.result.value,
                 "message": m.why,
                 "measurements": [{"at": x.at, "result": x.result.value,
                                   "value": json_safe(x.value), "asked": x.asked,
                                   "message": x.message}
                                  for x in m.measurements]}
                for m, run in zip(self.metrics.outcome(self.over).metrics, self.metrics.runs,
                                  strict=True)]
        if self.spec.get("probe"):
            out["probe"] = self.probe
        if self.spec.get("compare"):
            out["comparisons"] = [c.to_json() for c in self.comparisons or []]
        return out

    def close(self) -> None:
        if not self.result.completed:
            self.message = "not finished: the step ended before the analysis did"
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        self.ctx.reporter.analysed(self.to_json())

    def __enter__(self) -> StepAnalysis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def arguments_track(ctx: StepContext, deployment: str | None) -> str:
    return _track(ctx.gateway.get_deployment(deployment) if deployment else None)


def judge_probe(new: ErrorRate, old: ErrorRate | None, limit: float) -> tuple[Result, str]:
    """The probe's verdict: the new pods' error rate above the limit, or above the old
    pods' by more than the limit, fails; no new pod to ask is an Error."""
    def said(rate: ErrorRate, who: str) -> str:
        kinds = ", ".join(f"{k} x{n}" for k, n in sorted(rate.kinds.items()))
        return (f"{who} {rate.percent:.1f}% of {rate.requests} requests to {rate.pods} pods"
                + (f" ({kinds})" if kinds else ""))

    if new.percent is None:
        return Result.ERROR, "no Ready new pod to probe"
    text = said(new, "new")
    if old is not None and old.percent is not None:
        text += f"; old {said(old, '')[1:]}"
    else:
        text += "; old: not measured (no old pod serving)"
    # Above the limit fails; so does more than the limit above the old pods' rate, which
    # the first rule already covers (a rate is never below 0): both are said.
    if new.percent > limit:
        return Result.FAILED, f"the new version's error rate is above {limit:g}%: {text}"
    return Result.SUCCESSFUL, f"at most {limit:g}%: {text}"


def _metric_failure(bad: Any, metrics: MetricsOutcome) -> str:
    """Which metric decided, why, and the value that decided it."""
    last = bad.measurements[-1] if bad.measurements else None
    value = f"; last value {_value_text(last.value)}" if last is not None and \
        last.value is not None else ""
    return f"metric {bad.name!r} {bad.result.value}: {bad.why}{value}"


def _value_text(value: Any) -> str:
    if isinstance(value, dict) and "succeeded" in value:
        return "job " + ("succeeded" if value["succeeded"] else "failed") + (
            f", log: {' | '.join(value.get('logs') or [])[-200:]}" if value.get("logs") else "")
    return str(json_safe(value))[:200]


def json_safe(value: Any) -> Any:
    """A measured value for JSON: NaN and infinities as Prometheus writes them."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    return value


def _job_done(job: dict[str, Any]) -> bool | None:
    """True: the Job succeeded; False: it failed; None: still running."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return cond["type"] == "Complete"
    return None


def watch(ctx: StepContext, analysis: StepAnalysis, duration: float) -> str:
    """Run one step's analyses for ``duration`` seconds (longer while a metric's count
    asks for more measurements), riding out a short API outage."""
    end = ctx.clock() + duration
    outage = Outage(ctx)
    with analysis:
        while True:
            over = ctx.clock() >= end
            try:
                analysis.tick(over)
            except ClusterUnreachable as exc:
                outage.failed(exc)
                continue
            outage.clear()
            if analysis.settle(over):
                return analysis.summary()
            ctx.reporter.waiting(analysis.waiting(end))
            ctx.pause(max(min(analysis.wait(end), 3.0), 0.2))
