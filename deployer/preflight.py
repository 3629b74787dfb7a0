"""Before the first write: can this identity do everything the plan needs?

The identity's rules in the namespace are read with one SelfSubjectRulesReview and any
permission they do not show is asked with a SelfSubjectAccessReview (authorization.k8s.io/v1),
so a missing RBAC verb is reported by name up front (exit 69) instead of failing a
release halfway through, when undoing it may need the very permission that is missing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from deployer.errors import InvalidInput, NotAuthorised
from deployer.labels import pod_labels, selector_matches
from deployer.model import (
    STEP_TYPES,
    ApplyDeployment,
    DeleteDeployment,
    Plan,
    SetServiceAffinity,
    SetServiceSelector,
    Step,
    UpdateDeployment,
    labels_text,
)
from deployer.validation import quantity
from deployer.weights import pods_of

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


def granted(rules: Iterable[dict[str, Any]], permission: Permission) -> bool:
    """Whether one of these rules (a SelfSubjectRulesReview's resourceRules) grants the
    permission on every object of its kind, matched as RBAC matches them: ``*`` for any
    verb, group or resource, ``*/sub`` for a subresource of any resource; a rule limited to
    some resourceNames does not grant it on all."""
    resource = permission.resource + (f"/{permission.subresource}"
                                      if permission.subresource else "")
    for rule in rules:
        if rule.get("resourceNames"):
            continue
        if not {"*", permission.verb} & set(rule.get("verbs") or ()):
            continue
        if not {"*", permission.group} & set(rule.get("apiGroups") or ()):
            continue
        for name in rule.get("resources") or ():
            if name in ("*", resource) or (permission.subresource
                                          and name == f"*/{permission.subresource}"):
                return True
    return False


# A job metric (--analysis) runs a Job, reads its pods' logs and deletes it after.
JOB_PERMISSIONS = (
    Permission("create", "batch", "jobs"),
    Permission("get", "batch", "jobs"),
    Permission("delete", "batch", "jobs"),
    Permission("get", "", "pods", "log"),
)


def check(gateway: ClusterGateway, steps: Iterable[type[Step]] = (),
          extra: Iterable[Permission] = ()) -> None:
    """Every permission the run needs. One SelfSubjectRulesReview lists what the identity
    may do in the namespace; a permission its rules do not grant, or every one when the
    review says it is incomplete (an authorizer that cannot list rules, a webhook), is asked
    with an access review of its own, sent side by side. The 18 access reviews of a rolling
    update, one after the other, were a sixth of its time before the first write."""
    from concurrent.futures import ThreadPoolExecutor

    needed = [*required(steps), *extra]
    rules, incomplete = gateway.access_rules()
    unsure = needed if incomplete else [p for p in needed if not granted(rules, p)]
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="access-review") as pool:
        allowed = list(pool.map(
            lambda p: gateway.can_i(p.verb, p.group, p.resource, p.subresource), unsure))
    missing = [p for p, ok in zip(unsure, allowed, strict=True) if not ok]
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


# ------------------------------------------------------------------ owners

# What the GitOps controllers put on the objects they apply. Argo CD's label tracking
# (app.kubernetes.io/instance) is not among them: Helm sets that label too.
GITOPS_MARKS = (
    ("annotations", "argocd.argoproj.io/tracking-id", "Argo CD"),
    ("labels", "argocd.argoproj.io/instance", "Argo CD"),
    ("labels", "kustomize.toolkit.fluxcd.io/name", "Flux (a Kustomization)"),
    ("labels", "helm.toolkit.fluxcd.io/name", "Flux (a HelmRelease)"),
)


def gitops_owner(obj: dict[str, Any] | None) -> str | None:
    """Which GitOps controller applied the object, and by which mark; None if none did."""
    meta = (obj or {}).get("metadata") or {}
    for where, key, owner in GITOPS_MARKS:
        value = (meta.get(where) or {}).get(key)
        if value:
            return f"{owner} ({where[:-1]} {key}={value})"
    return None


def check_owners(objects: Iterable[tuple[str, dict[str, Any] | None]], *,
                 allowed: bool) -> str | None:
    """Refuse to change what a GitOps controller owns (``objects``: (kind, object)): it
    would revert deployer's changes at its next sync. With ``allowed`` (--allow-gitops)
    say so and go on."""
    for kind, obj in objects:
        owner = gitops_owner(obj)
        if owner is None:
            continue
        name = (obj or {}).get("metadata", {}).get("name")
        what = f"{kind} {name} is managed by {owner}"
        if allowed:
            return f"{what}: going on (--allow-gitops); its next sync may revert this release"
        raise InvalidInput(
            f"{what}, which would revert deployer's changes at its next sync; nothing was "
            "changed", id="gitops-managed",
            hint="release through the GitOps repository, pause the controller's sync for "
                 "this app, or pass --allow-gitops to go on anyway")
    return None


# ------------------------------------------------------------------ quota

def pod_resources(template: dict[str, Any]) -> dict[str, float]:
    """What one pod of a template counts against a quota: its containers' requests and
    limits summed (an init container counts when it asks for more: they run one by one)."""
    spec = template.get("spec") or {}
    out: dict[str, float] = {"pods": 1.0}
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            total = sum(quantity(((c.get("resources") or {}).get(kind) or {}).get(resource, 0))
                        for c in spec.get("containers") or [])
            init = max((quantity(((c.get("resources") or {}).get(kind) or {}).get(resource, 0))
                        for c in spec.get("initContainers") or []), default=0.0)
            out[f"{kind}.{resource}"] = max(total, init)
    out["cpu"], out["memory"] = out["requests.cpu"], out["requests.memory"]
    out["count/pods"] = 1.0
    return out


def _surge(deployment: dict[str, Any] | None, replicas: int,
           strategy: dict[str, Any] | None) -> int:
    """Pods a rolling update of ``deployment`` adds above its replicas (its maxSurge)."""
    chosen = strategy or ((deployment or {}).get("spec") or {}).get("strategy") or {}
    if chosen.get("type") == "Recreate":
        return 0
    surge = (chosen.get("rollingUpdate") or {}).get("maxSurge", "25%")
    if isinstance(surge, str) and surge.endswith("%"):
        return math.ceil(replicas * int(surge[:-1]) / 100)
    return int(surge)


def peak_extra_pods(plan: Plan, start: dict[str, int],
                    deployments: dict[str, dict[str, Any]]) -> int:
    """The most pods the plan runs at once beyond those running now: its Deployments'
    replicas after each step, plus a rolling update's maxSurge while it runs. (A quota
    also counts old pods until they are gone: they slow such a rollout, the verifier
    waits for them, but they do not block it.)"""
    now = dict(start)
    base = sum(start.values())
    peak = base
    for step in plan.steps:
        if isinstance(step, UpdateDeployment) and now.get(step.deployment, 0) > 0:
            peak = max(peak, sum(now.values()) + _surge(
                deployments.get(step.deployment), now[step.deployment], step.strategy))
        now = step.replicas_after(now)
        peak = max(peak, sum(now.values()))
    return peak - base


def check_quota(gateway: ClusterGateway, plan: Plan, start: dict[str, int],
                deployments: dict[str, dict[str, Any]], template: dict[str, Any]) -> str | None:
    """Refuse, before any write, a plan whose extra pods a ResourceQuota would block
    (blue-green needs a second full set): exit 2 with the numbers. Returns a note when
    the quotas could not be checked."""
    extra = peak_extra_pods(plan, start, deployments)
    if extra <= 0:
        return None
    if not gateway.can_i("list", "", "resourcequotas"):
        return "resource quotas not checked: this identity may not list resourcequotas"
    try:
        per_pod = pod_resources(template)
    except ValueError as exc:
        return f"resource quotas not checked: {exc}"
    problems, unchecked = [], []
    for quota in gateway.list_resource_quotas():
        name = quota["metadata"]["name"]
        spec, status = quota.get("spec") or {}, quota.get("status") or {}
        if spec.get("scopes") or spec.get("scopeSelector"):
            unchecked.append(f"{name} (scoped)")
            continue
        hard, used = status.get("hard") or spec.get("hard") or {}, status.get("used")
        if used is None:
            unchecked.append(f"{name} (usage not computed yet)")
            continue
        for resource, limit in sorted(hard.items()):
            if resource not in per_pod or not per_pod[resource]:
                continue
            need = extra * per_pod[resource]
            have = quantity(used.get(resource, 0))
            if have + need > quantity(limit):
                problems.append(f"resourcequota {name}: {resource} {used.get(resource, 0)} "
                                f"used of {limit}, and this run needs {_amount(need, resource)} "
                                "more")
    if problems:
        raise InvalidInput(
            f"{plan.strategy} would run up to {extra} more pod{'s' if extra != 1 else ''} "
            f"than now, which the namespace's quota refuses: {'; '.join(problems)}; nothing "
            "was changed", id="quota-exceeded",
            hint="raise the quota, free room in the namespace, or choose a plan that needs "
                 "fewer extra pods (rolling with a smaller --max-surge, or recreate)")
    if unchecked:
        return f"resource quotas not checked: {', '.join(unchecked)}"
    return None


def _amount(value: float, resource: str) -> str:
    if resource.endswith("memory"):
        return f"{value / 2 ** 20:g}Mi"
    if resource.endswith("cpu"):
        return f"{value * 1000:g}m"
    return f"{value:g}"


# ------------------------------------------------------------------ disruption budgets


def check_budgets(gateway: ClusterGateway, plan: Plan, start: dict[str, int],
                  deployments: dict[str, dict[str, Any]]) -> str | None:
    """Refuse, before any write, a plan that would leave fewer of the app's pods than a
    PodDisruptionBudget asks for: exit 2, naming the budget, the step and the numbers.

    Scaling a Deployment down does not go through evictions, so Kubernetes would not stop
    it; deployer counts, step by step, the pods of the Deployments the budget selects:
    after each step, and during an update the ones it stops (all of them for a recreate,
    maxUnavailable for a rolling update). The budget's percentages are of the app's size
    at the start, rounded up as the disruption controller rounds them. Returns a note when
    the budgets could not be checked."""
    try:
        budgets = gateway.list_disruption_budgets()
    except NotAuthorised:
        return ("disruption budgets not checked: this identity may not list "
                "poddisruptionbudgets")
    if not budgets:
        return None
    labels = {name: pod_labels(d) for name, d in deployments.items()}
    for step in plan.steps:
        if isinstance(step, ApplyDeployment):
            labels[step.name] = pod_labels(step.body)
    timeline = plan.replica_timeline(start)
    problems, unchecked = [], []
    for budget in budgets:
        name = budget["metadata"]["name"]
        spec = budget.get("spec") or {}
        selector = spec.get("selector") or {}
        if not (selector.get("matchLabels") or selector.get("matchExpressions")):
            unchecked.append(f"{name} (no selector)")
            continue
        matching = {n for n, have in labels.items() if selector_matches(selector, have)}
        expected = sum(start.get(n, 0) for n in matching)
        if not expected:
            continue
        if spec.get("minAvailable") is not None:
            required = pods_of(spec["minAvailable"], expected, round_up=True)
            rule = f"minAvailable {spec['minAvailable']}"
        elif spec.get("maxUnavailable") is not None:
            required = expected - pods_of(spec["maxUnavailable"], expected, round_up=True)
            rule = f"maxUnavailable {spec['maxUnavailable']}"
        else:
            continue
        now = dict(start)
        for i, (step, after) in enumerate(zip(plan.steps, timeline, strict=True)):
            left = sum(after.get(n, 0) for n in matching)
            if isinstance(step, UpdateDeployment) and step.deployment in matching:
                size = now.get(step.deployment, 0)
                chosen = step.strategy or (deployments.get(step.deployment) or {}).get(
                    "spec", {}).get("strategy") or {}
                stopped = size if chosen.get("type") == "Recreate" else pods_of(
                    (chosen.get("rollingUpdate") or {}).get("maxUnavailable", "25%"), size,
                    round_up=False)
                left = min(left, sum(now.get(n, 0) for n in matching) - stopped)
            if left < required:
                problems.append(f"poddisruptionbudget {name} ({rule}) keeps {required} of "
                                f"its {expected} pods available, and step {i + 1} "
                                f"({step.describe()}) leaves {max(left, 0)}")
                break
            now = after
    if problems:
        raise InvalidInput(
            f"{plan.strategy} would take the app below its disruption budget: "
            f"{'; '.join(problems)}; nothing was changed", id="disruption-budget",
            hint="choose a plan that keeps enough pods (rolling with --max-unavailable 0, "
                 "canary or blue-green), or relax the budget (kubectl edit pdb)")
    if unchecked:
        return f"disruption budgets not checked: {', '.join(unchecked)}"
    return None

