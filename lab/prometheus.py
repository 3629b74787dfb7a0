#!/usr/bin/env python3
"""The lab's Prometheus, for analysis by metrics.

Two processes inside the lab's network namespace:
- ``prometheus``: Debian's prometheus on ADDRESS (127.0.0.1:9090 in the namespace),
  scraping every pod marked ``prometheus.io/scrape: "true"`` every SCRAPE seconds, each
  series labelled with the pod's ``namespace``, ``pod``, and its ``app``, ``track``,
  ``version`` and ``pod_template_hash`` labels. Debian's build has no Kubernetes service
  discovery, so it reads its targets from a file (``file_sd_configs``).
- ``prom-targets``: this file run as a script: it watches the lab's pods through the API
  server and writes that file whenever the scraped pods change (their address, port,
  ``prometheus.io/port`` and ``prometheus.io/path``, and labels).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import ssl
import sys
import time
from pathlib import Path

ADDRESS = "127.0.0.1:9090"
SCRAPE = 2  # seconds between scrapes (and between reads of the targets file)
APISERVER = ("127.0.0.1", 6443)
# Pod labels carried over, as Prometheus label names (a "-" is not allowed in one).
LABELS = {"app": "app", "track": "track", "version": "version",
          "pod-template-hash": "pod_template_hash"}


def targets_file(config: Path) -> Path:
    return config / "prometheus" / "targets.json"


def write_config(root: Path, config: Path) -> dict[str, list[str]]:
    """Prometheus's config; the two argvs."""
    d = config / "prometheus"
    d.mkdir(parents=True, exist_ok=True)
    targets = targets_file(config)
    if not targets.exists():
        targets.write_text("[]\n")
    (d / "targets.fed").unlink(missing_ok=True)  # written again by this start's feeder
    (d / "prometheus.yml").write_text(f"""\
global:
  scrape_interval: {SCRAPE}s
  scrape_timeout: {SCRAPE}s
  evaluation_interval: {SCRAPE}s
scrape_configs:
  - job_name: pods
    file_sd_configs:
      - files: [{targets}]
        refresh_interval: {SCRAPE}s
""")
    return {
        "prometheus": ["prometheus", f"--config.file={d}/prometheus.yml",
                       f"--storage.tsdb.path={root}/prometheus",
                       "--storage.tsdb.retention.time=6h",
                       f"--web.listen-address={ADDRESS}"],
        "prom-targets": [sys.executable, str(Path(__file__).resolve()), "--root", str(root)],
    }


def feeding(config: Path) -> bool:
    """The feeder has written the targets at least once since it started."""
    return (config / "prometheus" / "targets.fed").exists()


# ------------------------------------------------------------------- the feeder


def target(pod: dict) -> dict | None:
    """A pod's scrape target group, or None when it is not scraped (not marked, no
    address yet, not running)."""
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    notes = meta.get("annotations") or {}
    if notes.get("prometheus.io/scrape") != "true" or not status.get("podIP") \
            or status.get("phase") != "Running":
        return None
    port = notes.get("prometheus.io/port")
    if port is None:
        ports = [p.get("containerPort") for c in spec.get("containers") or []
                 for p in c.get("ports") or []]
        if not ports:
            return None
        port = str(ports[0])
    labels = {"namespace": meta.get("namespace", ""), "pod": meta["name"],
              "__metrics_path__": notes.get("prometheus.io/path", "/metrics")}
    for name, label in LABELS.items():
        if name in (meta.get("labels") or {}):
            labels[label] = meta["labels"][name]
    return {"targets": [f"{status['podIP']}:{port}"], "labels": labels}


class Feeder:
    def __init__(self, root: Path) -> None:
        pki = root / "pki"
        self.ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self.ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        self.file = targets_file(root / "config")
        self.pods: dict[str, dict] = {}
        self.written = ""

    def _get(self, path: str, timeout: float) -> http.client.HTTPResponse:
        conn = http.client.HTTPSConnection(*APISERVER, context=self.ctx, timeout=timeout)
        conn.request("GET", path, headers={"Accept": "application/json"})
        response = conn.getresponse()
        if response.status != 200:
            raise OSError(f"GET {path}: HTTP {response.status}")
        return response

    def write(self) -> None:
        groups = sorted((g for g in map(target, self.pods.values()) if g),
                        key=lambda g: (g["labels"]["namespace"], g["labels"]["pod"]))
        text = json.dumps(groups, indent=1) + "\n"
        if text != self.written:
            temp = self.file.with_suffix(".tmp")
            temp.write_text(text)
            os.replace(temp, self.file)  # Prometheus never reads half a file
            self.written = text
        (self.file.parent / "targets.fed").touch()

    def run(self) -> None:
        while True:
            try:
                listed = json.loads(self._get("/api/v1/pods", 10).read())
                self.pods = {p["metadata"]["uid"]: p for p in listed["items"]}
                self.write()
                self.watch(listed["metadata"]["resourceVersion"])
            except (OSError, ValueError, KeyError, http.client.HTTPException) as exc:
                print(f"prom-targets: {exc}; listing again in 1 s", file=sys.stderr,
                      flush=True)
                time.sleep(1)

    def watch(self, version: str) -> None:
        response = self._get(f"/api/v1/pods?watch=1&resourceVersion={version}"
                             "&timeoutSeconds=300&allowWatchBookmarks=true", 330)
        for line in response:
            event = json.loads(line)
            kind, pod = event["type"], event["object"]
            if kind == "ERROR":
                return  # e.g. 410 Gone: list again
            if kind == "BOOKMARK":
                continue
            uid = pod["metadata"]["uid"]
            if kind == "DELETED":
                self.pods.pop(uid, None)
            else:
                self.pods[uid] = pod
            self.write()


def main() -> int:
    parser = argparse.ArgumentParser(description="feed the lab's pods to its Prometheus")
    parser.add_argument("--root", type=Path, required=True)
    Feeder(parser.parse_args().root).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
