"""The values deployer passes around: what to deploy, the plan, what was measured.

Everything here is a frozen dataclass or an enum: strategies build these, the
engine executes them, the report prints them. Kubernetes objects themselves
travel as plain JSON dicts (exactly what the API server sends), never as client
model classes, so nothing outside :mod:`deployer.cluster` depends on the client.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, TypeVar

from deployer.errors import UnsafeState
from deployer.timestamps import micro
from deployer.validation import ImageRef, parse_reference

K8sObject = dict[str, Any]
S = TypeVar("S", bound="Step")

ANNOTATION_PREFIX = "deployer.dev/"
PLAN_SCHEMA_VERSION = 1  # how plans are written into the run journal
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"


def labels_text(labels: Mapping[str, str] | None) -> str:
    """Labels or a selector as kubectl writes them: app=hello,track=stable."""
    return ",".join(f"{k}={v}" for k, v in (labels or {}).items()) or "(none)"


@dataclass(frozen=True)
class AppRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Target:
    """What the user asked for."""

    image: ImageRef
    expected_version: str | None
    reason: str | None = None
    who: str | None = None
    run_url: str | None = None  # the CI run that asked for it


@dataclass(frozen=True)
class Revision:
    """One ReplicaSet revision of a Deployment, as ``kubectl rollout history`` sees it."""

    number: int
    image: str
    replicaset: str
    change_cause: str | None
    created: str | None
    template: K8sObject = field(repr=False, compare=False, default_factory=dict)


@dataclass(frozen=True)
class AppState:
    """A snapshot of the app read at the start of a run: what strategies plan from."""

    app: AppRef
    deployment: K8sObject
    container: str
    image: ImageRef
    replicas: int
    revision: int
    revisions: tuple[Revision, ...]
    version: str | None = None  # what the stable pods answer now (measured), if known
    service: K8sObject | None = None
    others: dict[str, K8sObject] = field(default_factory=dict)  # the app's other Deployments
    versions: dict[str, str] = field(default_factory=dict)  # deployment -> version it answers
    # deployment -> the HorizontalPodAutoscaler that sizes it; None: they cannot be read
    autoscalers: dict[str, str] | None = field(default_factory=dict)

    @property
    def deployment_name(self) -> str:
        return str(self.deployment["metadata"]["name"])

    @property
    def rollout_strategy(self) -> K8sObject:
        return dict(self.deployment["spec"].get("strategy") or {})

    def replica_counts(self) -> dict[str, int]:
        """spec.replicas of the app's Deployment and of its other Deployments, now."""
        return {self.deployment_name: self.replicas,
                **{name: int(d["spec"].get("replicas") or 0) for name, d in self.others.items()}}

    def live(self) -> list[tuple[str, str, str | None]]:
        """What the Service routes to now: (deployment, image, version) of each Deployment
        with pods whose labels its selector matches; without a Service, the app's own."""
        selector = ((self.service or {}).get("spec") or {}).get("selector") or {}
        found = []
        for dep in (self.deployment, *self.others.values()):
            spec = dep.get("spec") or {}
            labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            if not selector or not int(spec.get("replicas") or 0):
                continue
            if all(labels.get(k) == v for k, v in selector.items()):
                name = str(dep["metadata"]["name"])
                containers = spec["template"]["spec"]["containers"]
                image = next((c["image"] for c in containers if c["name"] == self.container),
                             containers[0]["image"])
                found.append((name, image, self.versions.get(name)))
        if not found:
            found.append((self.deployment_name, str(self.image), self.version))
        return found

    def live_side(self) -> str:
        """The one Deployment the Service routes to now (after a blue-green, APP-green);
        the app's own when that is not exactly one other Deployment."""
        live = self.live()
        if len(live) == 1 and live[0][0] in self.others:
            return live[0][0]
        return self.deployment_name

    def on_live_side(self) -> AppState:
        """The app as rolling, recreate and canary plan it: centred on the Deployment the
        Service routes to now, so that they change what users get, whichever strategy ran
        before. The app's own Deployment then counts among the others."""
        name = self.live_side()
        if name == self.deployment_name:
            return self
        dep = self.others[name]
        annotations = dep["metadata"].get("annotations") or {}
        containers = dep["spec"]["template"]["spec"]["containers"]
        image = next((c["image"] for c in containers if c["name"] == self.container),
                     containers[0]["image"])
        others = {n: d for n, d in self.others.items() if n != name}
        others[self.deployment_name] = self.deployment
        return replace(self, deployment=dep, image=parse_reference(image),
                       replicas=int(dep["spec"].get("replicas", 1)),
                       revision=int(annotations.get(REVISION_ANNOTATION, "0") or 0),
                       revisions=(), version=self.versions.get(name), others=others)

    def live_text(self) -> tuple[str, str | None]:
        """The live side in a Result block: images (with their Deployment when there are
        several or it is not the app's own) and the version(s) they answer."""
        live = self.live()
        if len(live) == 1 and live[0][0] == self.deployment_name:
            return live[0][1], live[0][2]
        images = " + ".join(f"{image} ({name})" for name, image, _ in live)
        versions = sorted({v for _, _, v in live if v})
        return images, " + ".join(versions) or None

    def previous_revision(self) -> Revision | None:
        older = [r for r in self.revisions if r.number < self.revision]
        return max(older, key=lambda r: r.number) if older else None


# --------------------------------------------------------------------------- steps


STEP_TYPES: dict[str, type[Step]] = {}


def step_type(cls: type[S]) -> type[S]:
    """Register a step class so plans can be stored in the cluster and read back."""
    STEP_TYPES[cls.__name__] = cls
    return cls


@dataclass(frozen=True)
class Step:
    """Base of every plan step. ``describe`` is the line shown in plans and reports."""

    def describe(self) -> str:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def replicas_after(self, replicas: dict[str, int]) -> dict[str, int]:
        """Each Deployment's spec.replicas once this step is done (a dry run shows them)."""
        return replicas

    @property
    def kind(self) -> str:
        name = type(self).__name__
        return "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")


@step_type
@dataclass(frozen=True)
class UpdateDeployment(Step):
    """Set the container image (and optionally the rollout strategy and pod labels, such as
    the version label) in one write."""

    deployment: str
    container: str
    image: str
    change_cause: str
    strategy: K8sObject | None = None
    labels: K8sObject | None = None

    def describe(self) -> str:
        extra = f" with strategy {self.strategy.get('type')}" if self.strategy else ""
        if self.labels:
            extra += f", pods labelled {labels_text(self.labels)}"
        return f"set {self.deployment}/{self.container} image to {self.image}{extra}"


@step_type
@dataclass(frozen=True)
class RestartDeployment(Step):
    """Restart every pod of a Deployment by a rolling update of the same spec, as
    ``kubectl rollout restart`` does: the pod template's restartedAt annotation is set."""

    deployment: str
    restarted_at: str
    change_cause: str

    def describe(self) -> str:
        return f"restart {self.deployment}'s pods (restartedAt {self.restarted_at})"


@step_type
@dataclass(frozen=True)
class SetRolloutStrategy(Step):
    deployment: str
    strategy: K8sObject

    def describe(self) -> str:
        return f"set {self.deployment} rollout strategy to {self.strategy.get('type')}"


@step_type
@dataclass(frozen=True)
class AwaitRollout(Step):
    """Watch the rollout and verify it: rollout status, pod failures, HTTP /version."""

    deployment: str
    expected_version: str | None
    measure_downtime: bool = False
    # recreate: the Service that has no endpoint from the moment the old pods stop; the
    # step ends once it routes to every Ready pod again (and the downtime with it)
    service: str | None = None

    def describe(self) -> str:
        version = (f", every new pod answers {self.expected_version}"
                   if self.expected_version else "")
        routed = f", until service {self.service} routes to them" if self.service else ""
        return f"wait for {self.deployment} to roll out and verify it{version}{routed}"


@step_type
@dataclass(frozen=True)
class UndoRollout(Step):
    """Return the Deployment's pod template to an earlier revision (kubectl rollout undo)."""

    deployment: str
    to_revision: int
    change_cause: str

    def describe(self) -> str:
        return f"roll {self.deployment} back to revision {self.to_revision}"


@step_type
@dataclass(frozen=True)
class ApplyDeployment(Step):
    """Create a Deployment from ``body`` or bring an existing one to its image and replicas.

    With ``weight`` and ``ratio_of`` set (a canary), the replica count is worked out
    again from ``ratio_of``'s size at the time the step runs, so that a stable
    Deployment resized since planning (by an autoscaler) keeps the planned weight.
    """

    body: K8sObject
    weight: int | None = None
    ratio_of: str | None = None

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    def replicas_after(self, replicas: dict[str, int]) -> dict[str, int]:
        return {**replicas, self.name: int(self.body["spec"].get("replicas", 1))}

    def describe(self) -> str:
        containers = self.body["spec"]["template"]["spec"]["containers"]
        image = (containers[0]["image"] if len(containers) == 1 else
                 ", ".join(f"{c['name']}={c['image']}" for c in containers))
        what = f"apply {self.name}: {self.body['spec']['replicas']} replicas of {image}"
        if self.weight is not None and self.ratio_of:
            what += f" ({self.weight}% beside {self.ratio_of})"
        return what


@step_type
@dataclass(frozen=True)
class ScaleDeployment(Step):
    """Set a Deployment's replicas. With ``service`` set, a scale-down ends only once the
    removed pods are no endpoints of that Service any more (the side keeps serving)."""

    deployment: str
    replicas: int
    missing_ok: bool = False
    service: str | None = None

    def replicas_after(self, replicas: dict[str, int]) -> dict[str, int]:
        if self.deployment not in replicas and self.missing_ok:
            return replicas
        return {**replicas, self.deployment: self.replicas}

    def describe(self) -> str:
        return f"scale {self.deployment} to {self.replicas}" + (
            f", the removed pods gone from service {self.service}" if self.service else "")


@step_type
@dataclass(frozen=True)
class DeleteDeployment(Step):
    """Delete a Deployment after waiting until none of its pods is left serving.

    With ``service`` set, "left serving" includes that Service's endpoints: the step
    ends only once none of the Deployment's pods is an endpoint of it any more.
    """

    deployment: str
    service: str | None = None

    def replicas_after(self, replicas: dict[str, int]) -> dict[str, int]:
        return {k: v for k, v in replicas.items() if k != self.deployment}

    def describe(self) -> str:
        if self.service:
            return (f"delete {self.deployment} once its pods are gone from service "
                    f"{self.service}")
        return f"delete {self.deployment} once its pods are gone"


@step_type
@dataclass(frozen=True)
class SetServiceAffinity(Step):
    service: str
    affinity: str

    def describe(self) -> str:
        return f"set service {self.service} sessionAffinity to {self.affinity}"


@step_type
@dataclass(frozen=True)
class SetServiceSelector(Step):
    """Point the Service at other pods in one write (the blue-green switch)."""

    service: str
    selector: K8sObject
    require_ready: str | None = None  # a Deployment that must be fully available first
    after_gone: str | None = None  # a Deployment whose pods must have stopped first

    def describe(self) -> str:
        labels = labels_text(dict(sorted(self.selector.items())))
        if self.after_gone:
            return (f"once {self.after_gone}'s pods have stopped, switch service "
                    f"{self.service} back to selector {labels}")
        return f"switch service {self.service} to selector {labels}"


@step_type
@dataclass(frozen=True)
class VerifyTraffic(Step):
    """Per-pod versions of both tracks, and what clients get through the Service.

    ``share`` is the planned share of clients that must get ``new_version``;
    ``fresh_clients`` says which slice of the client addresses meets the Service for
    the first time at this step (affinity keeps the earlier ones where they are).
    """

    service: str
    new_deployment: str
    new_version: str | None
    old_deployment: str | None
    old_version: str | None
    share: float
    duration: float = 0.0
    fresh_clients: tuple[int, int] = (0, 0)
    weight: int | None = None  # a replica-ratio weight to keep if old_deployment is resized
    analysis: K8sObject | None = None  # the analyses asked for (see AnalysisSpec)

    def describe(self) -> str:
        what = f"{self.share:.0%} of clients get {self.new_version}"
        if self.duration:
            what += f", analysed for {self.duration:.0f}s"
        return f"verify traffic through service {self.service}: {what}" + analyses(self.analysis)


@step_type
@dataclass(frozen=True)
class Analyse(Step):
    """Run the analyses asked for (metric templates, the error-rate probe) on
    ``new_deployment``'s pods for ``duration`` seconds (longer when a metric's count asks
    for it), beside ``old_deployment``'s when it still runs pods: blue-green's
    pre-promotion analysis, rolling's analysis once the new pods are Ready."""

    app: str
    new_deployment: str
    new_version: str | None
    old_deployment: str | None
    old_version: str | None
    analysis: K8sObject
    duration: float = 0.0
    phase: str = "analysis"

    def describe(self) -> str:
        during = f" for {self.duration:.0f}s" if self.duration else ""
        return f"{self.phase}: analyse {self.new_deployment}{during}" + analyses(self.analysis)


@step_type
@dataclass(frozen=True)
class Gate(Step):
    """Stop here; a later ``deployer promote`` continues, ``deployer abort`` rolls back."""

    label: str

    def describe(self) -> str:
        return f"pause at the promotion gate ({self.label})"


@step_type
@dataclass(frozen=True)
class Hold(Step):
    """Wait, keeping everything as it is (e.g. the old side as a rollback window)."""

    seconds: float
    reason: str

    def describe(self) -> str:
        return f"hold for {self.seconds:.0f}s: {self.reason}"


@step_type
@dataclass(frozen=True)
class KeepOld(Step):
    """blue-green's rollback window after the switch: the old side stays up.

    ``watch`` (a window short enough to wait in the foreground): the new live side is
    checked through the Service every round until the window ends, and a failure there
    switches back at once (the plan's rollback). Without ``watch`` the run ends here and
    records when the window ends; the next deployer command for the app scales the old
    side down after that (``deployer promote`` at once).
    """

    service: str
    new_deployment: str  # the new live side
    new_version: str | None
    old_deployment: str  # the side kept up
    old_version: str | None
    seconds: float
    watch: bool = True
    analysis: K8sObject | None = None  # post-promotion analysis, run while watching

    def describe(self) -> str:
        if self.watch:
            return (f"keep {self.old_deployment} up for {self.seconds:.0f}s, watching "
                    f"{self.new_deployment} (a failure switches back at once)"
                    + analyses(self.analysis))
        return (f"keep {self.old_deployment} up for {self.seconds:.0f}s after the run "
                "(the next deploy, promote or abort of the app scales it down then)")


def analyses(spec: K8sObject | None) -> str:
    """What a step's analysis spec asks for, in a plan line: ``; metrics: a, b; probe /``.

    The spec (built by the command line, run by the engine) holds ``templates`` (the
    documents of the --analysis files, with ``source``), ``args`` (--arg values),
    ``metrics`` (the merged metric names, for this line), ``probe`` ({path, maxErrorRate,
    requests}) and ``compare`` ({queries, prometheus, alpha, worse, step, minSamples})."""
    if not spec:
        return ""
    parts = []
    if spec.get("metrics"):
        parts.append("metrics " + ", ".join(spec["metrics"]))
    if spec.get("probe"):
        probe = spec["probe"]
        parts.append(f"probe {probe['path']} (at most {probe['maxErrorRate']:g}% errors)")
    if spec.get("compare"):
        n = len(spec["compare"]["queries"])
        parts.append(f"{n} canary-vs-stable comparison{'s' if n > 1 else ''}")
    return "; analysis: " + "; ".join(parts) if parts else ""


@dataclass(frozen=True)
class Plan:
    strategy: str
    app: AppRef
    steps: tuple[Step, ...]
    rollback: tuple[Step, ...]
    summary: str = ""
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # what the plan cannot do as asked (printed, in the JSON)
    # what the outcome says once every step is done (default: "APP is running IMAGE"),
    # for a plan that does not change what the app runs (a plugin's smoke test)
    done: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"schemaVersion": PLAN_SCHEMA_VERSION, "strategy": self.strategy,
                "summary": self.summary, "notes": list(self.notes),
                "warnings": list(self.warnings),
                **({"done": self.done} if self.done else {}),
                "steps": [step_to_json(s) for s in self.steps],
                "rollback": [step_to_json(s) for s in self.rollback]}

    @classmethod
    def from_json(cls, app: AppRef, data: dict[str, Any]) -> Plan:
        """A plan as recorded in the cluster; one this deployer cannot run is refused."""
        version = data.get("schemaVersion", 1)
        if not isinstance(version, int) or version > PLAN_SCHEMA_VERSION:
            raise UnsafeState(f"the recorded plan of {app} has schema version {version!r}; "
                              f"this deployer runs plans up to {PLAN_SCHEMA_VERSION}",
                              id="unknown-plan-schema",
                              hint="continue it with the deployer version that started it")
        try:
            return cls(data["strategy"], app, tuple(step_from_json(s) for s in data["steps"]),
                       tuple(step_from_json(s) for s in data["rollback"]),
                       data.get("summary", ""), tuple(data.get("notes") or ()),
                       tuple(data.get("warnings") or ()), str(data.get("done") or ""))
        except (KeyError, TypeError) as exc:
            raise UnsafeState(f"the recorded plan of {app} cannot be read: {exc!s}",
                              id="unreadable-plan") from exc

    def deployments(self) -> list[str]:
        """The Deployments the plan's steps name, in order of first mention."""
        names: dict[str, None] = {}
        for step in self.steps:
            for attr in ("deployment", "new_deployment", "old_deployment"):
                name = getattr(step, attr, None)
                if isinstance(name, str):
                    names.setdefault(name)
        return list(names)

    def replica_timeline(self, start: dict[str, int]) -> list[dict[str, int]]:
        """spec.replicas of every Deployment after each step, from ``start``."""
        out, now = [], dict(start)
        for step in self.steps:
            now = step.replicas_after(now)
            out.append(dict(sorted(now.items())))
        return out

    def dry_run_json(self, start: dict[str, int]) -> dict[str, Any]:
        """The whole plan for ``--dry-run -o json``: each step with the replicas after it."""
        return {**self.to_json(), "steps": [
            {**step_view(step_to_json(step)), "description": step.describe(),
             "replicasAfter": replicas}
            for step, replicas in zip(self.steps, self.replica_timeline(start), strict=True)],
            "rollback": [{**step_view(step_to_json(step)), "description": step.describe()}
                         for step in self.rollback]}

    def describe(self, start: dict[str, int] | None = None) -> list[str]:
        """The plan as text; with ``start`` (replicas now), the replicas after each step
        that changes them."""
        lines = [f"warning: {w}" for w in self.warnings] + list(self.notes)
        before = dict(start or {})
        timeline = self.replica_timeline(before) if start is not None else None
        for i, step in enumerate(self.steps, 1):
            line = f"{i}. {step.describe()}"
            if timeline is not None:
                after = timeline[i - 1]
                if after != dict(sorted(before.items())):
                    line += "  [" + ", ".join(f"{k} {v}" for k, v in after.items()) + "]"
                before = after
            lines.append(line)
        if self.rollback:
            lines.append("on failure:")
            lines += [f"   - {step.describe()}" for step in self.rollback]
        return lines


def step_to_json(step: Step) -> dict[str, Any]:
    """A step as the run journal stores it (its field names as they are)."""
    return {"type": type(step).__name__, **asdict(step)}


def camel(name: str) -> str:
    """``new_deployment`` -> ``newDeployment``: reports name things as Kubernetes does."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def step_view(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored step (:func:`step_to_json`) as a report shows it: its field names in
    camelCase; the values (a Deployment's body, labels) as they are."""
    return {camel(k): v for k, v in stored.items()}


def plan_view(stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored plan (:meth:`Plan.to_json`) as a report shows it."""
    if stored is None:
        return None
    return {**stored, "steps": [step_view(s) for s in stored.get("steps") or []],
            "rollback": [step_view(s) for s in stored.get("rollback") or []]}


def step_from_json(data: dict[str, Any]) -> Step:
    values = dict(data)
    kind = values.pop("type", None)
    cls = STEP_TYPES.get(str(kind))
    if cls is None:
        known = ", ".join(sorted(STEP_TYPES))
        raise UnsafeState(f"the recorded plan has a step of unknown kind {kind!r} (known: "
                          f"{known}); it was written by another deployer version",
                          id="unknown-step",
                          hint="continue it with the deployer version that started it")
    for f in fields(cls):
        if isinstance(values.get(f.name), list):
            values[f.name] = tuple(values[f.name])
    return cls(**values)


# ------------------------------------------------------------------- measurements


@dataclass(frozen=True)
class HttpAnswer:
    """What one HTTP GET to a pod gave: a status and the start of the body, or an error
    (timed out, connection reset) when no answer came."""

    status: int | None
    body: bytes = b""
    location: str | None = None
    error: str | None = None



class Phase(StrEnum):
    """The state of one check, as in Argo Rollouts' AnalysisPhase.

    ERROR means the check could not measure (timeout, 5xx); FAILED means it
    measured something bad. Only FAILED rejects a release at once.
    """

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    ERROR = "Error"
    INCONCLUSIVE = "Inconclusive"

    @property
    def completed(self) -> bool:
        return self in (Phase.SUCCESSFUL, Phase.FAILED, Phase.ERROR, Phase.INCONCLUSIVE)


@dataclass(frozen=True)
class Measurement:
    check: str
    phase: Phase
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "phase": self.phase.value,
            "message": self.message,
            "details": self.details,
        }


@dataclass(frozen=True)
class PodFailure:
    pod: str
    container: str | None
    reason: str
    message: str
    image: str | None = None
    exit_code: int | None = None
    events: tuple[str, ...] = ()
    logs: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "pod": self.pod,
            "container": self.container,
            "reason": self.reason,
            "message": self.message,
            "image": self.image,
            "exitCode": self.exit_code,
            "events": list(self.events),
            "logs": list(self.logs),
        }


class Verdict(StrEnum):
    PROMOTED = "promoted"
    REJECTED = "rejected"
    ROLLED_BACK = "rolled-back"
    NOOP = "no-op"
    UNSAFE = "unsafe"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    PLANNED = "planned"
    PAUSED = "paused"
    RESUMED = "resumed"
    UNKNOWN = "outcome-unknown"


@dataclass
class StepRecord:
    description: str
    kind: str
    started: float
    seconds: float | None = None
    result: str = "running"
    note: str | None = None
    started_at: float | None = None  # wall clock (epoch seconds), for the report

    def to_json(self) -> dict[str, Any]:
        at = self.started_at
        return {"step": self.description, "kind": self.kind, "result": self.result,
                "seconds": None if self.seconds is None else round(self.seconds, 2),
                "startedAt": None if at is None else micro(at),
                "finishedAt": None if at is None or self.seconds is None
                else micro(at + self.seconds),
                "note": self.note}


@dataclass
class Outcome:
    verdict: Verdict
    exit_code: int
    message: str
    verified_version: str | None = None
    downtime_seconds: float | None = None
    next_command: str | None = None  # one command, run as printed (the reporter adds -n ...)
    other_commands: tuple[str, ...] = ()  # what else the user may run instead
