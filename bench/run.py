"""Benchmarks on the lab cluster, each ratio measured side by side in one run (`make bench`).

Every figure is measured RUNS times (5 unless $BENCH_RUNS says more) and shown as the median
with its min and max, beside its target; the same figures go to build/bench.json. The exit
code is 1 when a target is missed, 0 when every target is met (3 for a smoke run of fewer
than 5 runs: BENCH_RUNS=1).

1. Start-up: `deployer --help` and `deployer status` (wall time), and the peak RSS of a
   `deployer rolling` run.
2. A good release: `deployer rolling` v1 -> v2 (with /version verified on every pod)
   against `kubectl set image` + `kubectl rollout status` on an identical Deployment, one
   after the other, the order alternating, 2 x RUNS pairs; and each command's time split
   by a watch from here into before the image was written, the rollout itself (the
   cluster's work), and after the rollout was complete.
3. API cost: the requests one deploy sends, counted at deployer's gateway (its JSON
   report's apiRequests), for a rolling update at 3, 30 and 100 replicas and a canary
   with three steps; checked against the lines of its -v trace. Reads of /version through
   the pod proxy (one per pod and sample) are counted apart: they grow with the replicas
   by design. The time of each rolling update beside it (100 replicas: what the lab's
   node takes, its 200 pods counting terminating ones).
4. Time to verdict on a bad release, per strategy (rolling, canary, blue-green), for v9
   (missing image), v4 (crash loop), v3 (never Ready, 30 s progress deadline) and v5
   (answers the wrong version): from the command's start until the rejection was decided
   (the failed step's finishedAt in the JSON report) and until the old version served
   again, verified (the command's end); and how long after the reason reached the API
   server (a watch from here sees the new pods' ErrImagePull, CrashLoopBackOff, or for v5
   the first running container) the decision came. Beside it, `kubectl rollout status`
   on an identical Deployment with the same deadline, waited out, and for v9 and v4 the
   bound against kubectl's default 600 s deadline (computed, not waited: "at least"; a
   never-Ready release is decided by its deadline, at 600 s by deployer too).
5. Concurrency: 20 apps rolled out at the same time by 20 processes, each app's time
   against one alone, and the peak RSS and CPU time of one process.
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

INSTALLED = REPO / "build" / "bench-venv"  # deployer as a user installs it (see installed())
DEPLOYER = str(INSTALLED / "bin" / "deployer")
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


MEASURE_RSS = ("import resource, subprocess, sys, time; w = time.time(); t = time.monotonic(); "
               "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
               "t = time.monotonic() - t; u = resource.getrusage(resource.RUSAGE_CHILDREN); "
               "print(u.ru_maxrss, u.ru_utime + u.ru_stime, t, w, file=sys.stderr); "
               "sys.exit(code)")  # last line on stderr: peak RSS (KiB), CPU and wall seconds,
# and the wall clock when the command was started (this wrapper's own start is not in it)
MEASURE_RSS_KEEP = MEASURE_RSS.replace(", stdout=subprocess.DEVNULL", "")  # stdout passed on


class RolloutSeen(threading.Thread):
    """When the Deployment's new generation reached the API server (the image written) and
    when its rollout was complete by kubectl's rule, as a watch from here saw them (wall
    clock): what lies between is the cluster's own work, the same for any client."""

    def __init__(self, kube: lab.Kube, ns: str):
        super().__init__(daemon=True)
        self.kube, self.ns = kube, ns
        dep = kube.apps.read_namespaced_deployment("hello", ns)
        self.generation = dep.metadata.generation
        self.written: float | None = None
        self.complete: float | None = None
        self.start()

    def run(self) -> None:
        from kubernetes import watch

        w = watch.Watch()
        for event in w.stream(self.kube.apps.list_namespaced_deployment, self.ns,
                              field_selector="metadata.name=hello", timeout_seconds=300):
            now, dep = time.time(), event["object"]
            if dep.metadata.generation > self.generation and self.written is None:
                self.written = now
            st = dep.status
            if self.written is not None and self.complete is None and \
                    (st.observed_generation or 0) >= dep.metadata.generation and \
                    (st.updated_replicas or 0) >= dep.spec.replicas and \
                    (st.replicas or 0) <= (st.updated_replicas or 0) and \
                    (st.available_replicas or 0) >= (st.updated_replicas or 0):
                self.complete = now
            if self.complete is not None:
                w.stop()
                return


def good_release(apps: Apps, figures: list[Figure]) -> None:
    ours = Figure("good release: deployer rolling (verified)", "s")
    theirs = Figure("good release: kubectl set image + rollout status", "s")
    ratio = Figure("good release: deployer / kubectl", "x", target=1.05)
    rss = Figure("peak RSS of deployer rolling", "MiB", target=150.0)
    before = {who: Figure(f"good release: {who}: command start -> image written", "s")
              for who in ("deployer", "kubectl")}
    after = {who: Figure(f"good release: {who}: rollout complete -> command end", "s",
                         note="verification included" if who == "deployer" else "")
             for who in ("deployer", "kubectl")}
    client = Figure("good release: python -c 'import kubernetes' in deployer's venv", "s",
                    note="the official client's import alone: part of every deployer start")
    rollout = Figure("good release: image written -> rollout complete (both)", "s",
                     note="the cluster's own time: the kubelet probes readiness every 2 s")
    for i in range(2 * RUNS):  # twice as many pairs: each pod's readiness waits for the
        # kubelet's next probe (every 2 s), which spreads a rollout's time by seconds
        a, b = apps.new(), apps.new()

        def run_ours(a: str = a) -> float:
            seen = RolloutSeen(apps.kube, a)
            _, proc = timed([sys.executable, "-c", MEASURE_RSS, DEPLOYER, *CONTEXT, "-n", a,
                             "rolling", "--app", "hello", "--image", "v2"])
            assert proc.returncode == 0, proc.stderr
            kib, _, took, started = proc.stderr.strip().splitlines()[-1].split()
            rss.samples.append(int(kib) / 1024)
            split("deployer", seen, float(started), float(took))
            return float(took)

        def run_theirs(b: str = b) -> float:
            seen, started = RolloutSeen(apps.kube, b), time.time()
            took, code = kubectl_rollout(b, "hello:v2")
            assert code == 0
            split("kubectl", seen, started, took)
            return took

        def split(who: str, seen: RolloutSeen, started: float, took: float) -> None:
            seen.join(10)
            assert seen.written is not None and seen.complete is not None, who
            before[who].samples.append(seen.written - started)
            after[who].samples.append(started + took - seen.complete)
            rollout.samples.append(seen.complete - seen.written)

        # as a command would meet the lab: its two apps up, nothing else going on
        client.samples.append(timed([str(INSTALLED / "bin" / "python"), "-c",
                                     "import kubernetes"])[0])
        first, second = (run_ours, run_theirs) if i % 2 == 0 else (run_theirs, run_ours)
        t1, t2 = first(), second()
        t_ours, t_theirs = (t1, t2) if first is run_ours else (t2, t1)
        ours.samples.append(t_ours)
        theirs.samples.append(t_theirs)
        ratio.samples.append(t_ours / t_theirs)
        for ns in (a, b):
            apps.done(ns)
    extra = {who: before[who].median + after[who].median for who in before}
    steady = Figure("good release: deployer / kubectl, the rollout's time taken as the median "
                    "of all", "x", target=1.05, samples=[(rollout.median + extra["deployer"])
                                                         / (rollout.median + extra["kubectl"])],
                    note="computed: (rollout + deployer's time around it) / (rollout + "
                         "kubectl's)")
    # How far the steady ratio can come down while deployer is a Python program using the
    # official client: kubectl's own time plus only that client's import.
    least = Figure("good release: the same, for kubectl's time plus 'import kubernetes' alone",
                   "x", samples=[(rollout.median + extra["kubectl"] + client.median)
                                 / (rollout.median + extra["kubectl"])],
                   note="computed: the floor of the ratio above for any client of this library")
    figures += [ours, theirs, ratio, *before.values(), *after.values(), rollout, steady, client,
                least, rss]


BAD = {  # image: what is wrong with it, and the new pods' state that is its reason
    "v9": ("missing image", ("ErrImagePull", "ImagePullBackOff")),
    "v4": ("crash loop", ("CrashLoopBackOff",)),
    "v3": ("never Ready, 30 s progress deadline", ()),
    "v5": ("wrong version", ("running",)),
}
STRATEGIES = ("rolling", "canary", "blue-green")
KUBECTL_DEFAULT_DEADLINE = 600.0  # progressDeadlineSeconds when a Deployment says none


class PodStates(threading.Thread):
    """When a state of a pod running the bad image first reached the API server, as seen by
    a watch from here (wall clock): a container waiting with a reason (ErrImagePull,
    CrashLoopBackOff), or "running"."""

    def __init__(self, kube: lab.Kube, ns: str, image: str):
        super().__init__(daemon=True)
        self.kube, self.ns, self.image = kube, ns, image
        self.first: dict[str, float] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        from kubernetes import watch

        w = watch.Watch()
        for event in w.stream(self.kube.core.list_namespaced_pod, self.ns, timeout_seconds=600):
            now = time.time()
            if self.stopped.is_set():
                w.stop()
                return
            for c in event["object"].status.container_statuses or []:
                if not c.image.endswith(self.image):
                    continue
                if c.state.waiting is not None and c.state.waiting.reason:
                    self.first.setdefault(c.state.waiting.reason, now)
                if c.state.running is not None:
                    self.first.setdefault("running", now)

    def reported(self, states: tuple[str, ...]) -> float | None:
        seen = [self.first[s] for s in states if s in self.first]
        return min(seen) if seen else None


def wall_of(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def rejected(apps: Apps, strategy: str, image: str) -> tuple[float, float, float | None]:
    """One bad release: seconds from the command's start until the rejection was decided
    (the failed step's end) and until the old version served again, verified (the
    command's end); and the decision's lag behind the reason reaching the API server."""
    _, states = BAD[image]
    ns = apps.new(progress_deadline=30 if image == "v3" else 60)
    pods = PodStates(apps.kube, ns, f"hello:{image}")
    pods.start()
    time.sleep(0.5)  # the watch is open
    started = time.time()
    took, proc = deployer(ns, "-o", "json", strategy, "--app", "hello", "--image", image)
    pods.stopped.set()
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and report["verdict"] == "rejected", proc.stdout[-2000:]
    assert report["verifiedVersion"] == "1.0.0", report["message"]
    failed = next(s for s in report["steps"] if s["result"] == "failed")
    decided = wall_of(failed["finishedAt"])
    reason = pods.reported(states)
    apps.done(ns)
    return decided - started, took, None if reason is None else decided - reason


def verdicts(apps: Apps, figures: list[Figure]) -> None:
    for image, (what, states) in BAD.items():
        fast = image in ("v9", "v4")
        decided = {s: Figure(f"{image} {what}: {s}: rejection decided", "s")
                   for s in STRATEGIES}
        restored = {s: Figure(f"{image} {what}: {s}: v1 verified again", "s",
                              target=15.0 if fast else None) for s in STRATEGIES}
        lag = {s: Figure(f"{image} {what}: {s}: decided after the reason reached the API",
                         "s", target=5.0 if fast else None,
                         note="" if fast else "from the first new pod running")
               for s in STRATEGIES if states}
        deadline = 30 if image == "v3" else 60  # the same for kubectl's Deployment and ours
        kubectl = Figure(f"{image} {what}: kubectl rollout status, {deadline} s deadline",
                         "s", note="waited out" if image != "v5" else "")
        verdict = Figure(f"{image} {what}: kubectl rollout status's exit code", "code",
                         note="0: kubectl accepts it" if image == "v5" else "")
        for _ in range(RUNS):
            other = apps.new(progress_deadline=deadline)
            got: list[tuple[float, int]] = []
            theirs = threading.Thread(target=lambda got=got, other=other, image=image: got.append(
                kubectl_rollout(other, f"hello:{image}", "--timeout=300s")))
            theirs.start()
            for strategy in STRATEGIES:
                d, r, late = rejected(apps, strategy, image)
                decided[strategy].samples.append(d)
                restored[strategy].samples.append(r)
                if strategy in lag and late is not None:
                    lag[strategy].samples.append(late)
            theirs.join(400)
            kubectl.samples.append(got[0][0])
            verdict.samples.append(got[0][1])
            apps.done(other)
        ours = restored["rolling"].median
        ratio = Figure(f"{image} {what}: kubectl ({deadline} s, waited) / deployer rolling", "x",
                       samples=[kubectl.median / ours],
                       note="kubectl undoes nothing" if fast else
                       "both wait the progress deadline; kubectl undoes nothing")
        bound = Figure(f"{image} {what}: kubectl (600 s default) / deployer rolling", "x",
                       samples=[KUBECTL_DEFAULT_DEADLINE / ours],
                       note="at least: computed from the deadline, not waited")
        figures += [*decided.values(), *restored.values(),
                    *(f for f in lag.values() if f.samples), kubectl, verdict]
        if image != "v5":
            figures.append(ratio)
        if fast:  # v3 is decided by the progress deadline: at 600 s deployer waits it too
            figures.append(bound)


TRACE = re.compile(r"api requests sent\s+api=(\d+)\s+podProxy=(\d+)")


def counted(ns: str, *args: str) -> tuple[dict[str, int], float]:
    """apiRequests of a -v -o json run that must promote, checked against its trace, and
    how long the run took."""
    took, proc = deployer(ns, "-v", "-o", "json", *args)
    report = json.loads(proc.stdout)
    traced = proc.stderr.count("api request ")  # one line per request ("api request  ")
    last = TRACE.search(proc.stderr)
    assert last, proc.stderr[-2000:]
    total = int(last.group(1)) + int(last.group(2))
    assert total == traced, f"the trace's count {total} and its {traced} lines disagree"
    assert report["verdict"] == "promoted", f"{args}: {report['message']}"
    return dict(report["apiRequests"]), took


NODE_PODS = 200  # the lab kubelet's maxPods (terminating pods count against it)
SIZES = (3, 30, 100)


def room(kube: lab.Kube, pods: int) -> None:
    """Wait until the node has room for this many more pods (earlier apps' pods, still
    terminating, count against its maxPods)."""
    lab.wait_for(lambda: len(kube.core.list_pod_for_all_namespaces().items) + pods
                 <= NODE_PODS, 300, 2.0, f"room for {pods} pods on the node")


def api_cost(apps: Apps, figures: list[Figure]) -> None:
    by_size: dict[int, Figure] = {}
    probes: dict[int, Figure] = {}
    took: dict[int, Figure] = {}
    for replicas in SIZES:
        by_size[replicas] = Figure(f"API requests: rolling at {replicas} replicas", "requests")
        took[replicas] = Figure(f"rolling at {replicas} replicas: time (verified, -v)", "s",
                                note="" if replicas == 3 else "--max-surge 10%")
        probes[replicas] = Figure(f"/version reads: rolling at {replicas} replicas",
                                  "requests", note="one per pod and sample: grows by design")
        for _ in range(RUNS):
            room(apps.kube, min(NODE_PODS, replicas + replicas // 5 + 5))
            ns = apps.new(replicas=replicas, progress_deadline=600)
            surge = [] if replicas == 3 else ["--max-surge", "10%"]
            count, seconds = counted(ns, "rolling", "--app", "hello", "--image", "v2", *surge)
            took[replicas].samples.append(seconds)
            by_size[replicas].samples.append(count["api"])
            probes[replicas].samples.append(count["podProxy"])
            apps.done(ns)
    growth = Figure(f"API requests: {SIZES[-1]} replicas / 3 replicas", "x", target=1.5,
                    samples=[by_size[SIZES[-1]].median / by_size[3].median],
                    note="the count does not grow with the replicas")
    canary = Figure("API requests: canary 25,50,100", "requests")
    for _ in range(RUNS):
        ns = apps.new()
        count, _ = counted(ns, "canary", "--app", "hello", "--image", "v2", "--steps",
                           "25,50,100")
        canary.samples.append(count["api"])
        apps.done(ns)
    figures += [*by_size.values(), *probes.values(), growth, canary, *took.values()]


CONCURRENT = 20  # apps deployed at the same time, by as many processes


def settled(kube: lab.Kube) -> None:
    """Wait until no pod of the node is terminating (earlier apps' pods, deleted)."""
    lab.wait_for(lambda: not any(p.metadata.deletion_timestamp for p in
                                 kube.core.list_pod_for_all_namespaces().items),
                 300, 2.0, "no pod terminating on the node")


def concurrency(apps: Apps, figures: list[Figure]) -> None:
    """CONCURRENT apps (3 replicas each) rolled out at once by as many deployer processes:
    all must be promoted with their own lock; each one's time against a single deploy."""
    alone = Figure("one app deployed alone (deployer rolling)", "s")
    together = Figure(f"{CONCURRENT} apps at once: each app's time", "s")
    slowest = Figure(f"{CONCURRENT} apps at once: the last to finish", "s")
    ratio = Figure(f"{CONCURRENT} apps at once: median app / alone", "x",
                   note="2 cores and one kubelet shared by all")
    rss = Figure(f"{CONCURRENT} apps at once: peak RSS of one process", "MiB", target=150.0)
    cpu = Figure(f"{CONCURRENT} apps at once: CPU time of one process", "s",
                 note="user + system, start-up included")
    for _ in range(RUNS):
        settled(apps.kube)  # alone means alone: not beside the last round's 60 pods going
        ns = apps.new()
        took, proc = deployer(ns, "rolling", "--app", "hello", "--image", "v2")
        assert proc.returncode == 0, proc.stderr
        alone.samples.append(took)
        apps.done(ns)
        room(apps.kube, CONCURRENT * 4 + 5)
        spaces = [apps.new() for _ in range(CONCURRENT)]
        ended: dict[str, Any] = {}  # namespace -> (seconds, exit code, stdout, stderr)
        started = time.monotonic()

        def one(ns: str, ended: dict[str, Any] = ended, started: float = started) -> None:
            """One process; its own end is its time, not when it was collected."""
            cmd = [sys.executable, "-c", MEASURE_RSS_KEEP, DEPLOYER, *CONTEXT, "-n", ns, "-o",
                   "json", "rolling", "--app", "hello", "--image", "v2"]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            ended[ns] = (time.monotonic() - started, p.returncode, p.stdout, p.stderr)

        threads = [threading.Thread(target=one, args=(ns,)) for ns in spaces]
        for t in threads:
            t.start()
        for t in threads:
            t.join(700)
        for ns in spaces:
            took, code, out, err = ended[ns]
            report = json.loads(out)
            assert code == 0 and report["verdict"] == "promoted", (ns, err[-2000:])
            assert report["verifiedVersion"] == "2.0.0", report
            kib, seconds, _, _ = err.strip().splitlines()[-1].split()
            rss.samples.append(int(kib) / 1024)
            cpu.samples.append(float(seconds))
            # each app's lock taken and given back, its own release in place
            lease = apps.kube.coordination.read_namespaced_lease("deployer-hello", ns)
            assert lease.spec.holder_identity in ("", None), (ns, lease.spec.holder_identity)
            dep = apps.kube.apps.read_namespaced_deployment("hello", ns)
            assert dep.spec.template.spec.containers[0].image == "hello:v2", ns
        times = [ended[ns][0] for ns in spaces]
        together.samples.append(statistics.median(times))
        slowest.samples.append(max(times))
        ratio.samples.append(statistics.median(times) / alone.samples[-1])
        for ns in spaces:
            apps.done(ns)
    figures += [alone, together, slowest, ratio, rss, cpu]


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


def installed(online: bool = False) -> None:
    """deployer as a user has it, in a venv of its own: ``pip install`` of this checkout
    (a wheel, its modules compiled to bytecode) with its runtime dependencies only. The
    development venv is not what users start: it is an editable install that compiles
    deployer again at every start while $PYTHONDONTWRITEBYTECODE is set (about 0.08 s),
    and it holds the tools' dependencies (click, for import-linter), with which httpx
    imports its own command line, rich and pygments too (about 0.06 s).

    ``online`` (``bench/run.py --install``, which ``make bench`` runs before entering the
    lab, where there is no package index): make the venv and install the dependencies.
    Then, offline, this checkout as it is now over whatever was installed before."""
    python = INSTALLED / "bin" / "python"
    if online:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(INSTALLED)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "setuptools>=77",
                        str(REPO)], check=True)
    elif not python.exists():
        sys.exit(f"bench: {INSTALLED.relative_to(REPO)} is missing: make bench installs it "
                 "(or .venv/bin/python bench/run.py --install, outside the lab)")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--no-build-isolation", "--force-reinstall", str(REPO)], check=True)
    print(f"bench: deployer installed in {INSTALLED.relative_to(REPO)}", file=sys.stderr,
          flush=True)


def main() -> int:
    if "--install" in sys.argv[1:]:
        installed(online=True)
        return 0
    installed()
    kube = lab.default_kube()
    apps = Apps(kube)
    figures: list[Figure] = []
    try:
        parts = [startup, good_release, api_cost, verdicts, concurrency]
        chosen = [p for p in parts if p.__name__ in sys.argv[1:]] or parts  # e.g. api_cost
        for part in chosen:
            started = time.monotonic()
            part(apps, figures)
            print(f"bench: {part.__name__} measured in {time.monotonic() - started:.0f} s",
                  file=sys.stderr, flush=True)
    finally:  # what was measured is shown and kept even when a later part fails
        apps.close()
        print(table([f for f in figures if f.samples]))
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
