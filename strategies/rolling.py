"""rolling: the Deployment's native rolling update, watched and verified, undone on failure."""

from __future__ import annotations

from deployer.labels import kept_label_warnings, version_labels
from deployer.model import (
    Analyse,
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
    steps: tuple[type[Step], ...] = (UpdateDeployment, AwaitRollout, UndoRollout, Analyse)

    def is_current(self, state: AppState, target: Target) -> bool:
        live = state.on_live_side().deployment
        return runs_image(live, state.container, str(target.image)) and rolled_out(live)

    def plan(self, state: AppState, target: Target, options: Options) -> Plan:
        own = state.deployment_name
        state = state.on_live_side()  # after a blue-green: the side users get now
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
        steps: tuple[Step, ...] = (
            UpdateDeployment(dep, state.container, str(target.image),
                             change_cause("rolling update", target), strategy,
                             labels=version_labels(state.deployment, target.expected_version,
                                                   state.service)),
            AwaitRollout(dep, target.expected_version),
        )
        notes = live_side_notes(own, dep)
        analysis = options.get("analysis")
        if analysis:
            interval = float(options.get("interval") or 0.0)
            steps += (Analyse(state.app.name, dep, target.expected_version, None,
                              state.version, analysis, interval, "after the rollout"),)
            notes += (f"once every new pod is Ready, the analysis runs for {interval:.0f}s "
                      "before the run is declared done; Failed or Error undoes the rollout, "
                      "Inconclusive stops at a gate",)
        rollback = (
            UndoRollout(dep, state.revision,
                        f"deployer rolled back {target.image}: release rejected"),
            AwaitRollout(dep, state.version),
        )
        return Plan(self.name, state.app, steps, rollback,
                    summary=f"rolling update of {dep} from {state.image} to {target.image} "
                            f"({state.replicas} replicas)", notes=notes,
                    warnings=kept_label_warnings(state.deployment, target.expected_version))


def live_side_notes(own: str, live: str) -> tuple[str, ...]:
    """Say so when the Deployment a plan changes is not the app's own."""
    if own == live:
        return ()
    return (f"the Service routes to {live} (the live side of a blue-green), not to {own}: "
            f"{live} is the Deployment this run changes",)
