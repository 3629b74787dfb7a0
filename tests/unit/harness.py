"""Shared set-up for the engine's unit tests: a fake clock, an Engine on the fake gateway,
and a tiny Deployment controller that moves the fake cluster along.

The controller runs from ``FakeGateway.advance`` (every watch wake-up and every
``list_pods``), as the real controllers run between deployer's reads: it observes each
Deployment's latest spec, keeps a ReplicaSet per pod template (a new template is a new
revision), replaces the pods of older templates, and keeps each Service's endpoints at
its Ready selected pods.
"""

from __future__ import annotations

import copy
import hashlib
import io
import itertools
import json
from collections.abc import Callable
from typing import Any

from deployer.engine import Engine, RunSettings
from deployer.model import REVISION_ANNOTATION
from deployer.report import Reporter
from tests.unit.fakes import FakeGateway, labelled, matches, pod, replicaset

OWNER = "fake.test/deployment"


class Clock:
    """A monotonic clock that only moves when told: ``sleep`` (recorded) or ``tick``.

    ``on_sleep`` runs after each sleep: what the cluster did meanwhile."""

    def __init__(self, now: float = 1000.0):
        self.now = now
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[], None] = lambda: None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.on_sleep()

    def tick(self, seconds: float = 1.0) -> None:
        self.now += seconds


_CLOCKS: list[Clock] = []  # those make_engine gave a gateway's feeds (a later engine's wins)


def make_engine(gw: FakeGateway, clock: Clock | None = None, *, timeout: float = 600.0,
                lock: Any = None, stop: Any = None, **settings: Any) -> Engine:
    """An Engine whose clock, sleeps and reporter are all in memory."""
    clock = clock or Clock()
    if gw.feed_tick is None or getattr(gw.feed_tick, "__self__", None) in _CLOCKS:
        gw.feed_tick = clock.tick  # a wait on a watch passes time, as on a cluster
    _CLOCKS.append(clock)
    reporter = Reporter(out=io.StringIO(), err=io.StringIO(), clock=clock)
    return Engine(gw, reporter, RunSettings(deadline=clock() + timeout, **settings),
                  clock=clock, sleep=clock.sleep, lock=lock, stop=stop)


def err_text(engine: Engine) -> str:
    """What the engine printed as live lines."""
    return engine.reporter.err.getvalue()  # type: ignore[union-attr]


def relabel(dep: dict[str, Any], **labels: str) -> dict[str, Any]:
    """A Deployment whose selector and pod template carry exactly ``labels``."""
    dep = copy.deepcopy(dep)
    dep["spec"]["selector"] = {"matchLabels": dict(labels)}
    dep["spec"]["template"]["metadata"]["labels"] = dict(labels)
    return dep


def template_hash(template: dict[str, Any]) -> str:
    t = copy.deepcopy(template)
    (t.get("metadata") or {}).get("labels", {}).pop("pod-template-hash", None)
    return hashlib.sha1(json.dumps(t, sort_keys=True).encode()).hexdigest()[:8]


class Controller:
    """A Deployment controller, endpoints controller and kubelet for the fake cluster.

    ``versions`` maps an image to the version its pods answer on /version; images in
    ``pod_state`` get pods built with those ``pod(...)`` arguments (e.g. a waiting
    reason, or ready=False). Deployments named in ``paused`` are left alone, and with
    ``endpoints_frozen`` the Services' endpoints no longer follow. ``clock``/``step``
    move a fake clock on at every tick.
    """

    def __init__(self, gw: FakeGateway, versions: dict[str, str] | None = None, *,
                 clock: Clock | None = None, step: float = 0.0):
        self.gw = gw
        self.versions = dict(versions or {})
        self.pod_state: dict[str, dict[str, Any]] = {}
        self.paused: set[str] = set()
        self.endpoints_frozen = False
        self.clock = clock
        self.step = step
        self.ticks = 0
        self._ips = itertools.count(10)
        gw.advance = self.tick

    def tick(self) -> None:
        self.ticks += 1
        if self.clock is not None and self.step:
            self.clock.tick(self.step)
        # pods that were terminating since the last tick are gone now
        self.gw.pods = [p for p in self.gw.pods if not p["metadata"].get("deletionTimestamp")]
        for name, dep in list(self.gw.deployments.items()):
            if name not in self.paused and not dep["spec"].get("paused"):
                self.reconcile(name, dep)
        owners = set(self.gw.deployments)
        for p in self.gw.pods:  # the garbage collector: pods of deleted Deployments
            if p["metadata"]["annotations"][OWNER] not in owners:
                p["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
        if not self.endpoints_frozen:
            for svc_name, svc in self.gw.services.items():
                selector = ",".join(f"{k}={v}" for k, v in
                                    sorted((svc["spec"].get("selector") or {}).items()))
                self.gw.endpoints[svc_name] = {
                    p["status"]["podIP"] for p in self.gw.pods
                    if matches(selector, p["metadata"]["labels"]) and _ready(p)
                    and not p["metadata"].get("deletionTimestamp")}

    def reconcile(self, name: str, dep: dict[str, Any]) -> None:
        meta, spec = dep["metadata"], dep["spec"]
        template = spec["template"]
        image = template["spec"]["containers"][0]["image"]
        hash_ = template_hash(template)
        owned = [rs for rs in self.gw.replicasets
                 if any(o.get("uid") == meta["uid"] for o in rs["metadata"]["ownerReferences"])]
        revisions = [int(rs["metadata"]["annotations"][REVISION_ANNOTATION]) for rs in owned]
        rs = next((r for r in owned if r["metadata"]["labels"].get("pod-template-hash")
                   == hash_), None)
        current = meta.setdefault("annotations", {}).get(REVISION_ANNOTATION)
        if rs is None:
            rs = replicaset(dep, max(revisions, default=0) + 1, hash_)
            self.gw.replicasets.append(rs)
        elif rs["metadata"]["annotations"][REVISION_ANNOTATION] != current and \
                int(rs["metadata"]["annotations"][REVISION_ANNOTATION]) < max(revisions):
            rs["metadata"]["annotations"][REVISION_ANNOTATION] = str(max(revisions) + 1)
        meta["annotations"][REVISION_ANNOTATION] = rs["metadata"]["annotations"][
            REVISION_ANNOTATION]

        mine = [p for p in self.gw.pods if p["metadata"]["annotations"][OWNER] == name
                and not p["metadata"].get("deletionTimestamp")]
        for p in mine:
            if p["metadata"]["labels"].get("pod-template-hash") != hash_:
                p["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
        new = [p for p in mine if p["metadata"]["labels"].get("pod-template-hash") == hash_]
        wanted = int(spec.get("replicas", 1))
        for p in new[wanted:]:
            p["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
        new = new[:wanted]
        while len(new) < wanted:
            p = self.make_pod(name, template, hash_, image)
            self.gw.pods.append(p)
            new.append(p)
        ready = sum(1 for p in new if _ready(p))
        dep["status"] = {**(dep.get("status") or {}),
                         "observedGeneration": meta.get("generation", 1),
                         "replicas": len(new), "updatedReplicas": len(new),
                         "availableReplicas": ready, "readyReplicas": ready}

    def make_pod(self, name: str, template: dict[str, Any], hash_: str,
                 image: str) -> dict[str, Any]:
        n = next(self._ips)
        pod_name = f"{name}-{hash_[:5]}-{n}"
        p = labelled(pod(pod_name, image=image, **self.pod_state.get(image, {})),
                     {**template["metadata"].get("labels", {}), "pod-template-hash": hash_},
                     ip=f"10.1.0.{n}")
        p["metadata"]["annotations"] = {OWNER: name}
        if image in self.versions:
            self.gw.pod_answers[pod_name] = self.versions[image]
        return p

    def pods_of(self, name: str) -> list[dict[str, Any]]:
        return [p for p in self.gw.pods if p["metadata"]["annotations"][OWNER] == name
                and not p["metadata"].get("deletionTimestamp")]


def _ready(p: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in p["status"].get("conditions") or [])
