#!/usr/bin/env python3
"""Build the lab's container images as OCI image archives (Python stdlib only).

Every image is one uncompressed layer built from a static binary that is already on
the machine, so nothing is pulled from a registry:

  docker.io/library/hello:v1   busybox httpd on :8080, /www/version = "1.0.0"
  docker.io/library/hello:v2   same, "2.0.0"
  docker.io/library/hello:v3   "3.0.0" but no /www/healthz: never Ready
  docker.io/library/hello:v4   entrypoint fails at start (exit 3): CrashLoopBackOff
  docker.io/library/hello:v5   Ready, but /www/version says "1.0.0" (a mislabelled build)
  docker.io/library/hello:v6   Ready, answers "6.0.0", but fails about 20% of the requests
                               to / with HTTP 500: a release only its error rate shows
  docker.io/library/hello:v7   a good build of "7.0.0": a third version, for histories
                               of more than two releases
  deployer.local/pause:lab     the pod sandbox image (the `pause` binary)

hello:v9 is deliberately never built: pulling it is a real ErrImagePull.

/www/version holds the version followed by one newline ("1.0.0\\n"); clients strip
whitespace. /www/healthz holds "ok\\n". / is the app itself, a CGI (/www/cgi-bin/index.cgi,
which busybox httpd runs for a directory without an index.html): it answers "hello
VERSION" and counts each request it served by status code. /metrics (redirected to
/metrics/, answered by the same CGI) gives those counts in the Prometheus text format:
http_requests_total{code="200"} and {code="500"}, both always present.

Archives are deterministic (fixed mtimes, owners and ordering), so rebuilding gives the
same digests. Each is a tar of `oci-layout`, `index.json` (annotated with
`io.containerd.image.name`) and blobs/sha256/ (layer, config, manifest), importable with
`ctr -n k8s.io images import FILE`.

Usage: lab/images.py OUTDIR [--busybox PATH] [--pause PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

EPOCH = 1577836800  # 2020-01-01T00:00:00Z, the mtime of every file in every image
CREATED = "2020-01-01T00:00:00Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"

# A shell as PID 1 that exits on SIGTERM: busybox httpd alone, as PID 1, has no handler,
# so the kernel ignores the signal and every pod would take its whole grace period to stop.
HTTPD = ["/bin/busybox", "sh", "-c",
         "trap 'exit 0' TERM INT; /bin/busybox httpd -f -p 8080 -h /www & wait"]
PAUSE_IMAGE = "deployer.local/pause:lab"


@dataclass(frozen=True)
class HelloSpec:
    tag: str
    served_version: str
    healthz: bool = True
    entrypoint: list[str] = field(default_factory=lambda: list(HTTPD))
    note: str = ""
    error_percent: int = 0  # of the requests to / answered with HTTP 500

    @property
    def name(self) -> str:
        return f"docker.io/library/hello:{self.tag}"


HELLO = [
    HelloSpec("v1", "1.0.0", note="good build"),
    HelloSpec("v2", "2.0.0", note="good build"),
    HelloSpec("v3", "3.0.0", healthz=False, note="no /www/healthz: readiness never passes"),
    HelloSpec(
        "v4",
        "4.0.0",
        entrypoint=[
            "/bin/busybox",
            "sh",
            "-c",
            "echo 'hello v4: fatal: config missing' >&2; exit 3",
        ],
        note="exits 3 at start: CrashLoopBackOff",
    ),
    HelloSpec("v5", "1.0.0", note="mislabelled build: serves 1.0.0"),
    HelloSpec("v6", "6.0.0", error_percent=20, note="fails about 20% of requests with 500"),
    HelloSpec("v7", "7.0.0", note="good build: a third version"),
]

# The app behind /, and its metrics behind /metrics/. Each request served appends one byte
# to /tmp/requests.CODE (an append of one byte is atomic, so concurrent requests need no
# lock, and busybox has no flock); the count is the file's size.
APP_CGI = """#!/bin/busybox sh
case "$REQUEST_URI" in
/metrics/*)
  printf 'Content-Type: text/plain; version=0.0.4\\r\\n\\r\\n'
  echo '# HELP http_requests_total Requests to / served, by HTTP status code.'
  echo '# TYPE http_requests_total counter'
  for code in 200 500; do
    n=0
    [ -f /tmp/requests.$code ] && n=$(/bin/busybox stat -c %s /tmp/requests.$code)
    echo "http_requests_total{code=\\"$code\\"} $n"
  done
  exit 0;;
esac
code=200
[ $((RANDOM % 100)) -lt {error_percent} ] && code=500
printf x >> /tmp/requests.$code
if [ $code = 500 ]; then
  printf 'Status: 500 Internal Server Error\\r\\nContent-Type: text/plain\\r\\n\\r\\n'
  echo 'hello {version}: internal error'
else
  printf 'Content-Type: text/plain\\r\\n\\r\\n'
  echo 'hello {version}'
fi
"""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical_json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class _TarWriter:
    """A tar writer that fixes owner, mtime and format so output is byte-identical."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.tar = tarfile.open(  # noqa: SIM115 - closed by getvalue()
            fileobj=self.buf, mode="w", format=tarfile.USTAR_FORMAT
        )

    def _info(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.mtime = EPOCH
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    def add_dir(self, name: str, mode: int = 0o755) -> None:
        self.tar.addfile(self._info(name.rstrip("/") + "/", tarfile.DIRTYPE, mode))

    def add_file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        info = self._info(name, tarfile.REGTYPE, mode)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))

    def add_symlink(self, name: str, target: str) -> None:
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.tar.addfile(info)

    def getvalue(self) -> bytes:
        self.tar.close()
        return self.buf.getvalue()


def hello_layer(spec: HelloSpec, busybox: bytes) -> bytes:
    w = _TarWriter()
    w.add_dir("bin")
    w.add_file("bin/busybox", busybox, 0o755)
    w.add_symlink("bin/sh", "busybox")
    w.add_dir("etc")
    w.add_file("etc/group", b"root:x:0:\n")
    w.add_file("etc/passwd", b"root:x:0:0:root:/:/bin/sh\n")
    w.add_dir("tmp", 0o1777)
    w.add_dir("www")
    if spec.healthz:
        w.add_file("www/healthz", b"ok\n")
    w.add_file("www/version", spec.served_version.encode() + b"\n")
    w.add_dir("www/metrics")  # /metrics redirects here; the CGI answers it
    w.add_dir("www/cgi-bin")
    w.add_file("www/cgi-bin/index.cgi", APP_CGI.replace("{error_percent}", str(
        spec.error_percent)).replace("{version}", spec.served_version).encode(), 0o755)
    return w.getvalue()


def pause_layer(pause: bytes) -> bytes:
    w = _TarWriter()
    w.add_file("pause", pause, 0o755)
    return w.getvalue()


def oci_archive(
    name: str, layer: bytes, entrypoint: list[str], labels: dict[str, str], ports: list[str]
) -> bytes:
    """One-image OCI layout as a tar, with `name` in the index annotations."""
    layer_digest = "sha256:" + _sha256(layer)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": CREATED,
        "config": {
            "Entrypoint": entrypoint,
            "Env": [PATH_ENV],
            "ExposedPorts": {p: {} for p in ports},
            "Labels": labels,
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": CREATED, "created_by": f"lab/images.py {name}"}],
    }
    config_bytes = _canonical_json(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {
            "mediaType": MT_CONFIG,
            "digest": "sha256:" + _sha256(config_bytes),
            "size": len(config_bytes),
        },
        "layers": [{"mediaType": MT_LAYER, "digest": layer_digest, "size": len(layer)}],
    }
    manifest_bytes = _canonical_json(manifest)
    tag = name.rsplit(":", 1)[1]
    index = {
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [
            {
                "mediaType": MT_MANIFEST,
                "digest": "sha256:" + _sha256(manifest_bytes),
                "size": len(manifest_bytes),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": tag,
                },
            }
        ],
    }
    blobs = {_sha256(b): b for b in (layer, config_bytes, manifest_bytes)}
    w = _TarWriter()
    w.add_file("oci-layout", _canonical_json({"imageLayoutVersion": "1.0.0"}))
    w.add_file("index.json", _canonical_json(index))
    w.add_dir("blobs")
    w.add_dir("blobs/sha256")
    for digest in sorted(blobs):
        w.add_file(f"blobs/sha256/{digest}", blobs[digest])
    return w.getvalue()


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def build_all(outdir: Path, busybox: Path, pause: Path | None) -> dict[str, Path]:
    """Write one archive per image into outdir; return {image name: archive path}."""
    outdir.mkdir(parents=True, exist_ok=True)
    busybox_bytes = busybox.read_bytes()
    built: dict[str, Path] = {}
    for spec in HELLO:
        archive = oci_archive(
            spec.name,
            hello_layer(spec, busybox_bytes),
            spec.entrypoint,
            {"deployer.lab/build": spec.tag, "deployer.lab/note": spec.note},
            ["8080/tcp"],
        )
        path = outdir / f"hello-{spec.tag}.tar"
        _write_if_changed(path, archive)
        built[spec.name] = path
    if pause is not None:
        archive = oci_archive(
            PAUSE_IMAGE, pause_layer(pause.read_bytes()), ["/pause"], {}, []
        )
        path = outdir / "pause.tar"
        _write_if_changed(path, archive)
        built[PAUSE_IMAGE] = path
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--busybox", type=Path, default=Path("/usr/bin/busybox"))
    parser.add_argument("--pause", type=Path, help="a static pause binary (for the sandbox image)")
    args = parser.parse_args(argv)
    if not args.busybox.is_file():
        print(f"images.py: {args.busybox} not found (install busybox-static)", file=sys.stderr)
        return 1
    for name, path in build_all(args.outdir, args.busybox, args.pause).items():
        print(f"{name}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
