"""The lab's image registry, for the tests of private images and of a busy registry.

Two processes, both inside the lab's network namespace on the node address:
- ``registry``: Debian's docker-registry (the CNCF distribution registry) on
  REGISTRY, plain HTTP, htpasswd auth (user USER). A pod pulls from it with an
  imagePullSecret; a wrong secret gets "401 Unauthorized".
- ``registry-front``: FRONT, a small proxy in front of it (this file, run as a
  script) that adds the registry's credentials, so that pods pull without a secret,
  and answers "429 Too Many Requests" to every manifest request for S seconds once
  armed: ``POST /lab/arm?seconds=S`` (containerd retries a 429 a few times by itself
  before the kubelet sees it); ``GET /lab/stats`` says how many it answered so.

containerd reaches both over plain HTTP through its registry host config
(``config_path``, one ``hosts.toml`` per host). lab/up pushes the demo images to
``REGISTRY/private/hello:TAG`` with ctr and removes the local tags, so that a pod
using such an image really pulls it.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

NODE_IP = "10.200.0.1"
REGISTRY = f"{NODE_IP}:5000"
FRONT = f"{NODE_IP}:5001"
USER = "lab"
PUSHED = ("v1", "v2")  # tags of the demo image pushed as private/hello


def password_file(root: Path) -> Path:
    return root / "config" / "registry" / "password"


def write_config(root: Path, config: Path) -> dict[str, list[str]]:
    """The registry's config, its htpasswd, containerd's host config; the two argvs."""
    reg = config / "registry"
    reg.mkdir(parents=True, exist_ok=True)
    password = password_file(root)
    if not password.exists():
        password.write_text(base64.b32encode(os.urandom(10)).decode().lower())
        password.chmod(0o600)
    secret = password.read_text().strip()
    htpasswd = subprocess.run(["htpasswd", "-nbB", USER, secret], capture_output=True,
                              text=True, check=True).stdout.strip()
    (reg / "htpasswd").write_text(htpasswd + "\n")
    (reg / "config.yml").write_text(f"""\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}/registry
  delete:
    enabled: true
http:
  addr: {REGISTRY}
auth:
  htpasswd:
    realm: deployer-lab
    path: {reg}/htpasswd
""")
    for host in (REGISTRY, FRONT):
        d = config / "certs.d" / host
        d.mkdir(parents=True, exist_ok=True)
        (d / "hosts.toml").write_text(f"""\
server = "http://{host}"

[host."http://{host}"]
  capabilities = ["pull", "resolve"]
""")
    return {
        "registry": ["docker-registry", "serve", f"{reg}/config.yml"],
        "registry-front": [sys.executable, str(Path(__file__).resolve()), "--root", str(root)],
    }


def push_images(root: Path, ctr: list[str]) -> list[str]:
    """Push the demo images to the registry as private/hello:TAG; the local tags go."""
    secret = password_file(root).read_text().strip()
    pushed = []
    for tag in PUSHED:
        ref = f"{REGISTRY}/private/hello:{tag}"
        subprocess.run([*ctr, "images", "tag", "--force", f"docker.io/library/hello:{tag}",
                        ref], capture_output=True, text=True, check=True)
        subprocess.run([*ctr, "images", "push", "--plain-http", "--user",
                        f"{USER}:{secret}", ref], capture_output=True, text=True,
                       check=True, timeout=60)
        subprocess.run([*ctr, "images", "rm", ref], capture_output=True, text=True,
                       check=True)
        pushed.append(ref)
    return pushed


def registry_ready() -> bool:
    try:
        conn = http.client.HTTPConnection(REGISTRY, timeout=2)
        conn.request("GET", "/v2/")
        return conn.getresponse().status == 401  # up, and asking for credentials
    except OSError:
        return False


def front_ready() -> bool:
    try:
        conn = http.client.HTTPConnection(FRONT, timeout=2)
        conn.request("GET", "/lab/stats")
        return conn.getresponse().status == 200
    except OSError:
        return False


# ---------------------------------------------------------------------- the front


class Front:
    def __init__(self, secret: str):
        self.auth = "Basic " + base64.b64encode(f"{USER}:{secret}".encode()).decode()
        self.lock = threading.Lock()
        self.until = 0.0  # time.monotonic() until which manifests answer 429
        self.answered_429 = 0

    def take_429(self, path: str) -> bool:
        if "/manifests/" not in path:
            return False
        with self.lock:
            if time.monotonic() >= self.until:
                return False
            self.answered_429 += 1
            return True


def handler(front: Front) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            sys.stderr.write("front: " + (format % args) + "\n")

        def _send(self, status: int, body: bytes, kind: str = "application/json",
                  extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _lab(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/lab/arm" and self.command == "POST":
                seconds = float(parse_qs(url.query).get("seconds", ["10"])[0])
                with front.lock:
                    front.until = time.monotonic() + seconds
            with front.lock:
                stats = {"armedFor": round(max(front.until - time.monotonic(), 0), 1),
                         "answered429": front.answered_429}
            self._send(200, json.dumps(stats).encode())

        def _forward(self) -> None:
            if front.take_429(self.path):
                self._send(429, b'{"errors":[{"code":"TOOMANYREQUESTS","message":'
                                b'"too many requests"}]}', extra={"Retry-After": "1"})
                return
            conn = http.client.HTTPConnection(REGISTRY, timeout=30)
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("host", "authorization", "connection")}
            headers["Authorization"] = front.auth
            conn.request(self.command, self.path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("content-length", "connection", "transfer-encoding",
                                     "www-authenticate"):
                    self.send_header(k, v)
            self.send_header("Content-Length", resp.getheader("Content-Length") or
                             str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            conn.close()

        def do_GET(self) -> None:  # noqa: N802
            self._lab() if self.path.startswith("/lab/") else self._forward()

        def do_HEAD(self) -> None:  # noqa: N802
            self._forward()

        def do_POST(self) -> None:  # noqa: N802
            if self.path.startswith("/lab/"):
                self._lab()
            else:
                self._send(405, b'{"errors":[{"code":"UNSUPPORTED"}]}')

    return Handler


def serve(root: Path) -> None:
    front = Front(password_file(root).read_text().strip())
    host, port = FRONT.split(":")
    ThreadingHTTPServer((host, int(port)), handler(front)).serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--root":
        print("usage: registry.py --root LAB_DIR   (the lab's registry front; lab/up runs it)",
              file=sys.stderr)
        sys.exit(2)
    serve(Path(sys.argv[2]))
