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
from deployer.model import (
    ApplyDeployment,
    AppState,
    AwaitRollout,
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
               version: str | None) -> dict[str, Any]:
    body = canary_body(blue, green_name(blue["metadata"]["name"]), container, image, replicas,
                       version)
    body["spec"]["selector"]["matchLabels"]["track"] = GREEN_TRACK
    body["spec"]["template"]["metadata"]["labels"]["track"] = GREEN_TRACK
    body["metadata"]["labels"]["track"] = GREEN_TRACK
    body["metadata"]["annotations"] = {SIDE_OF: blue["metadata"]["name"]}
    return body


def _match(dep: dict[str, Any]) -> dict[str, str]:
    return dict(dep["spec"]["selector"].get("matchLabels") or {})


def _image(dep: dict[str, Any], container: str) -> str:
    return next(c["image"] for c in dep["spec"]["template"]["spec"]["containers"]
                if c["name"] == container)


class BlueGreenStrategy:
    name = "blue-green"
    steps = (SetServiceSelector, ApplyDeployment, UpdateDeployment, ScaleDeployment,
             AwaitRollout, Gate, VerifyTraffic, KeepOld)

    def is_current(self, state: AppState, target: Target) -> bool:
        live = self.sides(state)[0]
        return runs_image(live, state.container, str(target.image)) and rolled_out(live)

    def sides(self, state: AppState) -> tuple[dict[str, Any], dict[str, str],
                                              dict[str, Any] | None, dict[str, str]]:
        """(live Deployment, its selector, new-side Deployment or None, its selector)."""
        app = state.app.name
        blue = state.deployment
        if state.service is None:
            raise InvalidInput(f"blue-green needs a Service named {app!r} in front of the app",
                               id="no-service")
        blue_match = _match(blue)
        if blue_match.get("track") in (None, GREEN_TRACK) or blue["spec"]["selector"].get(
                "matchExpressions"):
            raise InvalidInput(
                f"deployment {app} must select its pods with a track label other than "
                f"'{GREEN_TRACK}' (it selects {labels_text(blue_match)})",
                id="overlapping-selector",
                hint="e.g. matchLabels {app: hello, track: stable}, so the green side's pods "
                     "(track: green) are not also the blue side's")
        green = state.others.get(green_name(app))
        green_match = {**blue_match, "track": GREEN_TRACK}
        selector = state.service["spec"].get("selector") or {}
        if not selector:
            raise InvalidInput(f"service {app} has no selector", id="empty-selector")
        if selector == green_match:
            if green is None:
                raise InvalidInput(f"service {app} points at {green_name(app)}, which does not "
                                   "exist", id="unsafe-selector")
            return green, green_match, blue, blue_match
        if selector == blue_match:
            return blue, blue_match, green, green_match
        if selector == {k: v for k, v in blue_match.items() if k != "track"}:
            # Not narrowed to a side (the first blue-green, or widened by a canary): the
            # live side is the one running pods.
            if green is not None and int(green["spec"].get("replicas") or 0):
                if int(blue["spec"].get("replicas") or 0):
                    raise InvalidInput(
                        f"service {app} selects {labels_text(selector)}, and both {app} and "
                        f"{green_name(app)} run pods: it routes to both sides",
                        id="service-selector",
                        hint=f"scale the side that should not serve to 0, or point the "
                             f"Service at one side ({labels_text(blue_match)} or "
                             f"{labels_text(green_match)})")
                return green, green_match, blue, blue_match
            return blue, blue_match, green, green_match
        raise InvalidInput(f"service {app} selects {labels_text(selector)}, which is neither "
                           f"side ({labels_text(blue_match)} or {labels_text(green_match)})",
                           id="service-selector")

    def plan(self, state: AppState, target: Target, options: Options) -> Plan:
        app = state.app.name
        live, live_match, _, new_match = self.sides(state)
        selector = (state.service or {}).get("spec", {}).get("selector") or {}
        blue = state.deployment
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
        if new_name == app:
            steps += [UpdateDeployment(app, state.container, str(target.image),
                                       change_cause("blue-green", target)),
                      ScaleDeployment(app, first)]
        else:
            steps.append(ApplyDeployment(green_body(blue, state.container, str(target.image),
                                                    first, target.expected_version)))
        steps.append(AwaitRollout(new_name, target.expected_version))
        if first < size:
            steps += [ScaleDeployment(new_name, size), AwaitRollout(new_name,
                                                                    target.expected_version)]
        if options.get("until_gate"):
            steps.append(Gate(f"{new_name} verified, not yet receiving traffic"))
        steps += [
            SetServiceSelector(app, new_match, require_ready=new_name),
            VerifyTraffic(app, new_name, target.expected_version, None, old_version, 1.0),
        ]
        keep = float(options.get("keep_old") if options.get("keep_old") is not None
                     else DEFAULT_KEEP_OLD)
        watched = keep <= FOREGROUND_WINDOW
        if keep > 0:
            steps.append(KeepOld(app, new_name, target.expected_version, live_name,
                                 old_version, keep, watch=watched))
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
