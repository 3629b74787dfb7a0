"""rolling: the Deployment's native rolling update, watched and verified, undone on failure."""

from __future__ import annotations

from deployer.model import (
    AppState,
    AwaitRollout,
    Plan,
    Step,
    Target,
    UndoRollout,
    UpdateDeployment,
)
from deployer.strategy import Options, change_cause, rolled_out, runs_image


class RollingStrategy:
    name = "rolling"
    steps: tuple[type[Step], ...] = (UpdateDeployment, AwaitRollout, UndoRollout)

    def is_current(self, state: AppState, target: Target) -> bool:
        return runs_image(state.deployment, state.container, str(target.image)) and \
            rolled_out(state.deployment)

    def plan(self, state: AppState, target: Target, options: Options) -> Plan:
        dep = state.deployment_name
        strategy = None
        surge, unavailable = options.get("max_surge"), options.get("max_unavailable")
        current = state.rollout_strategy
        if surge is not None or unavailable is not None or current.get("type") == "Recreate":
            rolling = dict(current.get("rollingUpdate") or {})
            if surge is not None:
                rolling["maxSurge"] = surge
            if unavailable is not None:
                rolling["maxUnavailable"] = unavailable
            strategy = {"type": "RollingUpdate", "rollingUpdate": rolling or None}
        steps = (
            UpdateDeployment(dep, state.container, str(target.image),
                             change_cause("rolling update", target), strategy),
            AwaitRollout(dep, target.expected_version),
        )
        rollback = (
            UndoRollout(dep, state.revision,
                        f"deployer rolled back {target.image}: release rejected"),
            AwaitRollout(dep, state.version),
        )
        return Plan(self.name, state.app, steps, rollback,
                    summary=f"rolling update of {dep} from {state.image} to {target.image} "
                            f"({state.replicas} replicas)")
