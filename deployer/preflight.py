"""Before the first write: can this identity do everything the plan needs?

Each permission is asked with a SelfSubjectAccessReview (authorization.k8s.io/v1),
so a missing RBAC verb is reported by name up front (exit 69) instead of failing a
release halfway through, when undoing it may need the very permission that is missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from deployer.errors import InvalidInput, NotAuthorised
from deployer.model import (
    STEP_TYPES,
    ApplyDeployment,
    DeleteDeployment,
    Plan,
    SetServiceAffinity,
    SetServiceSelector,
    Step,
    labels_text,
)

if TYPE_CHECKING:
    from deployer.gateway import ClusterGateway


class Permission(NamedTuple):
    verb: str
    group: str
    resource: str
    subresource: str = ""

    def __str__(self) -> str:
        what = self.resource + (f"/{self.subresource}" if self.subresource else "")
        group = f".{self.group}" if self.group else ""
        return f"{self.verb} {what}{group}"


# Every run reads and watches its Deployment and pods, writes the Deployment (image,
# replicas), asks pods for /version through the API server, records its journal in the
# app's ConfigMap, and holds a Lease.
BASE = (
    Permission("get", "apps", "deployments"),
    Permission("list", "apps", "deployments"),
    Permission("watch", "apps", "deployments"),
    Permission("update", "apps", "deployments"),
    Permission("list", "apps", "replicasets"),
    Permission("list", "", "pods"),
    Permission("watch", "", "pods"),
    Permission("get", "", "pods", "proxy"),
    Permission("get", "", "services"),
    Permission("list", "", "events"),
    Permission("get", "", "configmaps"),
    Permission("create", "", "configmaps"),
    Permission("update", "", "configmaps"),
    Permission("get", "coordination.k8s.io", "leases"),
    Permission("create", "coordination.k8s.io", "leases"),
    Permission("update", "coordination.k8s.io", "leases"),
)


def required(steps: Iterable[type[Step]]) -> list[Permission]:
    """The permissions a run needs when its plan may contain these kinds of step."""
    kinds = set(steps)
    needed = list(BASE)
    if ApplyDeployment in kinds:
        needed.append(Permission("create", "apps", "deployments"))
    if DeleteDeployment in kinds:
        needed.append(Permission("delete", "apps", "deployments"))
    if kinds & {SetServiceAffinity, SetServiceSelector}:
        needed.append(Permission("patch", "", "services"))
    if SetServiceSelector in kinds:
        needed.append(Permission("get", "", "endpoints"))
    return needed


def step_kinds(plan: Plan | dict[str, Any] | None) -> set[type[Step]]:
    """The kinds of step in a plan (or in a plan as stored in the cluster)."""
    if plan is None:
        return set()
    if isinstance(plan, Plan):
        return {type(s) for s in (*plan.steps, *plan.rollback)}
    stored = [*plan.get("steps", []), *plan.get("rollback", [])]
    return {STEP_TYPES[s["type"]] for s in stored if s.get("type") in STEP_TYPES}


def check(gateway: ClusterGateway, steps: Iterable[type[Step]] = ()) -> None:
    missing = [p for p in required(steps)
               if not gateway.can_i(p.verb, p.group, p.resource, p.subresource)]
    if missing:
        names = ", ".join(str(p) for p in missing)
        raise NotAuthorised(
            f"this identity may not {names} in namespace {gateway.namespace!r}; nothing was "
            "changed", id="missing-permission",
            hint="grant them with a Role like manifests/rbac/role.yaml")


def check_plan(plan: Plan) -> None:
    """Refuse, before any write, a plan the API server would refuse half-way: a Deployment
    whose selector does not match its own pod labels (a ``version`` label in the selector,
    say) is rejected with 422 when created, after earlier steps have already run."""
    for step in (*plan.steps, *plan.rollback):
        if not isinstance(step, ApplyDeployment):
            continue
        spec = step.body.get("spec") or {}
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        wrong = {k: v for k, v in selector.items() if labels.get(k) != v}
        if wrong:
            name = step.body["metadata"]["name"]
            shown = labels_text(dict(sorted(wrong.items())))
            raise InvalidInput(
                f"{plan.strategy} would create {name} with the selector label {shown}, which "
                f"its new pods do not carry: the API server would refuse it", id="selector-labels",
                hint="a Deployment's selector must not hold labels that change between "
                     "versions (such as version); keep those in the pod template only")
