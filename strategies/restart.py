"""restart: every pod of the app replaced by a rolling update of the same spec (as
``kubectl rollout restart``), watched and verified like a release (rollout status, pod
failure reasons, every new pod answering the version the app answers now), and undone on
failure (the Deployment back to the revision it had)."""

from __future__ import annotations

from deployer.errors import InvalidInput
from deployer.model import (
    AppState,
    AwaitRollout,
    Plan,
    RestartDeployment,
    Step,
    Target,
    UndoRollout,
)
from deployer.strategy import Options, change_cause
from strategies.rolling import live_side_notes


class RestartStrategy:
    name = "restart"
    steps: tuple[type[Step], ...] = (RestartDeployment, AwaitRollout, UndoRollout)

    def is_current(self, state: AppState, target: Target) -> bool:
        return False  # a restart is asked for its own sake

    def plan(self, state: AppState, target: Target, options: Options) -> Plan:
        at = options.get("restarted_at")
        if not at:
            raise InvalidInput("a restart needs the time it is asked at (restarted_at)",
                               id="invalid-setting", hint="deployer restart --app APP sets it")
        own = state.deployment_name
        state = state.on_live_side()  # after a blue-green: the side users get now
        dep = state.deployment_name
        steps: tuple[Step, ...] = (
            RestartDeployment(dep, str(at), change_cause("restart", target)),
            AwaitRollout(dep, target.expected_version),
        )
        rollback: tuple[Step, ...] = (
            UndoRollout(dep, state.revision, "deployer restart rolled back: pods unhealthy"),
            AwaitRollout(dep, state.version),
        )
        return Plan(self.name, state.app, steps, rollback,
                    summary=f"restart of {dep}'s {state.replicas} pods of {state.image}",
                    notes=live_side_notes(own, dep),
                    done=f"every pod of {dep} was restarted and verified")
