"""shadow: bring the new version up beside the app with no Service traffic, verify it
(rollout, pod failure reasons, /version of every pod), then remove it. The app itself is
never changed: a smoke test of an image on the cluster it is meant for.

A plugin imports only deployer's planning vocabulary (deployer.model, deployer.strategy,
deployer.errors): it plans, the engine runs the steps.
"""

from __future__ import annotations

import copy
from typing import Any

from deployer.errors import InvalidInput
from deployer.model import (
    ApplyDeployment,
    AppState,
    AwaitRollout,
    DeleteDeployment,
    Plan,
    ScaleDeployment,
    Step,
    Target,
)
from deployer.strategy import Options

SHADOW_OF = "deployer.dev/shadow-of"


def shadow_name(app: str) -> str:
    return f"{app}-shadow"


def shadow_body(app: AppState, image: str, replicas: int) -> dict[str, Any]:
    """A copy of the app's Deployment whose pods no Service of the app selects: its labels
    are replaced by ``shadow-of: APP`` (a Service selects by the app's labels)."""
    spec = copy.deepcopy(app.deployment["spec"])
    spec.pop("paused", None)
    labels = {"shadow-of": app.app.name}
    spec["replicas"] = replicas
    spec["selector"] = {"matchLabels": labels}
    spec["template"]["metadata"] = {"labels": labels}
    for c in spec["template"]["spec"]["containers"]:
        if c["name"] == app.container:
            c["image"] = image
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": shadow_name(app.app.name), "labels": labels,
                         "annotations": {SHADOW_OF: app.app.name}},
            "spec": spec}


class ShadowStrategy:
    name = "shadow"
    steps: tuple[type[Step], ...] = (ApplyDeployment, AwaitRollout, ScaleDeployment,
                                     DeleteDeployment)

    def is_current(self, state: AppState, target: Target) -> bool:
        return False  # a smoke test is worth running again

    def plan(self, state: AppState, target: Target, options: Options) -> Plan:
        try:
            replicas = int(options.get("replicas") or 1)
        except ValueError:
            raise InvalidInput(f"--set replicas={options.get('replicas')!r} is not a number",
                               id="invalid-setting") from None
        if not 1 <= replicas <= 10:
            raise InvalidInput("--set replicas must be 1 to 10", id="invalid-setting")
        name = shadow_name(state.app.name)
        steps: tuple[Step, ...] = (
            ApplyDeployment(shadow_body(state, str(target.image), replicas)),
            AwaitRollout(name, target.expected_version),
            ScaleDeployment(name, 0),
            DeleteDeployment(name),
        )
        rollback: tuple[Step, ...] = (ScaleDeployment(name, 0, missing_ok=True),
                                      DeleteDeployment(name))
        return Plan(self.name, state.app, steps, rollback,
                    summary=f"shadow of {target.image} beside {state.deployment_name} "
                            f"({replicas} pod{'s' if replicas > 1 else ''}, no traffic)",
                    notes=(f"{state.deployment_name} and its Service are not changed",),
                    done=f"{target.image} was verified beside {state.deployment_name} and "
                         f"removed; {state.deployment_name} is as it was")
