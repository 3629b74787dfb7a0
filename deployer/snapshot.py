"""Reading an app's current state from the cluster into an :class:`AppState`."""

from __future__ import annotations

import difflib
from collections import Counter
from typing import TYPE_CHECKING, Any

from deployer.errors import AppNotFound, InvalidInput, NotAuthorised, UnsafeState
from deployer.health.http import VersionProbe
from deployer.health.verifier import container_port, is_ready, new_replicaset, selector_of
from deployer.model import (
    CHANGE_CAUSE_ANNOTATION,
    REVISION_ANNOTATION,
    AppRef,
    AppState,
    Revision,
)
from deployer.validation import ImageRef, parse_reference

if TYPE_CHECKING:
    from deployer.gateway import ClusterGateway


def pick_container(deployment: dict[str, Any], wanted: str | None) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"].get("containers") or []
    name = deployment["metadata"]["name"]
    if wanted:
        for c in containers:
            if c["name"] == wanted:
                return dict(c)
        names = ", ".join(c["name"] for c in containers)
        raise InvalidInput(f"deployment {name} has no container {wanted!r} (it has: {names})",
                           id="unknown-container")
    if len(containers) == 1:
        return dict(containers[0])
    for c in containers:
        if c["name"] == name:
            return dict(c)
    names = ", ".join(c["name"] for c in containers)
    raise InvalidInput(f"deployment {name} has several containers ({names}); name one with "
                       "--container", id="ambiguous-container")


def revisions(gateway: ClusterGateway, deployment: dict[str, Any],
              container: str | None = None,
              replicasets: list[dict[str, Any]] | None = None) -> tuple[Revision, ...]:
    """The Deployment's revisions, from its ReplicaSets (listed here unless given)."""
    uid = deployment["metadata"].get("uid")
    out = []
    if replicasets is None:
        replicasets = gateway.list_replicasets(selector_of(deployment))
    for rs in replicasets:
        if not any(o.get("uid") == uid for o in rs["metadata"].get("ownerReferences") or []):
            continue
        annotations = rs["metadata"].get("annotations") or {}
        try:
            number = int(annotations.get(REVISION_ANNOTATION, "0"))
        except ValueError:
            continue
        template = rs["spec"]["template"]
        images = [c.get("image", "") for c in template["spec"].get("containers") or []
                  if container is None or c.get("name") == container]
        out.append(Revision(number, images[0] if images else "", rs["metadata"]["name"],
                            annotations.get(CHANGE_CAUSE_ANNOTATION),
                            rs["metadata"].get("creationTimestamp"), template))
    return tuple(sorted(out, key=lambda r: r.number))


def current_versions(gateway: ClusterGateway, deployment: dict[str, Any],
                     container: str | None = None,
                     replicasets: list[dict[str, Any]] | None = None) -> Counter[str]:
    """Ask every Ready pod of the current ReplicaSet for its /version, once each."""
    port = container_port(deployment, container, None)
    if replicasets is None:
        replicasets = gateway.list_replicasets(selector_of(deployment))
    rs = new_replicaset(deployment, replicasets)
    if port is None or rs is None:
        return Counter()
    hash_ = (rs["metadata"].get("labels") or {}).get("pod-template-hash")
    pods = [p for p in gateway.list_pods(f"{selector_of(deployment)},pod-template-hash={hash_}")
            if is_ready(p)]
    with VersionProbe(gateway) as probe:
        return Counter(probe.versions(pods, port).values())


def find_app(gateway: ClusterGateway, app: str) -> dict[str, Any]:
    """The app's Deployment, or AppNotFound saying whether the namespace is the problem."""
    dep = gateway.get_deployment(app)
    if dep is not None:
        return dep
    ns = gateway.namespace
    if gateway.namespace_exists() is False:
        raise AppNotFound(f"namespace {ns!r} does not exist", id="unknown-namespace",
                          hint="check -n/--namespace (kubectl get namespaces lists them)")
    names = sorted(d["metadata"]["name"] for d in gateway.list_deployments())
    close = difflib.get_close_matches(app, names, n=3)
    if close:
        hint = f"did you mean {' or '.join(close)}? (--app names the app's Deployment)"
    elif names:
        hint = f"Deployments in {ns}: {', '.join(names[:10])}{' ...' if len(names) > 10 else ''}"
    else:
        hint = f"namespace {ns} has no Deployments: check -n/--namespace"
    raise AppNotFound(f"no Deployment named {app!r} in namespace {ns!r}", hint=hint)


def read_app(gateway: ClusterGateway, app: str, container: str | None = None, *,
             measure_version: bool = True, stand_in: dict[str, Any] | None = None) -> AppState:
    """What deployer reads before planning. ``stand_in`` is the app's Deployment as an
    unfinished run will create it again, used only when the cluster has none."""
    dep = stand_in if stand_in is not None else find_app(gateway, app)
    c = pick_container(dep, container)
    try:
        image: ImageRef = parse_reference(c["image"])
    except InvalidInput as exc:
        raise UnsafeState(f"deployment {app} runs an image deployer cannot parse: {exc.message}",
                          id="unparseable-current-image") from exc
    annotations = dep["metadata"].get("annotations") or {}
    revision = int(annotations.get(REVISION_ANNOTATION, "0") or 0)
    others = {d["metadata"]["name"]: d for d in gateway.list_deployments(f"app={app}")
              if d["metadata"]["name"] != app}
    # deployer's own sides by name too: a Deployment without an app label on itself (its
    # pods may have one) gives its copies none either
    for name in (f"{app}-green", f"{app}-canary"):
        if name not in others and (side := gateway.get_deployment(name)) is not None:
            others[name] = side
    versions: dict[str, str] = {}
    replicasets = gateway.list_replicasets(selector_of(dep))  # its revisions, its pods
    if measure_version:
        for d in (dep, *others.values()):
            if not d["spec"].get("replicas"):
                continue
            answers = current_versions(gateway, d, c["name"],
                                       replicasets if d is dep else None)
            good = [v for v in answers if not v.startswith("error:")]
            if len(good) == 1:
                versions[d["metadata"]["name"]] = good[0]
    return AppState(
        app=AppRef(gateway.namespace, app),
        deployment=dep,
        container=c["name"],
        image=image,
        replicas=int(dep["spec"].get("replicas", 1)),
        revision=revision,
        revisions=revisions(gateway, dep, c["name"], replicasets),
        version=versions.get(app),
        service=gateway.get_service(app),
        others=others,
        versions=versions,
        autoscalers=autoscalers(gateway),
    )


def autoscalers(gateway: ClusterGateway) -> dict[str, str] | None:
    """Deployment name -> the HorizontalPodAutoscaler sizing it; None when the identity may
    not list them (optional in the Role: the canary then assumes none, and says so)."""
    try:
        found = gateway.list_autoscalers()
    except NotAuthorised:
        return None
    return {str(ref["name"]): str(h["metadata"]["name"]) for h in found
            if (ref := (h.get("spec") or {}).get("scaleTargetRef") or {}).get("kind")
            == "Deployment" and ref.get("name")}
