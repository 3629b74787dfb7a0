"""Benchmarks on the lab cluster, each ratio measured side by side in one run (`make bench`).

Every figure is measured RUNS times (5 unless $BENCH_RUNS says more) and shown as the median
with its min and max, beside its target; the same figures go to build/bench.json. The exit
code is 1 when a target is missed, 0 when every target is met (3 for a smoke run of fewer
than 5 runs: BENCH_RUNS=1).

1. Start-up: `deployer --help` and `deployer status` (wall time), and the peak RSS of a
   `deployer rolling` run.
2. A missing image: time until deployer has rejected it and v1 serves again, verified,
   against `kubectl set image` + `kubectl rollout status` with a 60 s progress deadline on
   an identical Deployment, run at the same time (kubectl waits the deadline out and undoes
   nothing).
3. A good release: `deployer rolling` v1 -> v2 (with /version verified on every pod)
   against `kubectl set image` + `kubectl rollout status` on an identical Deployment, one
   after the other, the order alternating.
4. API cost: the requests one deploy sends, counted at deployer's gateway (its JSON
   report's apiRequests), for a rolling update at 3, 30 and 60 replicas and a canary
   with three steps; checked against the lines of its -v trace. Reads of /version through
   the pod proxy (one per pod and sample) are counted apart: they grow with the replicas
   by design.

Not measured yet: time to verdict for a crash loop, a never-Ready and a wrong-version
release, per strategy, and the lag behind the kubelet's report; 20 apps deployed at once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e import lab  # noqa: E402

DEPLOYER = shutil.which("deployer", path=os.path.dirname(sys.executable)) or "deployer"
KUBECTL = shutil.which("kubectl") or "kubectl"
RUNS = max(1, int(os.environ.get("BENCH_RUNS", "5")))  # fewer than 5: a smoke run only
CONTEXT = ["--context", "deployer-lab"]
OUT = REPO / "build" / "bench.json"


@dataclass
class Figure:
    """One measured quantity: its samples, and the target it must meet (if any)."""

    name: str
    unit: str
    samples: list[float] = field(default_factory=list)
    target: float | None = None
    at_least: bool = False  # the target is a floor (a speed-up), not a ceiling
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def met(self) -> bool | None:
        if self.target is None or not self.samples:
            return None
        return self.median >= self.target if self.at_least else self.median <= self.target

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "unit": self.unit, "runs": len(self.samples),
                "median": self.median if self.samples else None,
                "min": min(self.samples, default=None), "max": max(self.samples, default=None),
                "target": self.target, "targetIs": "at least" if self.at_least else "at most",
                "met": self.met, "note": self.note}


def timed(cmd: list[str], **kw: Any) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return time.monotonic() - start, proc


def deployer(ns: str, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    return timed([DEPLOYER, *CONTEXT, "-n", ns, *args])


class Apps:
    """Fresh namespaces with hello v1, deleted at the end."""

    def __init__(self, kube: lab.Kube):
        self.kube = kube
        self.made: list[str] = []

    def new(self, replicas: int = 3, progress_deadline: int = 60) -> str:
        ns = lab.create_namespace(self.kube, f"bench-{uuid.uuid4().hex[:6]}")
        self.made.append(ns)
        lab.deploy_hello(self.kube, ns, replicas=replicas, timeout=300)
        self.kube.apps.patch_namespaced_deployment(
            "hello", ns, {"spec": {"progressDeadlineSeconds": progress_deadline}})
        lab.wait_deployment_available(self.kube, ns, "hello")
        return ns

    def done(self, ns: str) -> None:
        lab.delete_namespace(self.kube, ns)
        self.made.remove(ns)

    def close(self) -> None:
        for ns in list(self.made):
            self.done(ns)


def kubectl_rollout(ns: str, image: str, *extra: str) -> tuple[float, int]:
    start = time.monotonic()
    subprocess.run([KUBECTL, "-n", ns, "set", "image", "deployment/hello", f"hello={image}"],
                   check=True, capture_output=True)
    proc = subprocess.run([KUBECTL, "-n", ns, "rollout", "status", "deployment/hello",
                           *extra], capture_output=True)
    return time.monotonic() - start, proc.returncode


def startup(apps: Apps, figures: list[Figure]) -> None:
    help_ = Figure("deployer --help", "s", target=0.3)
    status = Figure("deployer status", "s", target=1.5)
    ns = apps.new()
    for _ in range(RUNS):
        help_.samples.append(timed([DEPLOYER, "--help"])[0])
        took, proc = deployer(ns, "status", "--app", "hello")
        assert proc.returncode == 0, proc.stderr
        status.samples.append(took)
    apps.done(ns)
    figures += [help_, status]


MEASURE_RSS = ("import resource, subprocess, sys; "
               "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
               "sys.exit(code)")


def missing_image(apps: Apps, figures: list[Figure]) -> None:
    ours = Figure("missing image: deployer rejects, v1 verified", "s", target=15.0)
    theirs = Figure("missing image: kubectl rollout status (60 s deadline)", "s",
                    note="waits the deadline out and undoes nothing")
    ratio = Figure("missing image: kubectl / deployer", "x", target=3.0, at_least=True)
    for _ in range(RUNS):
        a, b = apps.new(), apps.new()
        got: list[tuple[float, int]] = []
        kubectl = threading.Thread(  # at the same time, on an identical Deployment
            target=lambda b=b, got=got: got.append(
                kubectl_rollout(b, "hello:v9", "--timeout=300s")))
        kubectl.start()
        took, proc = deployer(a, "-o", "json", "rolling", "--app", "hello", "--image", "v9")
        kubectl.join(400)
        k_took, k_code = got[0]
        report = json.loads(proc.stdout)
        assert proc.returncode == 1 and report["verifiedVersion"] == "1.0.0", proc.stderr
        assert k_code != 0, "kubectl rollout status reports the failure"
        ours.samples.append(took)
        theirs.samples.append(k_took)
        ratio.samples.append(k_took / took)
        apps.done(a)
        apps.done(b)
    figures += [ours, theirs, ratio]


def good_release(apps: Apps, figures: list[Figure]) -> None:
    ours = Figure("good release: deployer rolling (verified)", "s")
    theirs = Figure("good release: kubectl set image + rollout status", "s")
    ratio = Figure("good release: deployer / kubectl", "x", target=1.05)
    rss = Figure("peak RSS of deployer rolling", "MiB", target=150.0)
    for i in range(RUNS):
        a, b = apps.new(), apps.new()

        def run_ours(a: str = a) -> float:
            took, proc = timed([sys.executable, "-c", MEASURE_RSS, DEPLOYER, *CONTEXT, "-n", a,
                                "rolling", "--app", "hello", "--image", "v2"])
            assert proc.returncode == 0, proc.stderr
            rss.samples.append(int(proc.stderr.strip().splitlines()[-1]) / 1024)
            return took

        def run_theirs(b: str = b) -> float:
            took, code = kubectl_rollout(b, "hello:v2")
            assert code == 0
            return took

        first, second = (run_ours, run_theirs) if i % 2 == 0 else (run_theirs, run_ours)
        t1, t2 = first(), second()
        t_ours, t_theirs = (t1, t2) if first is run_ours else (t2, t1)
        ours.samples.append(t_ours)
        theirs.samples.append(t_theirs)
        ratio.samples.append(t_ours / t_theirs)
        apps.done(a)
        apps.done(b)
    figures += [ours, theirs, ratio, rss]


TRACE = re.compile(r"api requests sent\s+api=(\d+)\s+podProxy=(\d+)")


def counted(ns: str, *args: str) -> dict[str, int]:
    """apiRequests of a -v -o json run that must promote, checked against its trace."""
    _, proc = deployer(ns, "-v", "-o", "json", *args)
    report = json.loads(proc.stdout)
    traced = proc.stderr.count("api request ")  # one line per request ("api request  ")
    last = TRACE.search(proc.stderr)
    assert last, proc.stderr[-2000:]
    total = int(last.group(1)) + int(last.group(2))
    assert total == traced, f"the trace's count {total} and its {traced} lines disagree"
    assert report["verdict"] == "promoted", f"{args}: {report['message']}"
    return dict(report["apiRequests"])


NODE_PODS = 110  # the kubelet's maxPods
# 100 replicas do not fit the lab's one node: its 110 pods include terminating ones (each
# lingers about 6 s with hello's preStop), and a 100-replica rolling update surging by 5,
# then by 3, filled it: "Unschedulable: 1 Too many pods", the release rejected.
SIZES = (3, 30, 60)


def room(kube: lab.Kube, pods: int) -> None:
    """Wait until the node has room for this many more pods (earlier apps' pods, still
    terminating, count against its 110)."""
    lab.wait_for(lambda: len(kube.core.list_pod_for_all_namespaces().items) + pods
                 <= NODE_PODS, 300, 2.0, f"room for {pods} pods on the node")


def api_cost(apps: Apps, figures: list[Figure]) -> None:
    by_size: dict[int, Figure] = {}
    probes: dict[int, Figure] = {}
    for replicas in SIZES:
        by_size[replicas] = Figure(f"API requests: rolling at {replicas} replicas", "requests")
        probes[replicas] = Figure(f"/version reads: rolling at {replicas} replicas",
                                  "requests", note="one per pod and sample: grows by design")
        for _ in range(RUNS):
            room(apps.kube, replicas + replicas // 5 + 5)
            ns = apps.new(replicas=replicas, progress_deadline=600)
            surge = [] if replicas == 3 else ["--max-surge", "10%"]
            count = counted(ns, "rolling", "--app", "hello", "--image", "v2", *surge)
            by_size[replicas].samples.append(count["api"])
            probes[replicas].samples.append(count["podProxy"])
            apps.done(ns)
    growth = Figure(f"API requests: {SIZES[-1]} replicas / 3 replicas", "x", target=1.5,
                    samples=[by_size[SIZES[-1]].median / by_size[3].median],
                    note="the count does not grow with the replicas")
    canary = Figure("API requests: canary 25,50,100", "requests")
    for _ in range(RUNS):
        ns = apps.new()
        count = counted(ns, "canary", "--app", "hello", "--image", "v2", "--steps", "25,50,100")
        canary.samples.append(count["api"])
        apps.done(ns)
    figures += [*by_size.values(), *probes.values(), growth, canary]


def table(figures: list[Figure]) -> str:
    rows = [("figure", "median", "min", "max", "target", "")]
    for f in figures:
        fmt: Callable[[float], str] = (lambda v: f"{v:.0f}") if f.unit in ("requests", "MiB") \
            else (lambda v: f"{v:.2f}")
        target = "" if f.target is None else f"{'>=' if f.at_least else '<='} {f.target:g}"
        verdict = {None: f.note, True: "met", False: "MISSED"}[f.met]
        rows.append((f"{f.name} ({f.unit})", fmt(f.median), fmt(min(f.samples)),
                     fmt(max(f.samples)), target, verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True))
                     + "  " + r[5] for r in rows)


def main() -> int:
    kube = lab.default_kube()
    apps = Apps(kube)
    figures: list[Figure] = []
    try:
        parts = [startup, missing_image, good_release, api_cost]
        chosen = [p for p in parts if p.__name__ in sys.argv[1:]] or parts  # e.g. api_cost
        for part in chosen:
            started = time.monotonic()
            part(apps, figures)
            print(f"bench: {part.__name__} measured in {time.monotonic() - started:.0f} s",
                  file=sys.stderr, flush=True)
    finally:
        apps.close()
    print(table(figures))
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"runs": RUNS, "figures": [f.to_json() for f in figures]},
                              indent=2) + "\n")
    print(f"written: {OUT.relative_to(REPO)}")
    missed = [f.name for f in figures if f.met is False]
    if RUNS < 5:
        print(f"BENCH_RUNS={RUNS}: fewer than 5 runs per figure, a smoke run, not a result")
        return 3
    if missed:
        print(f"targets missed: {'; '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
