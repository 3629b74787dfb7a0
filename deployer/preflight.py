"""Before the first write: can this identity do everything the plan needs?

Each permission is asked with a SelfSubjectAccessReview (authorization.k8s.io/v1),
so a missing RBAC verb is reported by name up front (exit 69) instead of failing a
release halfway through, when undoing it may need the very permission that is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from deployer.errors import NotAuthorised
from deployer.model import (
    ApplyDeployment,
    DeleteDeployment,
    Plan,
    SetServiceAffinity,
    SetServiceSelector,
)

if TYPE_CHECKING:
    from deployer.cluster import Gateway


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
# replicas, run journal), asks pods for /version through the API server, and holds a Lease.
BASE = (
    Permission("get", "apps", "deployments"),
    Permission("list", "apps", "deployments"),
    Permission("watch", "apps", "deployments"),
    Permission("update", "apps", "deployments"),
    Permission("patch", "apps", "deployments"),
    Permission("list", "apps", "replicasets"),
    Permission("list", "", "pods"),
    Permission("watch", "", "pods"),
    Permission("get", "", "pods", "proxy"),
    Permission("get", "", "services"),
    Permission("list", "", "events"),
    Permission("get", "coordination.k8s.io", "leases"),
    Permission("create", "coordination.k8s.io", "leases"),
    Permission("update", "coordination.k8s.io", "leases"),
)


def required(plan: Plan | None) -> list[Permission]:
    needed = list(BASE)
    steps = [*plan.steps, *plan.rollback] if plan else []
    if any(isinstance(s, ApplyDeployment) for s in steps):
        needed.append(Permission("create", "apps", "deployments"))
    if any(isinstance(s, DeleteDeployment) for s in steps):
        needed.append(Permission("delete", "apps", "deployments"))
    if any(isinstance(s, SetServiceAffinity | SetServiceSelector) for s in steps):
        needed.append(Permission("patch", "", "services"))
    if any(isinstance(s, SetServiceSelector) for s in steps):
        needed.append(Permission("get", "", "endpoints"))
    return needed


def check(gateway: Gateway, plan: Plan | None = None) -> None:
    missing = [p for p in required(plan)
               if not gateway.can_i(p.verb, p.group, p.resource, p.subresource)]
    if missing:
        names = ", ".join(str(p) for p in missing)
        raise NotAuthorised(
            f"this identity may not {names} in namespace {gateway.namespace!r}; nothing was "
            "changed", id="missing-permission",
            hint="grant them with a Role like manifests/rbac/role.yaml")
