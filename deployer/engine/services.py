"""Step handlers that change a Service, and the waits for its endpoints to follow."""

from __future__ import annotations

from typing import Any

from deployer.engine.context import StepContext, must_exist
from deployer.health.verifier import is_ready, selector_of
from deployer.model import Phase, SetServiceAffinity, SetServiceSelector
from deployer.rollout import rollout_status
from deployer.writes import conditional_write

K8sObject = dict[str, Any]
KUBE_PROXY_SYNC = 2.0
SWITCH_READY_BUDGET = 30.0  # seconds the side to switch to may take to be fully available
ENDPOINTS_BUDGET = 60.0  # seconds the endpoints may take to follow a new selector
STOP_BUDGET = 120.0  # seconds stopping pods may take (their grace period and preStop)


def read(ctx: StepContext, name: str) -> K8sObject:
    return must_exist(ctx.gateway.get_service(name), "service", name)


def patch(ctx: StepContext, name: str, spec: Any) -> bool:
    """``spec(service)`` gives the spec fields to merge-patch, or None when already so;
    the patch carries the resourceVersion it was computed from."""

    def change(svc: K8sObject) -> K8sObject | None:
        fields = spec(svc)
        if fields is None:
            return None
        return {"spec": fields, "metadata": {"resourceVersion":
                                             svc["metadata"]["resourceVersion"]}}

    def write(body: K8sObject) -> None:
        ctx.gateway.patch_service(name, {"spec": body["spec"]},
                                  resource_version=body["metadata"]["resourceVersion"])

    return conditional_write(lambda: read(ctx, name), write, change, f"service {name}")


def affinity(ctx: StepContext, step: SetServiceAffinity) -> str | None:
    def spec(svc: K8sObject) -> K8sObject | None:
        if (svc["spec"].get("sessionAffinity") or "None") == step.affinity:
            return None
        return {"sessionAffinity": step.affinity}

    return None if patch(ctx, step.service, spec) else "already set"


def selector(ctx: StepContext, step: SetServiceSelector) -> str | None:
    if step.require_ready:
        await_ready_to_switch(ctx, step, str(step.require_ready))
    if step.after_gone and (gone := ctx.gateway.get_deployment(step.after_gone)) is not None:
        await_pods_stopped(ctx, gone, ctx.clock() + STOP_BUDGET)

    def spec(svc: K8sObject) -> K8sObject | None:
        current = svc["spec"].get("selector") or {}
        if current == step.selector:
            return None
        fields: dict[str, Any] = {k: None for k in current if k not in step.selector}
        fields.update(step.selector)
        return {"selector": fields}

    if not patch(ctx, step.service, spec):
        return "already pointing there"
    return await_endpoints(ctx, step)


def await_ready_to_switch(ctx: StepContext, step: SetServiceSelector, name: str) -> None:
    """Never switch to a side that is not fully rolled out and available.

    The controller may not have observed the side's latest change yet (a scale-up just
    before the switch), so this waits a little for it; a side that is really not ready
    fails after the wait.
    """
    counts = {"available": 0, "desired": 0}

    def pending() -> str | None:
        dep = must_exist(ctx.gateway.get_deployment(name), "deployment", name)
        counts["desired"] = dep["spec"].get("replicas", 1)
        counts["available"] = (dep.get("status") or {}).get("availableReplicas", 0)
        if counts["desired"] and counts["available"] >= counts["desired"] and \
                rollout_status(dep).phase is Phase.SUCCESSFUL:
            return None
        return f"{name}: {counts['available']} of {counts['desired']} pods available"

    ctx.wait_until(pending, deadline=ctx.clock() + SWITCH_READY_BUDGET,
                   failure=lambda: f"refusing to switch service {step.service}: {name} has "
                                   f"{counts['available']} of {counts['desired']} pods "
                                   "available and rolled out")


def await_pods_stopped(ctx: StepContext, dep: K8sObject, deadline: float,
                       keep: int = 0) -> set[str]:
    """Wait until no more than ``keep`` pods of Deployment ``dep`` run (a terminating one
    has left every Service's endpoints already); returns the IPs of the pods that stopped
    (with ``keep`` 0: of every pod seen meanwhile)."""
    name = dep["metadata"]["name"]
    selector = selector_of(dep)
    addresses: set[str] = set()
    running: list[K8sObject] = []

    def pending() -> str | None:
        nonlocal running
        listed = ctx.gateway.list_pods(selector)
        running = [p for p in listed if not p["metadata"].get("deletionTimestamp")]
        addresses.update(ip for p in listed if (ip := (p.get("status") or {}).get("podIP"))
                         and (not keep or p not in running))
        return (f"{len(running)} pods of {name} still running" + (f" (of {keep})" if keep
                                                                   else "")
                if len(running) > keep else None)

    with ctx.gateway.changes(pod_selector=selector) as feed:
        ctx.wait_until(pending, deadline=deadline, interval=ctx.settings.poll_interval,
                       feed=feed, failure=lambda: f"{len(running)} pods of {name} did not stop")
    return addresses


def ready_addresses(pods: list[K8sObject]) -> set[str]:
    """The addresses of the Ready pods that are not stopping: what a Service should route
    to."""
    return {ip for p in pods if is_ready(p) and not p["metadata"].get("deletionTimestamp")
            and (ip := (p.get("status") or {}).get("podIP"))}


def await_endpoints(ctx: StepContext, step: SetServiceSelector) -> str | None:
    """Wait until the Service's endpoints are exactly the selected, Ready pods."""
    labels = ",".join(f"{k}={v}" for k, v in sorted(step.selector.items()))
    have: set[str] = set()

    def pending() -> str | None:
        nonlocal have
        wanted = ready_addresses(ctx.gateway.list_pods(labels))
        have = ctx.gateway.endpoint_addresses(step.service)
        if wanted and have == wanted:
            return None
        return f"service endpoints {len(have)}, selected Ready pods {len(wanted)}"

    with ctx.gateway.changes(service=step.service, pod_selector=labels) as feed:
        ctx.wait_until(pending, deadline=ctx.clock() + ENDPOINTS_BUDGET, feed=feed,
                       failure=lambda: f"service {step.service}'s endpoints did not follow "
                                       f"the new selector within {ENDPOINTS_BUDGET:.0f}s")
    let_kube_proxy_follow(ctx)
    return f"endpoints are the {len(have)} selected pods"


def endpoints_without(ctx: StepContext, service: str, addresses: set[str],
                      deadline: float) -> None:
    """Wait until none of ``addresses`` is an endpoint of ``service`` any more."""
    left: set[str] = set()

    def pending() -> str | None:
        nonlocal left
        left = ctx.gateway.endpoint_addresses(service) & addresses
        return f"{len(left)} terminating pods still endpoints of service {service}" \
            if left else None

    with ctx.gateway.changes(service=service) as feed:
        ctx.wait_until(pending, deadline=deadline, feed=feed,
                       failure=lambda: f"service {service} still sends traffic to "
                                       f"{', '.join(sorted(left))}")
    if addresses:
        let_kube_proxy_follow(ctx)


def endpoints_route_to(ctx: StepContext, service: str, dep: K8sObject,
                       deadline: float) -> float:
    """Wait until the Service's endpoints hold every Ready pod of Deployment ``dep`` (after
    a recreate it has none until then, and users are refused), then for kube-proxy.
    Returns the clock when the endpoints first held one of them: users are served again
    from about then (kube-proxy's sync comes on top, and cannot be seen)."""
    name, selector = dep["metadata"]["name"], selector_of(dep)
    first: float | None = None
    routed = wanted = 0

    def pending() -> str | None:
        nonlocal first, routed, wanted
        ready = ready_addresses(ctx.gateway.list_pods(selector))
        have = ctx.gateway.endpoint_addresses(service) & ready
        routed, wanted = len(have), len(ready)
        if have and first is None:
            first = ctx.clock()
        if have == ready and (ready or not int(dep["spec"].get("replicas") or 0)):
            return None  # (a Deployment scaled to 0 has no pod to route to)
        return f"service {service} routes to {routed} of the {wanted} Ready pods of {name}"

    with ctx.gateway.changes(service=service, pod_selector=selector) as feed:
        ctx.wait_until(pending, deadline=deadline, feed=feed,
                       failure=lambda: f"service {service} routes to {routed} of the {wanted} "
                                       f"Ready pods of {name} after "
                                       f"{ENDPOINTS_BUDGET:.0f}s")
    let_kube_proxy_follow(ctx)
    return first if first is not None else ctx.clock()


def let_kube_proxy_follow(ctx: StepContext) -> None:
    """kube-proxy applies an endpoints change about a second later (its iptables sync);
    that moment cannot be observed through the API, so it is waited for."""
    ctx.sleep(KUBE_PROXY_SYNC)
