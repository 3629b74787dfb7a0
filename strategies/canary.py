"""canary: a second Deployment labelled ``track: canary`` behind the same Service.

The weight is the share of replicas, and the canary takes its pods from the stable side:
for a weight w of an app of N replicas, c = w x N canary pods and N - c stable ones, so
the app keeps running N pods (plus at most its maxSurge while pods move, each new pod
Ready before a stable one goes), and the Service's ``sessionAffinity: ClientIP`` keeps
each client on the version it first met. Only some shares are achievable with whole pods,
so the plan says which one it will really run (50 % of 3 replicas is 1 canary pod of 3,
i.e. 33 %). Promotion updates the stable side and gives it its pods back the same way.

When a HorizontalPodAutoscaler sizes the stable Deployment, the autoscaler owns its size:
stable keeps it and the canary runs beside it, c / (S + c) of new clients for S stable
pods, and when the autoscaler resizes stable during the run the engine sizes the canary
again for the same weight, at each step and between analysis rounds.
"""

from __future__ import annotations

import copy
from typing import Any

from deployer.errors import InvalidInput
from deployer.labels import (
    CANARY_TRACK,
    TRACK_KEY,
    kept_label_warnings,
    pod_labels,
    require_version_label,
    selects,
    side_labels,
    version_labels,
)
from deployer.model import (
    ApplyDeployment,
    AppState,
    AwaitRollout,
    DeleteDeployment,
    Gate,
    Plan,
    ScaleDeployment,
    SetServiceAffinity,
    SetServiceSelector,
    Step,
    Target,
    UndoRollout,
    UpdateDeployment,
    VerifyTraffic,
    labels_text,
)
from deployer.strategy import Options, change_cause, rolled_out, runs_image
from deployer.weights import bounded_split, clients_needed, pods_of, shift, split

DEFAULT_STEPS = (25, 50, 100)
CANARY_OF = "deployer.dev/canary-of"


def canary_name(app: str) -> str:
    return f"{app}-canary"


def canary_body(stable: dict[str, Any], name: str, container: str, image: str,
                replicas: int, version: str | None,
                track: str | None = CANARY_TRACK) -> dict[str, Any]:
    """A copy of ``stable`` for the new side: its pods labelled ``track`` (when given) and
    the new version, its selector derived the same way (see deployer.labels)."""
    spec = copy.deepcopy(stable["spec"])
    spec.pop("paused", None)
    spec["replicas"] = replicas
    match, labels = side_labels(stable, track, version)
    spec["selector"] = {"matchLabels": match}
    template = spec["template"]
    template["metadata"] = {"labels": labels,
                            "annotations": dict(template["metadata"].get("annotations") or {})}
    for c in template["spec"]["containers"]:
        if c["name"] == container:
            c["image"] = image
    meta_labels = dict(stable["metadata"].get("labels") or {})
    if track is not None:
        meta_labels["track"] = track
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": meta_labels,
                     "annotations": {CANARY_OF: stable["metadata"]["name"]}},
        "spec": spec,
    }


class CanaryStrategy:
    name = "canary"
    steps = (ApplyDeployment, AwaitRollout, VerifyTraffic, Gate, UpdateDeployment,
             ScaleDeployment, DeleteDeployment, SetServiceAffinity, SetServiceSelector,
             UndoRollout)

    def is_current(self, state: AppState, target: Target) -> bool:
        canary = state.others.get(canary_name(state.app.name))
        live = state.on_live_side().deployment
        return canary is None and runs_image(live, state.container,
                                             str(target.image)) and rolled_out(live)

    @staticmethod
    def budget(stable: dict[str, Any], replicas: int, max_surge: int | str | None
               ) -> tuple[int, int]:
        """(most pods at once, fewest Ready pods) while the canary takes pods from stable:
        its replicas plus maxSurge (--max-surge, else the Deployment's, else 25%), and its
        replicas minus its maxUnavailable (else 25%), as a rolling update of it would."""
        rolling = (stable["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        surge = pods_of(max_surge if max_surge is not None else rolling.get("maxSurge", "25%"),
                        replicas, round_up=True)
        unavailable = pods_of(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
        # one replica: its canary runs beside it (1 + 1)
        return replicas + max(surge, 1 if replicas < 2 else 0), max(1, replicas - unavailable)

    @staticmethod
    def moves(limit: int, floor: int, grow: tuple[int, int], shrink: tuple[int, int]
              ) -> list[tuple[str, int]]:
        try:
            return shift(limit, floor, grow, shrink)
        except ValueError as exc:
            raise InvalidInput(f"the canary cannot take pods from the stable side: {exc}",
                               id="invalid-surge",
                               hint="allow a surge (--max-surge 1) or set the Deployment's "
                                    "maxUnavailable above 0") from None

    def plan(self, state: AppState, target: Target, options: Options) -> Plan:
        app = state.app.name
        own = state.deployment_name
        state = state.on_live_side()  # after a blue-green: its live side is the stable one
        stable = state.deployment
        stable_name = state.deployment_name
        service = state.service
        if service is None:
            raise InvalidInput(f"a canary needs a Service named {app!r} in front of the app",
                               id="no-service")
        weights: tuple[int, ...] = tuple(options.get("steps") or DEFAULT_STEPS)
        analysed = [w for w in weights if w < 100]
        if not analysed:
            raise InvalidInput("a canary needs at least one step below 100%", id="invalid-steps",
                               hint="e.g. --steps 25,50,100 or --weight 25")
        name = canary_name(app)
        require_version_label(stable, target.expected_version, self.name)
        probe = canary_body(stable, name, state.container, str(target.image), 1,
                            target.expected_version)
        canary_labels = probe["spec"]["template"]["metadata"]["labels"]
        if stable["spec"]["selector"].get("matchExpressions"):
            raise InvalidInput(
                f"deployment {stable_name} selects its pods with matchExpressions; deployer "
                "derives a canary's selector from matchLabels only", id="overlapping-selector",
                hint="select the pods with matchLabels (e.g. app: hello)")
        if pod_labels(stable).get(TRACK_KEY) == CANARY_TRACK:
            raise InvalidInput(
                f"the pods of {stable_name} are labelled {TRACK_KEY}: {CANARY_TRACK}, the label "
                "that tells a canary's pods apart from the stable ones",
                id="overlapping-selector",
                hint=f"label the stable pods {TRACK_KEY}: stable (or leave {TRACK_KEY} out)")
        # A stable selector without a track label (app: hello only) matches the canary's
        # pods too: Kubernetes keeps them apart by owner, deployer by track!=canary.
        svc_selector = service["spec"].get("selector") or {}
        stable_labels = stable["spec"]["template"]["metadata"].get("labels") or {}
        if not svc_selector:
            raise InvalidInput(f"service {app} has no selector", id="empty-selector")
        widened = svc_selector
        if selects(svc_selector, stable_labels) and not selects(svc_selector, canary_labels):
            # Narrowed to one side (by a blue-green): routing to the canary too needs only
            # the keys both tracks share, if no other running pods carry them.
            widened = {k: v for k, v in svc_selector.items() if canary_labels.get(k) == v}
            blocking = [n for n, d in state.others.items() if n != name
                        and int(d["spec"].get("replicas") or 0)
                        and selects(widened, d["spec"]["template"]["metadata"].get("labels")
                                     or {})]
            if not widened or blocking:
                raise InvalidInput(
                    f"service {app} selects {labels_text(svc_selector)}, which does not route "
                    "to the canary's pods, and "
                    + (f"{', '.join(blocking)} also runs pods it would then route to" if widened
                       else "no label of it is shared by both"), id="service-selector",
                    hint=f"scale {', '.join(blocking)} to 0 first" if blocking else
                    "the Service should select on the app label only (e.g. app: hello)")
        if not (selects(widened, canary_labels) and selects(widened, stable_labels)):
            raise InvalidInput(
                f"service {app} selects {labels_text(svc_selector)}, which does not route to both "
                "the stable "
                "and the canary pods", id="service-selector",
                hint="the Service should select on the app label only (e.g. app: hello)")

        clients = int(options.get("clients") or 0)
        interval = float(options.get("interval") or 0.0)
        stable_n = state.replicas
        per_step = clients // len(analysed) if clients else 0
        steps: list[Step] = []
        about_stable = f"stable {stable_name}: {stable_n} pods of {state.image}"
        notes = [about_stable]  # said in full once the mode is known
        if stable_name != own:
            notes.insert(0, f"the Service routes to {stable_name} (the live side of a "
                            f"blue-green), not to {own}: {stable_name} is the stable side")
        warnings = list(kept_label_warnings(stable, target.expected_version))
        narrowed: tuple[Step, ...] = ()
        if widened != svc_selector:
            steps.append(SetServiceSelector(app, widened))
            narrowed = (SetServiceSelector(app, svc_selector),)
            notes.append(f"service {app} selects {labels_text(svc_selector)}: widened to "
                         f"{labels_text(widened)} for the run (only {stable_name}'s pods match "
                         "it now, so no traffic moves) and narrowed back afterwards")
        affinity = service["spec"].get("sessionAffinity") or "None"
        if affinity != "ClientIP":
            steps.append(SetServiceAffinity(app, "ClientIP"))
            notes.append(f"service {app} has sessionAffinity {affinity}: set to ClientIP for "
                         "the run and restored afterwards")
        autoscaler = (state.autoscalers or {}).get(stable_name)
        if state.autoscalers is None:
            notes.append("HorizontalPodAutoscalers could not be read (not allowed): the plan "
                         f"assumes none sizes {stable_name}")
        restore: tuple[Step, ...] = (
            (SetServiceAffinity(app, affinity),) if affinity != "ClientIP" else ())
        promote = [UpdateDeployment(stable_name, state.container, str(target.image),
                                    change_cause("canary promotion", target),
                                    labels=version_labels(stable, target.expected_version,
                                                          service)),
                   AwaitRollout(stable_name, target.expected_version)]
        undo: list[Step] = [UndoRollout(stable_name, state.revision,
                                        f"deployer canary of {target.image} rolled back")]

        def body(pods: int) -> dict[str, Any]:
            return canary_body(stable, name, state.container, str(target.image), pods,
                               target.expected_version)

        def verify(i: int, share: float, weight: int | None) -> VerifyTraffic:
            fresh = (i * per_step, (i + 1) * per_step) if clients else (0, 0)
            return VerifyTraffic(app, name, target.expected_version, stable_name,
                                 state.version, share, interval, fresh, weight=weight,
                                 analysis=options.get("analysis"))

        def check_reach(i: int, weight: int, pods: int, share: float) -> None:
            if abs(share - weight / 100) > max(0.05, weight / 200):
                warnings.append(f"step {i + 1}: {weight}% is out of reach with {stable_n} "
                                f"pods: it runs at {share:.0%} ({pods} canary pod"
                                f"{'s' if pods > 1 else ''})")
            if per_step and per_step < clients_needed(share):
                warnings.append(f"step {i + 1}: {per_step} clients cannot tell a {share:.0%} "
                                f"share from none (at least {clients_needed(share)} can): its "
                                "share check will say not measured")

        share = 0.0
        if autoscaler is not None:
            # The autoscaler owns the stable size: it stays, and the canary is sized beside it
            # for each weight (again whenever the autoscaler resizes stable).
            notes[notes.index(about_stable)] = (
                        f"{about_stable}, sized by "
                        f"the HorizontalPodAutoscaler {autoscaler}: it keeps its size and "
                        "the canary runs beside it, sized for each step's weight (again "
                        "whenever the autoscaler resizes it)")
            for i, weight in enumerate(analysed):
                pods, share = split(stable_n, weight)
                notes.append(f"step {i + 1}: {weight}% requested -> {pods} canary + "
                             f"{stable_n} stable pods = {share:.0%} of new clients")
                check_reach(i, weight, pods, share)
                steps += [ApplyDeployment(body(pods), weight=weight, ratio_of=stable_name),
                          AwaitRollout(name, target.expected_version),
                          verify(i, share, weight)]
            finish: list[Step] = []
        else:
            limit, floor = self.budget(stable, stable_n, options.get("max_surge"))
            notes[notes.index(about_stable)] = (
                        f"{about_stable}; the canary "
                        f"takes its pods from them, with at most {limit} pods at once and "
                        f"at least {floor} Ready")
            canary_n, stable_now = 0, stable_n
            for i, weight in enumerate(analysed):
                pods, left, share = bounded_split(stable_n, weight)
                notes.append(f"step {i + 1}: {weight}% requested -> {pods} canary + {left} "
                             f"stable pods = {share:.0%} of new clients")
                check_reach(i, weight, pods, share)
                for kind, n in self.moves(limit, floor, (canary_n, pods), (stable_now, left)):
                    if kind == "grow":
                        steps += [ApplyDeployment(body(n)),
                                  AwaitRollout(name, target.expected_version)]
                    else:
                        steps.append(ScaleDeployment(stable_name, n, service=app))
                canary_n, stable_now = pods, left
                steps.append(verify(i, share, None))
            finish = []
            for kind, n in self.moves(limit, floor, (stable_now, stable_n), (canary_n, 0)):
                if kind == "grow":
                    finish += [ScaleDeployment(stable_name, n),
                               AwaitRollout(stable_name, target.expected_version)]
                else:
                    finish.append(ScaleDeployment(name, n, service=app))
            # capacity first: stable back to its size and Ready before the canary goes
            undo.append(ScaleDeployment(stable_name, stable_n))
        if options.get("until_gate"):
            steps.append(Gate(f"canary at {share:.0%}"))
        steps += [
            *promote,
            *(finish or [ScaleDeployment(name, 0, missing_ok=True)]),
            DeleteDeployment(name, app),
            *narrowed,
            *restore,
        ]
        rollback: tuple[Step, ...] = (
            *undo,
            AwaitRollout(stable_name, state.version),
            ScaleDeployment(name, 0, missing_ok=True),
            DeleteDeployment(name, app),
            *narrowed,
            *restore,
        )
        minimum = interval * len(analysed)
        notes.append(f"minimum duration: {minimum:.0f}s of analysis plus rollout time")
        if options.get("analysis"):
            notes.append(f"the analysis runs at each of the {len(analysed)} steps, for "
                         f"{interval:.0f}s (longer while a metric's count asks for more "
                         "measurements); Failed or Error rolls back, Inconclusive stops at a "
                         "gate")
        return Plan(self.name, state.app, tuple(steps), rollback,
                    summary=f"canary of {target.image} "
                            + (f"beside {stable_n} pods of {state.image}" if autoscaler
                               else f"taking its pods from {stable_n} of {state.image}"),
                    notes=tuple(notes), warnings=tuple(warnings))
