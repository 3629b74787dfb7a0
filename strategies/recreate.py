"""recreate: stop every old pod, then start the new version; downtime is measured."""

from __future__ import annotations

from deployer.labels import kept_label_warnings, selects, version_labels
from deployer.model import (
    AppState,
    AwaitRollout,
    Plan,
    SetRolloutStrategy,
    Step,
    Target,
    UndoRollout,
    UpdateDeployment,
)
from deployer.strategy import Options, change_cause
from strategies.rolling import RollingStrategy, live_side_notes

RECREATE = {"type": "Recreate", "rollingUpdate": None}


class RecreateStrategy(RollingStrategy):
    name = "recreate"
    steps = (UpdateDeployment, AwaitRollout, UndoRollout, SetRolloutStrategy)

    def plan(self, state: AppState, target: Target, options: Options) -> Plan:
        own = state.deployment_name
        state = state.on_live_side()  # after a blue-green: the side users get now
        dep = state.deployment_name
        original = state.rollout_strategy
        switch = original.get("type") != "Recreate"
        restore: tuple[Step, ...] = (
            (SetRolloutStrategy(dep, original),) if switch else ()
        )
        # Users reach the app again only when the Service routes to a new pod: the wait
        # ends there, when the Service selects the Deployment's pods at all.
        selector = ((state.service or {}).get("spec") or {}).get("selector") or {}
        template = state.deployment["spec"]["template"]["metadata"].get("labels") or {}
        service = state.service["metadata"]["name"] \
            if state.service is not None and selector and selects(selector, template) else None
        steps: tuple[Step, ...] = (
            UpdateDeployment(dep, state.container, str(target.image),
                             change_cause("recreate", target), RECREATE if switch else None,
                             labels=version_labels(state.deployment, target.expected_version,
                                                   state.service)),
            AwaitRollout(dep, target.expected_version, measure_downtime=True, service=service),
            *restore,
        )
        # The user's own strategy first: under Recreate the old version's pods would wait
        # until every pod of the rejected one is gone, and a pod stuck pulling an image
        # lingers for its whole termination grace period (on the lab's kubelet, 28 s for
        # the demo app's 15 s); rolling, they start at once beside pods that serve nothing.
        rollback: tuple[Step, ...] = (
            *restore,
            UndoRollout(dep, state.revision,
                        f"deployer rolled back {target.image}: release rejected"),
            AwaitRollout(dep, state.version, measure_downtime=True, service=service),
        )
        return Plan(self.name, state.app, steps, rollback,
                    summary=f"recreate {dep}: stop {state.replicas} pods of {state.image}, "
                            f"then start {target.image}", notes=live_side_notes(own, dep),
                    warnings=kept_label_warnings(state.deployment, target.expected_version))
