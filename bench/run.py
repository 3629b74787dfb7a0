"""Benchmarks, measured side by side in one run on the lab cluster (run via `make bench`).

1. Start-up: `deployer --help` against `python -c "import kubernetes.client"` (the
   client is imported lazily, so help must cost a fraction of that import).
2. Time to reject a missing image: deployer (decides from the pod's state) against
   `kubectl rollout status` (waits for the progress deadline, here 60 s).
3. Cost of verification on a good release: `deployer rolling` (rollout + /version on every
   pod, 3 samples each) against `kubectl set image` + `kubectl rollout status`.
4. Peak memory (max RSS) of one deployer run.

Prints one line per figure; exits non-zero if a target is missed.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e import lab  # noqa: E402

DEPLOYER = shutil.which("deployer", path=os.path.dirname(sys.executable)) or "deployer"
KUBECTL = shutil.which("kubectl") or "kubectl"
TARGETS = {
    "help_vs_client_import": 0.8,  # deployer --help costs < 80 % of importing the client
    "reject_speedup": 3.0,  # deployer rejects a missing image 3x faster than kubectl notices
    "verify_overhead_s": 15.0,  # verification adds less than 15 s to a good release
    "max_rss_mib": 150.0,
}


def timed(cmd: list[str], **kw) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return time.monotonic() - start, proc


def median_time(cmd: list[str], runs: int = 5) -> float:
    return statistics.median(timed(cmd)[0] for _ in range(runs))


def fresh_app(kube, progress_deadline: int = 60) -> str:
    ns = lab.create_namespace(kube, f"bench-{uuid.uuid4().hex[:6]}")
    lab.deploy_hello(kube, ns)
    kube.apps.patch_namespaced_deployment(
        "hello", ns, {"spec": {"progressDeadlineSeconds": progress_deadline}})
    lab.wait_deployment_available(kube, ns, "hello")
    return ns


MEASURE_RSS = ("import resource, subprocess, sys; "
               "code = subprocess.run(sys.argv[1:]).returncode; "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
               "sys.exit(code)")


def main() -> int:
    kube = lab.default_kube()
    results: dict[str, float] = {}
    namespaces: list[str] = []
    try:
        help_s = median_time([DEPLOYER, "--help"])
        import_s = median_time([sys.executable, "-c", "import kubernetes.client"])
        results["help_vs_client_import"] = help_s / import_s
        print(f"start-up: deployer --help {help_s * 1000:.0f} ms, import kubernetes.client "
              f"{import_s * 1000:.0f} ms: ratio {help_s / import_s:.2f}")

        ns_a, ns_b = fresh_app(kube), fresh_app(kube)
        namespaces += [ns_a, ns_b]
        t_dep, p = timed([DEPLOYER, "--context", "deployer-lab", "-n", ns_a, "rolling",
                          "--app", "hello", "--image", "v9"])
        assert p.returncode == 1, p.stderr
        subprocess.run([KUBECTL, "-n", ns_b, "set", "image", "deployment/hello",
                        "hello=hello:v9"], check=True, capture_output=True)
        t_kubectl, p = timed([KUBECTL, "-n", ns_b, "rollout", "status", "deployment/hello",
                              "--timeout=300s"])
        assert p.returncode != 0, "kubectl should report the failure"
        results["reject_speedup"] = t_kubectl / t_dep
        print(f"missing image: deployer rejected and rolled back in {t_dep:.1f} s; kubectl "
              f"rollout status noticed after {t_kubectl:.1f} s (progress deadline 60 s) and "
              f"undid nothing: {t_kubectl / t_dep:.1f}x faster")

        ns_c, ns_d = fresh_app(kube), fresh_app(kube)
        namespaces += [ns_c, ns_d]
        t_dep, p = timed([sys.executable, "-c", MEASURE_RSS, DEPLOYER, "--context",
                          "deployer-lab", "-n", ns_c, "rolling", "--app", "hello", "--image",
                          "v2"])
        assert p.returncode == 0, p.stderr
        rss_kib = int(p.stderr.strip().splitlines()[-1])
        start = time.monotonic()
        subprocess.run([KUBECTL, "-n", ns_d, "set", "image", "deployment/hello",
                        "hello=hello:v2"], check=True, capture_output=True)
        subprocess.run([KUBECTL, "-n", ns_d, "rollout", "status", "deployment/hello"],
                       check=True, capture_output=True)
        t_kubectl = time.monotonic() - start
        results["verify_overhead_s"] = t_dep - t_kubectl
        print(f"good release: deployer {t_dep:.1f} s (with /version verified on every pod), "
              f"kubectl {t_kubectl:.1f} s (rollout status only): +{t_dep - t_kubectl:.1f} s")

        results["max_rss_mib"] = rss_kib / 1024
        print(f"memory: peak RSS of that deployer run {rss_kib / 1024:.0f} MiB")
    finally:
        for ns in namespaces:
            lab.delete_namespace(kube, ns)

    missed = []
    for key, target in TARGETS.items():
        value = results[key]
        ok = value >= target if key == "reject_speedup" else value <= target
        print(f"target {key}: {value:.2f} ({'>=' if key == 'reject_speedup' else '<='} "
              f"{target}) {'met' if ok else 'MISSED'}")
        if not ok:
            missed.append(key)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
