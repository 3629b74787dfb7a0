"""blue-green: two Deployments; the Service's selector is switched to the new side in one
write, only after that side is verified, and switched back on rollback.

The sides are the app's own Deployment (``APP``, the blue side, whose pods carry its
selector labels, e.g. ``track: stable``) and ``APP-green`` (the same pods labelled
``track: green``). Which side is live is read from the Service's selector every time,
never remembered, so a re-run after any interruption starts from the truth. The first
run narrows a Service that selects every pod of the app (``app: hello``) to the blue
side; that changes no traffic, since only blue pods exist then.
"""

from __future__ import annotations

from typing import Any

from deployer.errors import InvalidInput
from deployer.labels import (
    match_labels,
    pod_labels,
    require_version_label,
    selects,
    version_labels,
    versioned_selector,
)
from deployer.model import (
    Analyse,
    ApplyDeployment,
    AppState,
    AwaitRollout,
    DeleteDeployment,
    Gate,
    KeepOld,
    Plan,
    ScaleDeployment,
    SetServiceSelector,
    Step,
    Target,
    UpdateDeployment,
    VerifyTraffic,
    labels_text,
)
from deployer.strategy import Options, change_cause, rolled_out, runs_image
from strategies.canary import canary_body

GREEN_TRACK = "green"
DEFAULT_KEEP_OLD = 30.0  # seconds the old side stays up after the switch (--keep-old)
# Windows up to this long are waited for, watching the new side; a longer one must not
# hold a CI job: the run ends after the switch and records when the window ends.
FOREGROUND_WINDOW = 60.0
SIDE_OF = "deployer.dev/blue-green-of"


def green_name(app: str) -> str:
    return f"{app}-green"


def green_body(blue: dict[str, Any], container: str, image: str, replicas: int,
               version: str | None, track: str | None = GREEN_TRACK) -> dict[str, Any]:
    body = canary_body(blue, green_name(blue["metadata"]["name"]), container, image, replicas,
                       version, track=track)
    body["metadata"]["annotations"] = {SIDE_OF: blue["metadata"]["name"]}
    return body


def own_body(blue: dict[str, Any], container: str, image: str, replicas: int,
             version: str) -> dict[str, Any]:
    """The app's own Deployment made again for a new version, where its selector holds the
    version label (a selector cannot change): its metadata kept, its selector and pod
    labels on the new version."""
    body = canary_body(blue, blue["metadata"]["name"], container, image, replicas, version,
                       track=None)
    body["metadata"]["annotations"] = {
        k: v for k, v in (blue["metadata"].get("annotations") or {}).items()
        if not k.startswith("deployment.kubernetes.io/")}
    return body


def _image(dep: dict[str, Any], container: str) -> str:
    return next(c["image"] for c in dep["spec"]["template"]["spec"]["containers"]
                if c["name"] == container)


def route_to(selector: dict[str, str], side: dict[str, str], other: dict[str, str],
             side_match: dict[str, str]) -> dict[str, str]:
    """The Service selector that routes to one side only, in the Service's own terms: its
    keys with the side's values (app=hello,version=2.0.0 for the lesson's scheme), else
    those narrowed by the labels that tell the side's selector apart (track=green)."""
    swapped = {k: side[k] for k in selector if k in side}
    if len(swapped) == len(selector) and not selects(swapped, other):
        return swapped
    return {**selector, **{k: v for k, v in side_match.items() if other.get(k) != v}}


class BlueGreenStrategy:
    name = "blue-green"
    steps = (SetServiceSelector, ApplyDeployment, UpdateDeployment, ScaleDeployment,
             AwaitRollout, Gate, VerifyTraffic, KeepOld, Analyse)

    def is_current(self, state: AppState, target: Target) -> bool:
        live = self.sides(state, target.expected_version)[0]
        return runs_image(live, state.container, str(target.image)) and rolled_out(live)

    def sides(self, state: AppState, version: str | None = None) -> tuple[
            dict[str, Any], dict[str, str], dict[str, Any] | None, dict[str, str]]:
        """(live Deployment, the Service selector that routes to it alone, the new side's
        Deployment or None, the selector the switch writes)."""
        app = state.app.name
        blue = state.deployment
        if state.service is None:
            raise InvalidInput(f"blue-green needs a Service named {app!r} in front of the app",
                               id="no-service")
        green = state.others.get(green_name(app))
        blue_match = match_labels(blue)
        versioned = versioned_selector(blue) or (green and versioned_selector(green))
        if blue["spec"]["selector"].get("matchExpressions") or not versioned and (
                blue_match.get("track") in (None, GREEN_TRACK)):
            raise InvalidInput(
                f"deployment {app} must select its pods with a track label other than "
                f"'{GREEN_TRACK}' or with a version label (it selects "
                f"{labels_text(blue_match)})", id="overlapping-selector",
                hint="e.g. matchLabels {app: hello, track: stable}, so the green side's pods "
                     "(track: green) are not also the blue side's")
        selector = state.service["spec"].get("selector") or {}
        if not selector:
            raise InvalidInput(f"service {app} has no selector", id="empty-selector")
        track = None if versioned else GREEN_TRACK
        blue_labels = pod_labels(blue)
        # The green side as it is, or as this run would first create it.
        green_shape = green if green is not None else green_body(
            blue, state.container, "", 0, version or state.version, track)
        green_labels = pod_labels(green_shape)
        on_blue, on_green = selects(selector, blue_labels), selects(selector, green_labels)
        if on_green and green is None and not on_blue:
            raise InvalidInput(f"service {app} points at {green_name(app)}, which does not "
                               "exist", id="unsafe-selector")
        if on_blue and on_green and green is not None:
            # Not narrowed to a side (the first blue-green, or widened by a canary): the
            # live side is the one running pods.
            running = [int(d["spec"].get("replicas") or 0) > 0 for d in (blue, green)]
            if all(running):
                raise InvalidInput(
                    f"service {app} selects {labels_text(selector)}, and both {app} and "
                    f"{green_name(app)} run pods: it routes to both sides",
                    id="service-selector",
                    hint=f"scale the side that should not serve to 0, or point the "
                         f"Service at one side ({labels_text(match_labels(blue))} or "
                         f"{labels_text(match_labels(green))})")
            on_blue = not running[1]
        elif not on_blue and not on_green:
            raise InvalidInput(
                f"service {app} selects {labels_text(selector)}, which is neither side "
                f"({labels_text(match_labels(blue))} or "
                f"{labels_text(match_labels(green_shape))})", id="service-selector")
        live, live_labels, new, new_labels = (
            (blue, blue_labels, green, green_labels) if on_blue
            else (green_shape, green_labels, blue, blue_labels))
        if versioned and version is not None:
            key = versioned or "version"
            new_labels = {**new_labels, key: version}
        live_route = route_to(selector, live_labels, new_labels, match_labels(live))
        new_match = {**match_labels(live), **{k: v for k, v in new_labels.items()
                                               if k in match_labels(live)}}
        new_route = route_to(live_route, new_labels, live_labels, new_match)
        if selects(new_route, live_labels) or selects(live_route, new_labels):
            if versioned:
                require_version_label(live, version, self.name)  # says why, with the fix
            raise InvalidInput(
                f"the pods of {app} and {green_name(app)} would carry the same labels "
                f"({labels_text(live_labels)}): no Service selector tells them apart",
                id="service-selector",
                hint="select the pods by a track or version label as well")
        return live, live_route, new, new_route

    def plan(self, state: AppState, target: Target, options: Options) -> Plan:
        app = state.app.name
        blue = state.deployment
        version = target.expected_version
        green = state.others.get(green_name(app))
        versioned = versioned_selector(blue) or (green and versioned_selector(green))
        if versioned and version is None:
            require_version_label(blue, version, self.name)
        live, live_match, new, new_match = self.sides(state, version)
        require_version_label(live, version, self.name)
        selector = (state.service or {}).get("spec", {}).get("selector") or {}
        live_name = live["metadata"]["name"]
        old_version = state.versions.get(live_name)
        new_name = green_name(app) if live is blue else app
        size = int(live["spec"].get("replicas") or state.replicas)
        preview = options.get("preview_replicas")
        first = min(int(preview), size) if preview else size
        steps: list[Step] = []
        notes = [f"live side: {live_name} ({size} pods of {_image(live, state.container)}); "
                 f"new side: {new_name}"]
        if selector != live_match:
            steps.append(SetServiceSelector(app, live_match, require_ready=live_name))
            notes.append(f"service {app} selects {labels_text(selector)}: first narrowed to "
                         f"the live side {labels_text(live_match)} (no traffic moves)")
        track = None if versioned else GREEN_TRACK
        if new_name == app and not versioned:
            steps += [UpdateDeployment(app, state.container, str(target.image),
                                       change_cause("blue-green", target),
                                       labels=version_labels(blue, version)),
                      ScaleDeployment(app, first)]
        else:
            body = (own_body(blue, state.container, str(target.image), first, str(version))
                    if new_name == app else
                    green_body(blue, state.container, str(target.image), first, version,
                               track))
            if new is not None and match_labels(new) != match_labels(body):
                # The version is in the selector, which cannot change: the idle side
                # (no pods) is made again for the new version.
                steps.append(DeleteDeployment(new_name))
                notes.append(f"{new_name} selects {labels_text(match_labels(new))} and a "
                             f"selector cannot change: it has no pods and is made again "
                             f"with {labels_text(match_labels(body))} (its revision history "
                             "goes with it)")
            steps.append(ApplyDeployment(body))
        steps.append(AwaitRollout(new_name, target.expected_version))
        if first < size:
            steps += [ScaleDeployment(new_name, size), AwaitRollout(new_name,
                                                                    target.expected_version)]
        analysis = options.get("analysis")
        interval = float(options.get("interval") or 0.0)
        if analysis:
            steps.append(Analyse(app, new_name, version, live_name, old_version, analysis,
                                 interval, "pre-promotion"))
        if options.get("until_gate"):
            steps.append(Gate(f"{new_name} verified, not yet receiving traffic"))
        steps += [
            SetServiceSelector(app, new_match, require_ready=new_name),
            VerifyTraffic(app, new_name, target.expected_version, None, old_version, 1.0),
        ]
        keep = float(options.get("keep_old") if options.get("keep_old") is not None
                     else DEFAULT_KEEP_OLD)
        # A post-promotion analysis is run in the window, however long: the run waits.
        watched = keep <= FOREGROUND_WINDOW or bool(analysis)
        if keep > 0:
            steps.append(KeepOld(app, new_name, target.expected_version, live_name,
                                 old_version, keep, watch=watched, analysis=analysis))
        if analysis:
            notes.append(f"the analysis runs on {new_name} before the switch (pre-promotion, "
                         f"{interval:.0f}s)" + (
                             f" and after it while {live_name} stays up (post-promotion, "
                             f"{keep:.0f}s; a failure switches back at once)" if keep else
                             "; with --keep-old 0s there is no post-promotion analysis")
                         + "; Failed or Error rolls back, Inconclusive stops at a gate")
        if watched:
            steps.append(ScaleDeployment(live_name, 0))
        # A run that narrowed the Service and then fails puts it back once the new side's
        # pods have stopped (they would match the wider selector).
        widen_back: tuple[Step, ...] = (
            (SetServiceSelector(app, selector, after_gone=new_name),)
            if selector != live_match else ())
        rollback: tuple[Step, ...] = (
            ScaleDeployment(live_name, size),
            AwaitRollout(live_name, old_version),
            SetServiceSelector(app, live_match, require_ready=live_name),
            ScaleDeployment(new_name, 0, missing_ok=True),
            *widen_back,
        )
        if not keep:
            window = "is scaled to 0 at once"
        elif watched:
            window = (f"stays up {keep:.0f}s while {new_name} is watched (a failure switches "
                      "back at once), then is scaled to 0")
        else:
            window = (f"stays up {keep:.0f}s after the run ends (longer than the "
                      f"{FOREGROUND_WINDOW:.0f}s a run waits for); `deployer rollback` in "
                      "that window switches back at once, `deployer promote` ends it, and "
                      "the next deploy, promote or abort of the app after it scales the old "
                      "side down")
        notes.append(f"the switch happens only after {new_name} is verified; the old side "
                     f"{window}")
        return Plan(self.name, state.app, tuple(steps), rollback,
                    summary=f"blue-green from {live_name} to {new_name} ({target.image})",
                    notes=tuple(notes))
