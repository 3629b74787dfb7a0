"""A fake of deployer's own gateway (never of the Kubernetes API) for unit tests."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from deployer.errors import Conflict, NotAuthorised, NotFound
from deployer.gateway import ClusterGateway, RequestCount
from deployer.model import HttpAnswer


def deployment(name: str = "hello", image: str = "hello:v1", *, replicas: int = 3,
               generation: int = 1, observed: int = 1, updated: int | None = None,
               current: int | None = None, available: int | None = None,
               revision: int = 1, conditions: list[dict[str, Any]] | None = None,
               strategy: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "generation": generation,
                     "resourceVersion": "1",
                     "annotations": {"deployment.kubernetes.io/revision": str(revision)}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name, "track": "stable"}},
            "strategy": strategy or {"type": "RollingUpdate",
                                     "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "progressDeadlineSeconds": 120,
            "template": {"metadata": {"labels": {"app": name, "track": "stable"}},
                         "spec": {"containers": [{"name": name, "image": image,
                                                  "ports": [{"name": "http",
                                                             "containerPort": 8080}]}]}},
        },
        "status": {
            "observedGeneration": observed,
            "replicas": replicas if current is None else current,
            "updatedReplicas": replicas if updated is None else updated,
            "availableReplicas": replicas if available is None else available,
            "readyReplicas": replicas if available is None else available,
            "conditions": conditions or [],
        },
    }


def pod(name: str, *, waiting: str | None = None, message: str = "", restarts: int = 0,
        exit_code: int | None = None, ready: bool = True, phase: str = "Running",
        unschedulable: str | None = None, image: str = "hello:v2") -> dict[str, Any]:
    state: dict[str, Any] = {"running": {}} if waiting is None else {
        "waiting": {"reason": waiting, "message": message}}
    last = {"terminated": {"exitCode": exit_code, "reason": "Error"}} if exit_code is not None \
        else {}
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if unschedulable:
        conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                           "message": unschedulable})
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "hello", "image": image}]},
        "status": {"phase": phase, "conditions": conditions,
                   "containerStatuses": [] if unschedulable else [
                       {"name": "hello", "state": state, "lastState": last,
                        "restartCount": restarts, "image": image}]},
    }


def matches(selector: str | None, labels: dict[str, str] | None) -> bool:
    """Equality-based label selectors (``a=b,c!=d``), as deployer writes them; ``c!=d``
    also matches labels without ``c``, as the API server's does."""
    if not selector:
        return True
    labels = labels or {}
    for term in (t for t in selector.split(",") if t):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        else:
            key, value = term.split("=", 1)
            if labels.get(key) != value:
                return False
    return True


def answer(version: str) -> HttpAnswer:
    return HttpAnswer(200, version.encode())


class FakeFeed:
    """A watch that lets the fake cluster move on, then wakes. With ``tick`` (a fake
    clock's), the wait's time passes too, so a wait on a feed reaches its deadline.
    ``current`` reads the fake cluster (a watch always in step), or says "not in step"
    (None) for the sources in ``out_of_step``."""

    def __init__(self, on_wait: Callable[[], None],
                 tick: Callable[[float], None] | None = None,
                 reads: dict[str, Callable[[], list[dict[str, Any]]]] | None = None,
                 out_of_step: frozenset[str] = frozenset()):
        self.on_wait = on_wait
        self.tick = tick
        self.reads = reads or {}
        self.out_of_step = out_of_step
        self.closed = False
        self.served: list[str] = []  # the sources current() answered from the "cache"

    def current(self, source: str) -> list[dict[str, Any]] | None:
        read = self.reads.get(source)
        if read is None or source in self.out_of_step:
            return None
        self.served.append(source)
        return read()

    def wait(self, timeout: float) -> bool:
        self.on_wait()
        if self.tick is not None:
            self.tick(timeout)
        return True

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> FakeFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FakeGateway:
    """An in-memory cluster behind deployer's own gateway interface.

    Objects are plain dicts, as the real gateway returns them; every write is recorded
    in ``writes`` as (verb, kind, body). Conditional writes check resourceVersion, and
    ``conflicts_left`` makes the next replaces of a Deployment fail with a conflict.
    ``pod_answers`` maps a pod name to what it answers through the pod proxy (a
    version string, or an HttpAnswer); ``advance`` is called on every watch wake-up and
    every ``list_pods``, so a test can move the cluster along.
    """

    namespace = "test"
    context: str | None = "fake"

    def __init__(self, *deployments: dict[str, Any]):
        self.deployments = {d["metadata"]["name"]: copy.deepcopy(d) for d in deployments}
        self.services: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.config_maps: dict[str, dict[str, Any]] = {}
        self.leases: dict[str, dict[str, Any]] = {}
        self.pods: list[dict[str, Any]] = []
        self.replicasets: list[dict[str, Any]] = []
        self.endpoints: dict[str, set[str]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.quotas: list[dict[str, Any]] = []
        self.autoscalers: list[dict[str, Any]] = []
        self.budgets: list[dict[str, Any]] = []
        self.logs: dict[str, list[str]] = {}
        self.pod_answers: dict[str, str | HttpAnswer] = {}
        self.denied: set[tuple[str, str, str, str]] = set()
        # What a SelfSubjectRulesReview answers: none listed by default, so every
        # permission is asked with an access review (can_i), as on a server whose rules
        # review knows nothing.
        self.rules: list[dict[str, Any]] = []
        self.rules_incomplete = False
        self.access_reviews: list[tuple[str, str, str, str]] = []
        self.writes: list[tuple[str, str, dict[str, Any]]] = []
        self.conflicts_left = 0
        self.advance: Callable[[], None] = lambda: None
        self.feed_tick: Callable[[float], None] | None = None  # what a feed's wait passes
        self.feeds: list[FakeFeed] = []  # every feed changes() made
        self.feeds_out_of_step: frozenset[str] = frozenset()  # sources whose watch lags
        self.namespace_is: bool | None = True  # what namespace_exists answers
        self.identity_is: str | None = None  # what identity answers
        self.requests = RequestCount()  # the fake sends none

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _bump(obj: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        rv = int((previous or {}).get("metadata", {}).get("resourceVersion", "0"))
        obj["metadata"]["resourceVersion"] = str(rv + 1)
        return obj

    def _check_version(self, kind: str, body: dict[str, Any], current: dict[str, Any]) -> None:
        wanted = body["metadata"].get("resourceVersion")
        if wanted is not None and wanted != current["metadata"].get("resourceVersion"):
            raise Conflict(f"{kind} {body['metadata']['name']} changed")

    # ------------------------------------------------------------ reads
    def namespace_exists(self) -> bool | None:
        return self.namespace_is

    def identity(self) -> str | None:
        return self.identity_is

    def get_deployment(self, name: str) -> dict[str, Any] | None:
        d = self.deployments.get(name)
        return copy.deepcopy(d) if d else None

    def list_deployments(self, selector: str | None = None) -> list[dict[str, Any]]:
        return [copy.deepcopy(d) for d in self.deployments.values()
                if matches(selector, d["metadata"].get("labels"))]

    def list_replicasets(self, selector: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(r) for r in self.replicasets
                if matches(selector, r["metadata"].get("labels"))]

    def list_pods(self, selector: str) -> list[dict[str, Any]]:
        self.advance()
        return [copy.deepcopy(p) for p in self.pods
                if matches(selector, p["metadata"].get("labels"))]

    def get_service(self, name: str) -> dict[str, Any] | None:
        s = self.services.get(name)
        return copy.deepcopy(s) if s else None

    def endpoint_addresses(self, service: str) -> set[str]:
        return set(self.endpoints.get(service, set()))

    def list_events(self, object_name: str) -> list[dict[str, Any]]:
        return list(self.events.get(object_name, []))

    def list_resource_quotas(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self.quotas)

    def list_disruption_budgets(self) -> list[dict[str, Any]]:
        if ("list", "policy", "poddisruptionbudgets", "") in self.denied:
            raise NotAuthorised("poddisruptionbudgets is forbidden")
        return copy.deepcopy(self.budgets)

    def list_autoscalers(self) -> list[dict[str, Any]]:
        if ("list", "autoscaling", "horizontalpodautoscalers", "") in self.denied:
            raise NotAuthorised("horizontalpodautoscalers is forbidden")
        return copy.deepcopy(self.autoscalers)

    def pod_logs(self, pod: str, container: str, *, tail_lines: int = 10,
                 previous: bool = False) -> list[str]:
        return list(self.logs.get(pod, []))[-tail_lines:]

    def pod_get(self, pod: str, port: int | str, path: str) -> HttpAnswer:
        got = self.pod_answers.get(pod)
        if got is None:
            return HttpAnswer(503, b"no endpoints available")
        return answer(got) if isinstance(got, str) else got

    def get_config_map(self, name: str) -> dict[str, Any] | None:
        c = self.config_maps.get(name)
        return copy.deepcopy(c) if c else None

    def get_lease(self, name: str) -> dict[str, Any] | None:
        lease = self.leases.get(name)
        return copy.deepcopy(lease) if lease else None

    def access_rules(self) -> tuple[list[dict[str, Any]], bool]:
        return copy.deepcopy(self.rules), self.rules_incomplete

    def can_i(self, verb: str, group: str, resource: str, subresource: str = "") -> bool:
        self.access_reviews.append((verb, group, resource, subresource))
        return (verb, group, resource, subresource) not in self.denied

    # ------------------------------------------------------------ writes
    def replace_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        current = self.deployments[name]
        if self.conflicts_left:
            self.conflicts_left -= 1
            current["metadata"]["resourceVersion"] = str(
                int(current["metadata"]["resourceVersion"]) + 1)
            raise Conflict(f"deployment {name} changed")
        self._check_version("deployment", body, current)
        if body["metadata"].get("resourceVersion") is None:
            raise AssertionError("deployer replaces Deployments conditionally only")
        stored = self._bump(body, current)
        if stored["spec"] != current["spec"] or \
                stored["metadata"].get("annotations") != current["metadata"].get("annotations"):
            stored["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        self.deployments[name] = stored
        self.writes.append(("replace", "deployment", stored))
        return copy.deepcopy(stored)

    def create_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if name in self.deployments:
            raise Conflict(f"deployment {name} already exists")
        stored = self._bump(body)
        stored["metadata"].setdefault("generation", 1)
        self.deployments[name] = stored
        self.writes.append(("create", "deployment", stored))
        return copy.deepcopy(stored)

    def delete_deployment(self, name: str) -> None:
        if self.deployments.pop(name, None) is not None:
            self.writes.append(("delete", "deployment", {"metadata": {"name": name}}))

    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if name in self.jobs:
            raise Conflict(f"job {name} already exists")
        stored = self._bump(body)
        self.jobs[name] = stored
        self.writes.append(("create", "job", stored))
        return copy.deepcopy(stored)

    def get_job(self, name: str) -> dict[str, Any] | None:
        job = self.jobs.get(name)
        return copy.deepcopy(job) if job else None

    def delete_job(self, name: str) -> None:
        if self.jobs.pop(name, None) is not None:
            self.writes.append(("delete", "job", {"metadata": {"name": name}}))

    def patch_service(self, name: str, patch: dict[str, Any], *,
                      resource_version: str | None = None) -> dict[str, Any]:
        current = self.services[name]
        if resource_version is not None and \
                resource_version != current["metadata"].get("resourceVersion"):
            raise Conflict(f"service {name} changed")
        stored = self._bump(current, current)
        for key, value in (patch.get("spec") or {}).items():
            if isinstance(value, dict):
                merged = dict(stored["spec"].get(key) or {})
                for k, v in value.items():
                    if v is None:
                        merged.pop(k, None)
                    else:
                        merged[k] = v
                stored["spec"][key] = merged
            else:
                stored["spec"][key] = value
        self.services[name] = stored
        self.writes.append(("patch", "service", patch))
        return copy.deepcopy(stored)

    def create_config_map(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if name in self.config_maps:
            raise Conflict(f"configmap {name} already exists")
        self.config_maps[name] = self._bump(body)
        self.writes.append(("create", "configmap", self.config_maps[name]))
        return copy.deepcopy(self.config_maps[name])

    def replace_config_map(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        current = self.config_maps[name]
        self._check_version("configmap", body, current)
        self.config_maps[name] = self._bump(body, current)
        self.writes.append(("replace", "configmap", self.config_maps[name]))
        return copy.deepcopy(self.config_maps[name])

    def create_lease(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if name in self.leases:
            raise Conflict(f"lease {name} already exists")
        self.leases[name] = self._bump(body)
        self.writes.append(("create", "lease", self.leases[name]))
        return copy.deepcopy(self.leases[name])

    def replace_lease(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if name not in self.leases:
            raise NotFound(f'leases "{name}" not found')
        current = self.leases[name]
        self._check_version("lease", body, current)
        self.leases[name] = self._bump(body, current)
        self.writes.append(("replace", "lease", self.leases[name]))
        return copy.deepcopy(self.leases[name])

    # ------------------------------------------------------------ watches
    def changes(self, *, deployment: str | None = None, replicasets: str | None = None,
                pod_selector: str | None = None, service: str | None = None,
                config_map: str | None = None) -> FakeFeed:
        reads: dict[str, Callable[[], list[dict[str, Any]]]] = {}
        if config_map:
            reads["configmap"] = lambda: [copy.deepcopy(c) for c in
                                          [self.config_maps.get(config_map)] if c]
        if deployment:
            reads["deployment"] = lambda: [d for d in [self.get_deployment(deployment)] if d]
        if replicasets:
            reads["replicasets"] = lambda: self.list_replicasets(replicasets)
        if pod_selector:
            reads["pods"] = lambda: self.list_pods(pod_selector)
        feed = FakeFeed(self.advance, self.feed_tick, reads, self.feeds_out_of_step)
        self.feeds.append(feed)
        return feed

    # ------------------------------------------------------------ test views
    def deployment_writes(self) -> list[dict[str, Any]]:
        return [body for verb, kind, body in self.writes
                if kind == "deployment" and verb == "replace"]

    def image(self, name: str = "hello") -> str:
        return str(self.deployments[name]["spec"]["template"]["spec"]["containers"][0]["image"])


def _conforms(gateway: FakeGateway) -> ClusterGateway:
    """mypy checks here that the fake is what the real gateway's Protocol describes."""
    return gateway


# ------------------------------------------------------------ more builders


def service(name: str = "hello", selector: dict[str, str] | None = None, *,
            affinity: str | None = None, cluster_ip: str = "10.96.0.10",
            ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A Service as the API server sends it (sessionAffinity left out when None)."""
    spec: dict[str, Any] = {"selector": dict(selector or {"app": name}),
                            "clusterIP": cluster_ip,
                            "ports": [{"name": "http", "port": 80, "targetPort": 8080}]
                            if ports is None else ports}
    if affinity is not None:
        spec["sessionAffinity"] = affinity
    return {"metadata": {"name": name, "resourceVersion": "1"}, "spec": spec}


def replicaset(dep: dict[str, Any], revision: int, template_hash: str,
               image: str | None = None, *, owner_uid: str | None = None) -> dict[str, Any]:
    """A ReplicaSet owned by ``dep`` (or by ``owner_uid``) for its template, or for the same
    template with another image, labelled with ``pod-template-hash``."""
    template = copy.deepcopy(dep["spec"]["template"])
    if image is not None:
        template["spec"]["containers"][0]["image"] = image
    template["metadata"].setdefault("labels", {})["pod-template-hash"] = template_hash
    name = dep["metadata"]["name"]
    return {
        "metadata": {"name": f"{name}-{template_hash}",
                     "labels": dict(template["metadata"]["labels"]),
                     "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                     "ownerReferences": [{"kind": "Deployment", "name": name,
                                          "uid": owner_uid or dep["metadata"]["uid"]}]},
        "spec": {"replicas": dep["spec"].get("replicas", 1), "template": template},
    }


def labelled(p: dict[str, Any], labels: dict[str, str], ip: str | None = None) -> dict[str, Any]:
    """A pod from ``pod(...)`` with labels (and a pod IP), so selectors find it."""
    p = copy.deepcopy(p)
    p["metadata"]["labels"] = dict(labels)
    if ip is not None:
        p["status"]["podIP"] = ip
    return p
