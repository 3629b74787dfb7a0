"""Shared code of lab/up, lab/down and lab/status (Python stdlib only).

The lab is a single-node Kubernetes whose processes all live in one network namespace
(`deployer-lab`), with every file under one state directory (DEPLOYER_LAB_DIR,
/var/lib/deployer-lab by default). Everything here identifies the lab's processes by
the PIDs recorded at start (verified against their command line) or, for containerd's
shims, by the lab's containerd socket path on their command line: never by a broad name.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

NETNS = "deployer-lab"
NETNS_PATH = Path("/run/netns") / NETNS
NODE_NAME = "lab-node"
NODE_IP = "10.200.0.1"
CLIENT_IPS = [f"10.200.0.{i}" for i in range(2, 42)]
# A /22 of client addresses (1022), enough that a canary's share of clients can be told
# from none at small weights: deployer calls Services from them (lab/run's default uses 200).
CLIENT_NET = "10.201.0.0/22"
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
POD_SUBNET = "10.244.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
PAUSE_IMAGE = "deployer.local/pause:lab"
APISERVER = ("127.0.0.1", 6443)
MARKER = ".deployer-lab"
# Which state directory the (single) lab network namespace currently belongs to.
OWNER_FILE = Path("/run/deployer-lab.dir")

# The lab's processes (lab/up and teardown() each start and stop them in their own order).
COMPONENTS = [
    "etcd",
    "containerd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "registry",
    "registry-front",
    "prometheus",
    "prom-targets",
]

# Host-wide kernel settings the kubelet rewrites at start (its "kernel tunables"); lab/up
# records them first and lab/down puts them back.
KUBELET_TUNABLES = [
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
]

CLONE_NEWNET = 0x40000000
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CNI_NETNS_RE = re.compile(rb"cni-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


_T0 = time.monotonic()
_DEBUG = bool(os.environ.get("DEPLOYER_LAB_DEBUG"))


def say(msg: str) -> None:
    stamp = f"[{time.monotonic() - _T0:5.1f}s] " if _DEBUG else ""
    print(f"lab: {stamp}{msg}", flush=True)


def debug(msg: str) -> None:
    if _DEBUG:
        say(msg)


def warn(msg: str) -> None:
    print(f"lab: warning: {msg}", file=sys.stderr, flush=True)


class LabError(Exception):
    pass


@dataclass(frozen=True)
class Lab:
    root: Path

    @classmethod
    def from_env(cls) -> Lab:
        raw = os.environ.get("DEPLOYER_LAB_DIR") or "/var/lib/deployer-lab"
        return cls(Path(os.path.abspath(os.path.expanduser(raw))))

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def containerd(self) -> Path:
        return self.root / "containerd"

    @property
    def containerd_sock(self) -> Path:
        return self.containerd / "containerd.sock"

    @property
    def kubelet(self) -> Path:
        return self.root / "kubelet"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def tunables_file(self) -> Path:
        return self.root / "host-tunables.json"

    def pid_file(self, name: str) -> Path:
        return self.pids / f"{name}.pid"


# ----------------------------------------------------------------------------- processes


def proc_state(pid: int) -> str | None:
    """The one-letter state of a process, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def pid_alive(pid: int) -> bool:
    state = proc_state(pid)
    return state is not None and state not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def all_processes() -> dict[int, tuple[int, list[str]]]:
    """pid -> (ppid, argv) for every process we can see."""
    procs: dict[int, tuple[int, list[str]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        procs[pid] = (ppid, cmdline(pid))
    return procs


def descendants(pid: int, procs: dict[int, tuple[int, list[str]]]) -> list[int]:
    children: dict[int, list[int]] = {}
    for p, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(p)
    out: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def component_pid(lab: Lab, name: str) -> int | None:
    """The live PID recorded for a component, if it is still the lab's process.

    A PID file can outlive its process (and the PID can be reused): the process only
    counts when it is alive and its command line mentions the lab directory.
    """
    try:
        pid = int(lab.pid_file(name).read_text().strip())
    except (OSError, ValueError):
        return None
    if not pid_alive(pid):
        return None
    if not any(str(lab.root) in arg for arg in cmdline(pid)):
        return None
    return pid


def stop_pids(pids: list[int], timeout: float = 10.0) -> None:
    """SIGTERM, wait up to `timeout`, then SIGKILL whatever is left."""
    pids = [p for p in pids if pid_alive(p)]
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            pids = [p for p in pids if pid_alive(p)]
            if not pids:
                return
            time.sleep(0.05)
    if pids:
        warn(f"processes still alive after SIGKILL: {pids}")


def stop_components(lab: Lab, names: list[str], timeout: float = 10.0) -> None:
    found = {n: component_pid(lab, n) for n in names}
    running = {n: p for n, p in found.items() if p is not None}
    if running:
        say("stopping " + ", ".join(f"{n} ({p})" for n, p in running.items()))
        stop_pids(list(running.values()), timeout)
    for n in names:
        with contextlib.suppress(FileNotFoundError):
            lab.pid_file(n).unlink()


def lab_shims(lab: Lab) -> list[int]:
    """containerd shims started by the lab's containerd (its socket is on their argv)."""
    sock = str(lab.containerd_sock)
    shims = []
    for pid, (_, argv) in all_processes().items():
        if argv and "containerd-shim" in os.path.basename(argv[0]) and sock in argv:
            shims.append(pid)
    return shims


# ----------------------------------------------------------------------------- netns

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def netns_exists() -> bool:
    """True when /run/netns/deployer-lab is a live namespace (not just a stale file)."""
    if not NETNS_PATH.exists():
        return False
    try:
        fd = os.open(NETNS_PATH, os.O_RDONLY)
    except OSError:
        return False
    try:
        # An unmounted placeholder file lives on /run's tmpfs, a namespace on nsfs.
        return os.fstat(fd).st_dev != os.stat(NETNS_PATH.parent).st_dev
    finally:
        os.close(fd)


def netns_owner() -> Path | None:
    try:
        return Path(OWNER_FILE.read_text().strip())
    except OSError:
        return None


def enter_netns() -> None:
    """Move this (single-threaded) process into the lab's network namespace for good."""
    fd = os.open(NETNS_PATH, os.O_RDONLY)
    try:
        _setns(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def in_netns() -> Iterator[None]:
    """Run a block inside the lab's network namespace, then come back."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        enter_netns()
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


# ----------------------------------------------------------------------------- API


class Api:
    """A tiny client for the lab's API server, as the admin user (only inside the netns)."""

    def __init__(self, lab: Lab, timeout: float = 5.0) -> None:
        self.ctx = ssl.create_default_context(cafile=str(lab.pki / "ca.crt"))
        self.ctx.load_cert_chain(str(lab.pki / "admin.crt"), str(lab.pki / "admin.key"))
        self.timeout = timeout

    def request(
        self, method: str, path: str, body: object | None = None
    ) -> tuple[int, object]:
        conn = http.client.HTTPSConnection(*APISERVER, context=self.ctx, timeout=self.timeout)
        try:
            headers = {"Accept": "application/json"}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            parsed: object = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return resp.status, parsed

    def get(self, path: str) -> dict:
        status, obj = self.request("GET", path)
        if status != 200 or not isinstance(obj, dict):
            raise LabError(f"GET {path}: HTTP {status}: {obj}")
        return obj

    def ok(self, path: str) -> bool:
        try:
            return self.request("GET", path)[0] == 200
        except (OSError, http.client.HTTPException):
            return False


def node_ready(api: Api) -> bool:
    try:
        node = api.get(f"/api/v1/nodes/{NODE_NAME}")
    except (LabError, OSError, http.client.HTTPException):
        return False
    for cond in node.get("status", {}).get("conditions", []):
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """GET url (http or https without verification) and report a 200 answer."""
    import urllib.request

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as resp:
            return resp.status == 200
    except (OSError, http.client.HTTPException):
        return False


# ----------------------------------------------------------------------------- health


def healthy(lab: Lab) -> tuple[bool, str]:
    """Is a complete lab running? Returns (healthy, reason when not)."""
    if not (lab.root / MARKER).exists():
        return False, "no lab directory"
    dead = [n for n in COMPONENTS if component_pid(lab, n) is None]
    if dead:
        return False, "not running: " + ", ".join(dead)
    if not netns_exists():
        return False, f"no network namespace {NETNS_PATH}"
    try:
        with in_netns():
            api = Api(lab, timeout=3)
            if not api.ok("/readyz"):
                return False, "the API server is not ready"
            if not node_ready(api):
                return False, f"node {NODE_NAME} is not Ready"
    except (OSError, ssl.SSLError) as e:
        return False, f"cannot reach the API server: {e}"
    return True, ""


# ----------------------------------------------------------------------------- teardown


def _run(argv: list[str], timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        warn(f"timed out: {' '.join(argv)}")
        return subprocess.CompletedProcess(argv, 124, "", "timeout")
    except FileNotFoundError:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: not found")


def _ctr(lab: Lab, *args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return _run(["ctr", "-a", str(lab.containerd_sock), "-n", "k8s.io", *args], timeout)


def pod_netns_dir(lab: Lab) -> Path:
    """Where the lab's containerd keeps pod network namespaces (netns_mounts_under_state_dir)."""
    return lab.containerd / "state" / "io.containerd.grpc.v1.cri" / "netns"


def _pod_netns_left(lab: Lab) -> list[str]:
    try:
        return sorted(p.name for p in pod_netns_dir(lab).iterdir())
    except OSError:
        return []


def _delete_pods_through_api(lab: Lab) -> set[str]:
    """Delete every pod and wait until the kubelet has stopped their sandboxes.

    The kubelet stops each pod's sandbox through CRI, which is what tears down the pod's
    network and removes its network namespace (a bare `ctr` cleanup would leave them).
    Returns the UIDs of the pods seen (to find their log directories later).
    """
    uids: set[str] = set()
    kubelet_alive = component_pid(lab, "kubelet") is not None
    try:
        with in_netns():
            api = Api(lab, timeout=5)
            if not api.ok("/readyz"):
                return uids
            pods = api.get("/api/v1/pods").get("items", [])
            uids = {p["metadata"]["uid"] for p in pods}
            namespaces = sorted({p["metadata"]["namespace"] for p in pods})
            if not namespaces:
                return uids
            say(f"deleting {len(pods)} pod(s) in {', '.join(namespaces)} through the API")
            # Without the kubelet nothing would ever confirm a graceful delete.
            grace = 1 if kubelet_alive else 0
            for ns in namespaces:
                api.request(
                    "DELETE",
                    f"/api/v1/namespaces/{ns}/pods",
                    {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": grace},
                )
            if not kubelet_alive:
                return uids
            # Done when every sandbox is stopped (its netns gone), or every pod object is
            # gone (the kubelet confirms deletions only every few seconds).
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                time.sleep(0.3)
                if pod_netns_dir(lab).is_dir() and not _pod_netns_left(lab):
                    return uids
                if not api.get("/api/v1/pods").get("items"):
                    return uids
            warn("pods still present after 30 s; cleaning up below the kubelet")
    except (OSError, ssl.SSLError, LabError, http.client.HTTPException) as e:
        warn(f"could not delete pods through the API: {e}")
    return uids


def _remove_pod_logs(lab: Lab, uids: set[str]) -> None:
    """Remove /var/log/pods/<ns>_<pod>_<uid> of the lab's pods (and their symlinks).

    The kubelet and containerd keep container logs there whatever the root directory;
    a pod is the lab's when its UID is known to the lab's API server, kubelet or
    containerd (their state or their logs).
    """
    with contextlib.suppress(OSError):
        uids |= {p.name for p in (lab.kubelet / "pods").iterdir()}
    # containerd logs every RunPodSandbox with the pod's UID (and the kubelet logs it too).
    for logs in (lab.logs, lab.root / "logs.previous"):
        for name in ("containerd.log", "kubelet.log"):
            with contextlib.suppress(OSError):
                uids |= set(_UUID_RE.findall((logs / name).read_text(errors="replace")))
    db = lab.containerd / "root" / "io.containerd.metadata.v1.bolt" / "meta.db"
    with contextlib.suppress(OSError):
        for m in re.findall(rb"/var/log/pods/[^/\x00\"]+_([0-9a-f-]{36})", db.read_bytes()):
            uids.add(m.decode())
    removed = []
    for d in Path("/var/log/pods").glob("*_*_*"):
        if d.name.rsplit("_", 1)[-1] in uids:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(str(d))
    if not removed:
        return
    for link in Path("/var/log/containers").glob("*.log"):
        with contextlib.suppress(OSError):
            if link.is_symlink() and any(os.readlink(link).startswith(r + "/") for r in removed):
                link.unlink()


def _lab_cni_netns(lab: Lab) -> list[str]:
    """Names of /run/netns/cni-* namespaces that the lab's containerd created.

    containerd records each sandbox's netns path in its metadata database; reading the
    names straight from that file works even when containerd itself is gone.
    """
    names: set[str] = set()
    db = lab.containerd / "root" / "io.containerd.metadata.v1.bolt" / "meta.db"
    with contextlib.suppress(OSError):
        names.update(m.decode() for m in _CNI_NETNS_RE.findall(db.read_bytes()))
    return sorted(n for n in names if (NETNS_PATH.parent / n).exists())


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root).rstrip("/") + "/"
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mnt = line.split()[4]
        mnt = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), mnt)
        if mnt == str(root) or mnt.startswith(prefix):
            found.append(mnt)
    return found


def unmount_under(root: Path) -> list[str]:
    """Lazily unmount everything at or below root, deepest first. Returns what is left."""
    for _ in range(10):
        mounts = _mounts_under(root)
        if not mounts:
            return []
        # Deepest first; among equals, the most recently mounted first.
        order = sorted(enumerate(mounts), key=lambda im: (im[1].count("/"), im[0]), reverse=True)
        for _, mnt in order:
            _run(["umount", "-l", mnt], timeout=10)
    return _mounts_under(root)


def _lab_container_ids(lab: Lab) -> set[str]:
    """IDs of the containers (and sandboxes) that the lab's containerd still knows."""
    ids: set[str] = set()
    with contextlib.suppress(OSError):
        tasks = lab.containerd / "state" / "io.containerd.runtime.v2.task" / "k8s.io"
        ids |= {p.name for p in tasks.iterdir()}
    if component_pid(lab, "containerd") is not None:
        ids |= set(_ctr(lab, "containers", "ls", "-q").stdout.split())
    return {i for i in ids if re.fullmatch(r"[0-9a-f]{64}", i)}


def container_processes(ids: set[str]) -> list[int]:
    """Processes in the cgroup of one of the given containers (runc puts each container
    in /k8s.io/<id> of every hierarchy)."""
    if not ids:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            lines = Path(f"/proc/{entry}/cgroup").read_text().splitlines()
        except OSError:
            continue
        if any(line.rsplit("/", 1)[-1] in ids and "/k8s.io/" in line for line in lines):
            found.append(int(entry))
    return found


def remove_container_cgroups(ids: set[str]) -> None:
    """Remove the cgroups runc made for the lab's containers (/k8s.io/<id> everywhere)."""
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        for cid in ids:
            with contextlib.suppress(OSError):
                (hierarchy / "k8s.io" / cid).rmdir()


def save_tunables(lab: Lab) -> None:
    if lab.tunables_file.exists():
        return
    values = {}
    for name in KUBELET_TUNABLES:
        with contextlib.suppress(OSError):
            values[name] = Path("/proc/sys", name).read_text().strip()
    lab.tunables_file.write_text(json.dumps(values, indent=1) + "\n")


def restore_tunables(lab: Lab) -> None:
    try:
        values = json.loads(lab.tunables_file.read_text())
    except (OSError, ValueError):
        return
    for name, value in values.items():
        path = Path("/proc/sys", name)
        try:
            if path.read_text().strip() != value:
                path.write_text(value + "\n")
        except OSError as e:
            warn(f"could not restore {path}: {e}")


def wipe_state(lab: Lab, keep: tuple[str, ...] = ("logs", "logs.previous", MARKER)) -> None:
    if not lab.root.exists():
        return
    left = _mounts_under(lab.root)
    if left:
        raise LabError(f"refusing to delete {lab.root}: still mounted: {left[:5]}")
    for entry in lab.root.iterdir():
        if entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


@contextlib.contextmanager
def locked(lab: Lab, create: bool) -> Iterator[None]:
    """Hold the lab's lock (a flock on its directory) so that up/down never overlap."""
    if create:
        lab.root.mkdir(parents=True, exist_ok=True)
    elif not lab.root.is_dir():
        yield
        return
    fd = os.open(lab.root, os.O_RDONLY | os.O_DIRECTORY)  # not inherited by children
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("waiting for another lab/up or lab/down to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def check_lab_dir(lab: Lab) -> None:
    """Refuse to touch a directory that is not (or was never) a lab directory."""
    if lab.root.exists() and any(lab.root.iterdir()) and not (lab.root / MARKER).exists():
        raise LabError(
            f"{lab.root} exists, is not empty and was not made by lab/up; "
            "point DEPLOYER_LAB_DIR somewhere else or empty it"
        )


def teardown(lab: Lab) -> bool:
    """Stop and clean up everything a (possibly half-dead) lab left. Idempotent.

    Returns True when there was anything to clean.
    """
    check_lab_dir(lab)
    other = netns_owner()
    if (
        other is not None
        and other != lab.root
        and netns_exists()
        and any(component_pid(Lab(other), n) for n in COMPONENTS)
    ):
        raise LabError(
            f"the lab network namespace belongs to a running lab in {other}: "
            f"stop it first (DEPLOYER_LAB_DIR={other} lab/down)"
        )
    had_netns = netns_exists()
    running = {n: component_pid(lab, n) for n in COMPONENTS}
    anything = (
        had_netns
        or NETNS_PATH.exists()
        or any(running.values())
        or bool(lab_shims(lab))
        or (lab.root.exists() and bool(_mounts_under(lab.root)))
        or (lab.pids.exists() and any(lab.pids.iterdir()))
    )
    if not anything:
        if lab.root.exists():
            restore_tunables(lab)
            wipe_state(lab)
        return False

    # 1. Pods go through the API first, so that the kubelet removes their sandboxes (and
    #    network namespaces) through CRI. The controller-manager and scheduler stop first
    #    so that no controller recreates what is being deleted.
    pod_uids: set[str] = set()
    if had_netns and running["kube-apiserver"] and (lab.pki / "admin.crt").exists():
        stop_components(lab, ["kube-controller-manager", "kube-scheduler"], timeout=5)
        pod_uids = _delete_pods_through_api(lab)

    # 2. The kubelet, then whatever containers are left, straight through containerd.
    stop_components(lab, ["kubelet"], timeout=10)
    container_ids = _lab_container_ids(lab)
    if component_pid(lab, "containerd") is not None:
        tasks = _ctr(lab, "tasks", "ls", "-q").stdout.split()
        for task in tasks:
            _ctr(lab, "tasks", "kill", "-s", "SIGKILL", task, timeout=10)
        for task in tasks:
            _ctr(lab, "tasks", "delete", "-f", task, timeout=10)
        containers = _ctr(lab, "containers", "ls", "-q").stdout.split()
        if containers:
            _ctr(lab, "containers", "delete", *containers, timeout=30)
        if tasks or containers:
            say(f"removed {len(tasks)} task(s) and {len(containers)} container(s) with ctr")
    cni_netns = _lab_cni_netns(lab)

    # 3. containerd and its shims (with whatever still runs under them), then container
    #    processes whose shim is already gone (found by their container's cgroup).
    stop_components(lab, ["containerd"], timeout=10)
    shims = lab_shims(lab)
    if shims:
        procs = all_processes()
        inside = sorted({d for s in shims for d in descendants(s, procs)})
        say(f"stopping {len(shims)} containerd shim(s) of the lab and {len(inside)} process(es)")
        stop_pids(inside, timeout=2)
        stop_pids(shims, timeout=5)
    orphans = container_processes(container_ids)
    if orphans:
        say(f"stopping {len(orphans)} container process(es) left without their shim")
        stop_pids(orphans, timeout=0.5)

    # 4. The lab's Prometheus and registry, the control plane, etcd last.
    stop_components(lab, ["prom-targets", "prometheus", "registry-front", "registry"], 5)
    stop_components(lab, ["kube-proxy", "kube-scheduler", "kube-controller-manager"], 5)
    stop_components(lab, ["kube-apiserver"], timeout=10)
    stop_components(lab, ["etcd"], timeout=10)

    # 5. Mounts, the pods' network namespaces, the lab's own network namespace.
    if lab.root.exists():
        mounted = len(_mounts_under(lab.root))
        left = unmount_under(lab.root)
        if left:
            warn(f"still mounted under {lab.root}: {left}")
        elif mounted:
            say(f"unmounted {mounted} mount(s) under {lab.root}")
    for name in cni_netns:
        say(f"deleting leftover pod network namespace {name}")
        _run(["ip", "netns", "del", name])
    if NETNS_PATH.exists():
        res = _run(["ip", "netns", "del", NETNS])
        if res.returncode != 0 and NETNS_PATH.exists():
            # A placeholder whose bind mount is already gone.
            _run(["umount", "-l", str(NETNS_PATH)])
            with contextlib.suppress(OSError):
                NETNS_PATH.unlink()
        say(f"deleted network namespace {NETNS}")
    with contextlib.suppress(OSError):
        OWNER_FILE.unlink()

    # 6. Host-side leftovers: kernel settings the kubelet changed, the CNI result cache
    #    of the lab's network, pod logs, the pods' cgroups.
    restore_tunables(lab)
    for cached in Path("/var/lib/cni/results").glob(f"{NETNS}-*-eth0"):
        sandbox = cached.name[len(NETNS) + 1 : -len("-eth0")]
        for path in (cached, cached.with_name(f"cni-loopback-{sandbox}-lo")):
            with contextlib.suppress(OSError):
                path.unlink()
    _remove_pod_logs(lab, pod_uids)
    remove_container_cgroups(container_ids)

    # 7. State. Logs stay (lab/up rotates them) for a look after a failed run.
    wipe_state(lab)
    return True


def wait_until(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    alive: Callable[[], bool] | None = None,
    interval: float = 0.1,
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if alive is not None and not alive():
            raise LabError(f"{what}: the process exited")
        if time.monotonic() > deadline:
            raise LabError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(interval)


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:])
