"""A fault-injecting HTTP proxy in front of the lab's Kubernetes API server.

Tests put it between a Kubernetes client (deployer, or the `kubernetes` package) and the
API server, then add and remove fault rules while the client runs:

    with FaultProxy() as proxy:                      # upstream: $KUBECONFIG
        kubeconfig = proxy.write_kubeconfig(tmp_path / "kubeconfig")
        api = kubernetes.config.new_client_from_config(kubeconfig)
        rule = proxy.add(respond(429, {"Retry-After": "3"}), method="PATCH", times=1)
        ...                                          # run the client
        assert rule.hits == 1
        patches = proxy.requests(method="PATCH")     # LogEntry(time, method, path, outcome)

Clients talk plain HTTP to 127.0.0.1:PORT without credentials; the proxy forwards each
request over its own TLS connection, authenticated with the credentials of the upstream
kubeconfig (client certificate, or a bearer token).

Rules are checked in the order they were added; the first one that matches a request and
has not used up its `times` fires (its `hits` grows by one). A request no rule claims is
forwarded unchanged. Actions:

    respond(status, headers=None, body=None)   answer without forwarding (default body: a
                                               Kubernetes Status object for status >= 400)
    reset_after_forward()                      forward, read the whole answer (a watch: its
                                               status line), then reset the client's
                                               connection (TCP RST) without answering
    blackhole()                                never answer; hold the connection until the
                                               client closes it or the proxy stops
    watch_gone(message=...)                    answer a watch with one 410 Expired ERROR event
    drop_watch_after(n_events, clean=True)     relay n events of a watch, then end it
    delay(seconds)                             wait, then forward (a slow API server)

`watch_gone` and `drop_watch_after` only match watch requests unless the rule says
otherwise. Every request is logged as LogEntry(time, method, path, outcome): `time` is
time.monotonic() when the request arrived, `path` is the path with its query, `outcome`
is the upstream status code (int) for a plain forward, or a string naming the fault:
"respond:429", "reset_after_forward:200", "blackhole", "watch_gone", "drop_watch_after:200",
"delay:200", or "upstream_error" when the API server could not be reached (the client then
gets a 502). Upgrade requests (exec, attach, port-forward) are not supported.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import re
import select
import shutil
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import yaml

__all__ = [
    "Action",
    "FaultProxy",
    "LogEntry",
    "Rule",
    "blackhole",
    "delay",
    "drop_watch_after",
    "reset_after_forward",
    "respond",
    "status_body",
    "watch_gone",
]

CONTEXT_NAME = "lab-faults"

# Headers that describe one connection, not the message: never relayed as they are.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)

# Kubernetes Status reasons for the codes tests use most.
STATUS_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "Timeout",
}

_WATCH_ONLY = frozenset({"watch_gone", "drop_watch_after"})
_CHUNK = 64 * 1024
_MAX_LINE = 16 * 1024 * 1024


def status_body(code: int, message: str | None = None, reason: str | None = None) -> dict:
    """A Kubernetes `Status` object (metav1.Status) for an error answer."""
    reason = reason or STATUS_REASONS.get(code, "Unknown")
    if message is None:
        phrase = http.client.responses.get(code, "error").lower()
        message = f"injected fault: {phrase}"
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


# ----------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Action:
    """What a rule does to a request it matches; build one with the functions below."""

    kind: str
    status: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    body: Any = None
    seconds: float = 0.0
    n_events: int = 0
    clean: bool = True
    message: str = ""
    only_success: bool = False


def respond(
    status: int,
    headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
    body: Any = None,
) -> Action:
    """Answer without forwarding.

    `body` may be bytes, str, or a dict/list (sent as JSON). When it is None, a status
    >= 400 gets a Kubernetes Status object (see status_body) and anything else no body.
    `headers` is a mapping or a list of pairs, e.g. {"Retry-After": "3"}.
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    return Action(
        "respond", status=int(status), headers=tuple((str(k), str(v)) for k, v in pairs),
        body=body,
    )


def reset_after_forward(only_success: bool = False) -> Action:
    """Forward the request (so a write really applies), read the answer, then reset the
    client's connection without answering: "the connection was reset after the write".

    only_success=True resets only when the upstream answer is 2xx (the write was applied)
    and relays any other answer unchanged; the rule counts a hit only when it resets.
    """
    return Action("reset_after_forward", only_success=only_success)


def blackhole() -> Action:
    """Accept the request and never answer, until the client gives up or the proxy stops."""
    return Action("blackhole")


def watch_gone(message: str = "too old resource version") -> Action:
    """Answer a watch with 200 and a single `ERROR` event holding a 410 Expired Status."""
    return Action("watch_gone", message=message)


def drop_watch_after(n_events: int, clean: bool = True) -> Action:
    """Forward a watch, relay `n_events` events, then end the stream early.

    clean=True ends the chunked body properly (as when the server's watch timeout fires);
    clean=False cuts the connection mid-body instead.
    """
    if n_events < 0:
        raise ValueError("n_events must be >= 0")
    return Action("drop_watch_after", n_events=int(n_events), clean=clean)


def delay(seconds: float) -> Action:
    """Wait `seconds`, then forward the request as usual (a slow API server)."""
    return Action("delay", seconds=float(seconds))


# ----------------------------------------------------------------------------- rules


class Rule:
    """A fault that fires on matching requests, at most `times` times (None: no limit).

    method: HTTP method (case-insensitive), or None for any.
    path:   a regular expression searched in the path with its query, or None for any.
    watch:  True for watch requests only, False for non-watch requests only, None for both
            (watch_gone and drop_watch_after default to True).
    """

    def __init__(
        self,
        action: Action,
        *,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        watch: bool | None = None,
        times: int | None = None,
    ) -> None:
        if not isinstance(action, Action):
            raise TypeError(f"action must be an Action, not {type(action).__name__}")
        if times is not None and times < 0:
            raise ValueError("times must be >= 0 or None")
        self.action = action
        self.method = method.upper() if method else None
        self.path = re.compile(path) if isinstance(path, str) else path
        self.watch = True if watch is None and action.kind in _WATCH_ONLY else watch
        self.times = times
        self.hits = 0

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def matches(self, method: str, path: str, is_watch: bool) -> bool:
        """Whether the rule applies to this request (ignoring `times`)."""
        if self.method is not None and method.upper() != self.method:
            return False
        if self.watch is not None and is_watch != self.watch:
            return False
        return self.path is None or self.path.search(path) is not None

    def __repr__(self) -> str:
        pattern = self.path.pattern if self.path is not None else None
        return (
            f"Rule({self.action.kind}, method={self.method}, path={pattern!r}, "
            f"watch={self.watch}, times={self.times}, hits={self.hits})"
        )


class LogEntry(NamedTuple):
    time: float
    method: str
    path: str
    outcome: int | str


def is_watch_request(path: str) -> bool:
    """`watch=true` (or 1) in the query, or the legacy /watch/ path prefix."""
    parts = urlsplit(path)
    values = parse_qs(parts.query).get("watch", [])
    if any(v.lower() in ("true", "1") for v in values):
        return True
    return bool(re.match(r"^/(api/v1|apis/[^/]+/[^/]+)/watch/", parts.path))


# ----------------------------------------------------------------------------- upstream


@dataclass
class _Upstream:
    scheme: str
    host: str
    port: int
    base_path: str
    ssl_context: ssl.SSLContext | None
    server_hostname: str | None
    authorization: str | None = None
    netloc: str = field(default="")

    def connect(self, timeout: float) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return _TLSConnection(self, timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


class _TLSConnection(http.client.HTTPSConnection):
    """HTTPS with a separate TLS server name (kubeconfig `tls-server-name`)."""

    def __init__(self, upstream: _Upstream, timeout: float) -> None:
        super().__init__(upstream.host, upstream.port, timeout=timeout,
                         context=upstream.ssl_context)
        self._tls_name = upstream.server_hostname

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), self.timeout)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = self._context.wrap_socket(raw, server_hostname=self._tls_name)
        except BaseException:
            raw.close()
            raise


def _named(items: list[dict] | None, name: str, what: str) -> dict:
    for item in items or []:
        if item.get("name") == name:
            return item.get(what) or {}
    raise ValueError(f"kubeconfig has no {what} named {name!r}")


def _load_upstream(kubeconfig: str, context: str | None) -> _Upstream:
    path = Path(next(p for p in kubeconfig.split(os.pathsep) if p)).expanduser()
    doc = yaml.safe_load(path.read_text()) or {}
    ctx_name = context or doc.get("current-context")
    if not ctx_name:
        raise ValueError(f"{path}: no context given and no current-context")
    ctx = _named(doc.get("contexts"), ctx_name, "context")
    cluster = _named(doc.get("clusters"), ctx.get("cluster", ""), "cluster")
    user = _named(doc.get("users"), ctx["user"], "user") if ctx.get("user") else {}
    base_dir = path.parent

    def file_path(value: str) -> str:
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else base_dir / p)

    server = cluster.get("server")
    if not server:
        raise ValueError(f"{path}: cluster {ctx.get('cluster')!r} has no server")
    url = urlsplit(server)
    scheme = url.scheme.lower()
    if scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"{path}: unsupported server URL {server!r}")
    port = url.port or (443 if scheme == "https" else 80)

    context_ssl = None
    if scheme == "https":
        context_ssl = _ssl_context(cluster, user, file_path)

    authorization = None
    if user.get("token"):
        authorization = f"Bearer {user['token']}"
    elif user.get("tokenFile"):
        authorization = f"Bearer {Path(file_path(user['tokenFile'])).read_text().strip()}"
    elif user.get("username") is not None and user.get("password") is not None:
        pair = f"{user['username']}:{user['password']}".encode()
        authorization = f"Basic {base64.b64encode(pair).decode('ascii')}"

    host = url.hostname
    return _Upstream(
        scheme=scheme,
        host=host,
        port=port,
        base_path=url.path.rstrip("/"),
        ssl_context=context_ssl,
        server_hostname=cluster.get("tls-server-name") or host,
        authorization=authorization,
        netloc=url.netloc.rpartition("@")[2],
    )


def _ssl_context(cluster: dict, user: dict, file_path: Any) -> ssl.SSLContext:
    if cluster.get("insecure-skip-tls-verify"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif cluster.get("certificate-authority-data"):
        pem = base64.b64decode(cluster["certificate-authority-data"]).decode("ascii")
        ctx = ssl.create_default_context(cadata=pem)
    elif cluster.get("certificate-authority"):
        ctx = ssl.create_default_context(cafile=file_path(cluster["certificate-authority"]))
    else:
        ctx = ssl.create_default_context()

    cert = _pem_source(user, "client-certificate", file_path)
    key = _pem_source(user, "client-key", file_path)
    if cert is None:
        return ctx
    # load_cert_chain only reads files: inline data goes to a private directory that is
    # removed as soon as the context holds the key.
    scratch = None
    try:
        paths = []
        for kind, value in (("cert", cert), ("key", key)):
            if value is None or isinstance(value, str):
                paths.append(value)
                continue
            scratch = scratch or tempfile.mkdtemp(prefix="faultproxy-")
            target = os.path.join(scratch, f"{kind}.pem")
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(value)
            paths.append(target)
        ctx.load_cert_chain(paths[0], paths[1])
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    return ctx


def _pem_source(user: dict, key: str, file_path: Any) -> str | bytes | None:
    """A path (str) or inline PEM (bytes) for `key`, from `key` or `key-data`."""
    if user.get(f"{key}-data"):
        return base64.b64decode(user[f"{key}-data"])
    if user.get(key):
        return file_path(user[key])
    return None


# ----------------------------------------------------------------------------- the proxy


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of the API server of a kubeconfig."""

    def __init__(
        self,
        upstream_kubeconfig: str | os.PathLike[str] | None = None,
        *,
        context: str | None = None,
        port: int = 0,
        upstream_timeout: float = 120.0,
        connect_timeout: float = 10.0,
    ) -> None:
        """upstream_kubeconfig defaults to $KUBECONFIG; `context` to its current-context.

        upstream_timeout bounds each read from the API server, except in watches (which
        last until the server, the client or stop() ends them).
        """
        if upstream_kubeconfig is None:
            upstream_kubeconfig = os.environ.get("KUBECONFIG")
            if not upstream_kubeconfig:
                raise ValueError("no upstream kubeconfig given and KUBECONFIG is not set")
        self._upstream = _load_upstream(os.fspath(upstream_kubeconfig), context)
        self._port_wanted = port
        self.upstream_timeout = upstream_timeout
        self.connect_timeout = connect_timeout

        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._log: list[LogEntry] = []
        self._client_socks: set[socket.socket] = set()
        self._upstream_socks: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._held = 0
        self._streams = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> FaultProxy:
        if self._server is not None:
            raise RuntimeError("the proxy is already running")
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", self._port_wanted), self)
        self._serve_thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
            name=f"faultproxy-{self.port}", daemon=True,
        )
        self._serve_thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening, close every client and upstream connection (held ones too) and
        wait up to `timeout` seconds for the connection threads to end."""
        server = self._server
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if self._serve_thread is not None:
            self._serve_thread.join(timeout)
        with self._lock:
            clients = list(self._client_socks)
            upstreams = list(self._upstream_socks)
            threads = list(self._threads)
        for sock in upstreams:
            _shutdown(sock)
        for sock in clients:
            _shutdown(sock)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._server = None
        self._serve_thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not running: call start()")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(self, path: str | os.PathLike[str]) -> str:
        """Write a kubeconfig (context `lab-faults`, no namespace, no credentials) that
        points at the proxy; return its path."""
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": CONTEXT_NAME, "cluster": {"server": self.url}}],
            "users": [{"name": CONTEXT_NAME, "user": {}}],
            "contexts": [
                {"name": CONTEXT_NAME, "context": {"cluster": CONTEXT_NAME, "user": CONTEXT_NAME}}
            ],
            "current-context": CONTEXT_NAME,
            "preferences": {},
        }
        target = Path(path)
        target.write_text(yaml.safe_dump(doc, sort_keys=False))
        return str(target)

    # ---------------------------------------------------------------- rules and log

    def add(
        self,
        rule: Rule | Action,
        *,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        watch: bool | None = None,
        times: int | None = None,
    ) -> Rule:
        """Add a rule, either a Rule or an Action with the match arguments of Rule."""
        if isinstance(rule, Action):
            rule = Rule(rule, method=method, path=path, watch=watch, times=times)
        elif any(v is not None for v in (method, path, watch, times)):
            raise TypeError("give the match arguments to Rule(...), not to add()")
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule: Rule) -> None:
        with self._lock:
            if rule in self._rules:
                self._rules.remove(rule)

    def clear(self) -> None:
        """Remove every rule (requests already being handled keep their fault)."""
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[Rule]:
        with self._lock:
            return list(self._rules)

    @property
    def log(self) -> list[LogEntry]:
        """Recorded requests, oldest first (a copy)."""
        with self._lock:
            return sorted(self._log, key=lambda e: e.time)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def requests(self, method: str | None = None, path: str | None = None) -> list[LogEntry]:
        """Logged requests with this method and whose path matches this regex (search)."""
        pattern = re.compile(path) if path is not None else None
        return [
            e for e in self.log
            if (method is None or e.method == method.upper())
            and (pattern is None or pattern.search(e.path))
        ]

    @property
    def held(self) -> int:
        """Connections a blackhole rule is holding right now."""
        with self._lock:
            return self._held

    @property
    def active_streams(self) -> int:
        """Streamed answers (watches, chunked bodies) being relayed right now."""
        with self._lock:
            return self._streams

    # ---------------------------------------------------------------- internals

    def _match(self, method: str, path: str, is_watch: bool) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if not rule.exhausted and rule.matches(method, path, is_watch):
                    rule.hits += 1
                    return rule
        return None

    def _record(self, started: float, method: str, path: str, outcome: int | str) -> None:
        with self._lock:
            self._log.append(LogEntry(started, method, path, outcome))

    def _count(self, attr: str, delta: int) -> None:
        with self._lock:
            setattr(self, attr, getattr(self, attr) + delta)

    def _track(self, group: set[socket.socket], sock: socket.socket | None, on: bool) -> None:
        if sock is None:
            return
        with self._lock:
            if on:
                group.add(sock)
            else:
                group.discard(sock)


def _shutdown(sock: socket.socket) -> None:
    """Shut a socket down (waking up any thread blocked on it), TLS or not."""
    with contextlib.suppress(OSError, ValueError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection, args=(request, client_address),
            name="faultproxy-conn", daemon=True,
        )
        with self.proxy._lock:
            self.proxy._threads.add(thread)
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self.proxy._lock:
                self.proxy._threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away is not an error worth a traceback.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _ClientGone(Exception):
    """Writing to the client failed: it closed or reset its connection."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    # ---------------------------------------------------------------- plumbing

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.proxy._track(self.server.proxy._client_socks, self.connection, True)

    def finish(self) -> None:
        self.server.proxy._track(self.server.proxy._client_socks, self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
        except (OSError, ValueError) as e:
            self.close_connection = True
            raise _ClientGone() from e

    def _target(self) -> str:
        target = self.path
        if target.startswith(("http://", "https://")):
            parts = urlsplit(target)
            target = parts.path or "/"
            if parts.query:
                target += "?" + parts.query
        return target

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline(3)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        return self.rfile.read(length) if length else b""

    def _chunked_ok(self) -> bool:
        return self.request_version >= "HTTP/1.1"

    def _send_head(self, status: int, reason: str | None, headers: list[tuple[str, str]]) -> None:
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        try:
            self.end_headers()
        except (OSError, ValueError) as e:
            self.close_connection = True
            raise _ClientGone() from e

    def _send_whole(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        names = {n.lower() for n, _ in headers}
        headers = [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP]
        if "content-length" not in names:
            headers.append(("Content-Length", str(len(body))))
        self._send_head(status, None, headers)
        if self.command != "HEAD" and body:
            self._write(body)

    # ---------------------------------------------------------------- dispatch

    def _handle(self) -> None:
        proxy = self.server.proxy
        started = time.monotonic()
        target = self._target()
        method = self.command
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            with contextlib.suppress(_ClientGone):
                self._send_whole(400, [("Content-Type", "application/json")], json.dumps(
                    status_body(400, "the proxy could not read the request body")).encode())
            proxy._record(started, method, target, "bad_request")
            return
        is_watch = is_watch_request(target)
        rule = proxy._match(method, target, is_watch)
        action = rule.action if rule is not None else None
        try:
            if action is None:
                self._forward(started, target, body, is_watch, label=None)
            elif action.kind == "respond":
                self._respond(started, target, action)
            elif action.kind == "reset_after_forward":
                self._reset_after_forward(started, target, body, is_watch,
                                          only_success=action.only_success, rule=rule)
            elif action.kind == "blackhole":
                proxy._record(started, method, target, "blackhole")
                self._hold()
            elif action.kind == "watch_gone":
                self._watch_gone(started, target, action)
            elif action.kind == "drop_watch_after":
                self._forward(started, target, body, is_watch, label="drop_watch_after",
                              max_events=action.n_events, clean=action.clean)
            elif action.kind == "delay":
                if proxy._stopping.wait(action.seconds):
                    self.close_connection = True
                    proxy._record(started, method, target, "delay:stopped")
                    return
                self._forward(started, target, body, is_watch, label="delay")
            else:
                raise ValueError(f"unknown action {action.kind!r}")
        except _ClientGone:
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

    # ---------------------------------------------------------------- actions

    def _respond(self, started: float, target: str, action: Action) -> None:
        headers = list(action.headers)
        body = action.body
        if body is None and action.status >= 400:
            body = status_body(action.status)
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            if not any(n.lower() == "content-type" for n, _ in headers):
                headers.append(("Content-Type", "application/json"))
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = bytes(body or b"")
        self.server.proxy._record(started, self.command, target, f"respond:{action.status}")
        self._send_whole(action.status, headers, data)

    def _watch_gone(self, started: float, target: str, action: Action) -> None:
        event = {"type": "ERROR", "object": status_body(410, action.message, "Expired")}
        line = (json.dumps(event) + "\n").encode()
        self.server.proxy._record(started, self.command, target, "watch_gone")
        headers = [("Content-Type", "application/json"), ("Cache-Control", "no-cache, private")]
        if not self._chunked_ok():
            self._send_whole(200, headers, line)
            return
        self._send_head(200, None, [*headers, ("Transfer-Encoding", "chunked")])
        self._write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(line), line))

    def _hold(self) -> None:
        """Keep the connection open, unanswered, until the client closes it or stop()."""
        proxy = self.server.proxy
        self.close_connection = True
        proxy._count("_held", 1)
        sock = self.connection
        try:
            while not proxy._stopping.is_set():
                readable, _, _ = select.select([sock], [], [], 0.2)
                if readable:
                    try:
                        data = sock.recv(_CHUNK)
                    except OSError:
                        return
                    if not data:
                        return
        except (OSError, ValueError):
            return
        finally:
            proxy._count("_held", -1)

    def _reset_after_forward(
        self, started: float, target: str, body: bytes, is_watch: bool,
        only_success: bool = False, rule: Rule | None = None,
    ) -> None:
        proxy = self.server.proxy
        self.close_connection = True
        conn = None
        try:
            conn, resp = self._open_upstream(target, body, watch=is_watch)
            status = resp.status
            if not is_watch:  # a watch's body never ends: reset once it has begun
                data = resp.read()
                if only_success and not 200 <= status < 300:
                    if rule is not None:
                        with proxy._lock:
                            rule.hits -= 1  # not reset: this one does not count
                    headers = [(k, v) for k, v in resp.getheaders()
                               if k.lower() not in HOP_BY_HOP | {"content-length"}]
                    proxy._record(started, self.command, target, status)
                    self._send_whole(status, headers, data)
                    return
            outcome: int | str = f"reset_after_forward:{status}"
        except (OSError, http.client.HTTPException):
            outcome = "reset_after_forward:upstream_error"
        finally:
            self._close_upstream(conn)
        proxy._record(started, self.command, target, outcome)
        self._reset_client()

    def _reset_client(self) -> None:
        """Abort the client's connection with a TCP RST (linger on, timeout 0, close)."""
        sock = self.connection
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.server.proxy._track(self.server.proxy._client_socks, sock, False)
        # The socket's file descriptor is released only once rfile lets go of it too.
        with contextlib.suppress(OSError):
            self.rfile.close()
        with contextlib.suppress(OSError):
            sock.close()

    # ---------------------------------------------------------------- forwarding

    def _open_upstream(
        self, target: str, body: bytes, watch: bool
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        proxy = self.server.proxy
        up = proxy._upstream
        connection_tokens = {
            t.strip().lower() for t in self.headers.get("Connection", "").split(",") if t.strip()
        }
        skip = HOP_BY_HOP | connection_tokens | {"host", "content-length", "expect"}
        headers = [(n, v) for n, v in self.headers.items() if n.lower() not in skip]
        if up.authorization:
            headers = [(n, v) for n, v in headers if n.lower() != "authorization"]
            headers.append(("Authorization", up.authorization))
        headers.append(("Host", up.netloc))
        if body or self.command in ("POST", "PUT", "PATCH"):
            headers.append(("Content-Length", str(len(body))))

        conn = up.connect(proxy.connect_timeout)
        try:
            conn.connect()
            proxy._track(proxy._upstream_socks, conn.sock, True)
            conn.sock.settimeout(proxy.upstream_timeout)
            conn.putrequest(self.command, up.base_path + target, skip_host=True,
                            skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            conn.endheaders(body or None)
            resp = conn.getresponse()
            if watch:
                conn.sock.settimeout(None)  # a watch may stay quiet for minutes
            return conn, resp
        except BaseException:
            self._close_upstream(conn)
            raise

    def _close_upstream(self, conn: http.client.HTTPConnection | None) -> None:
        if conn is None:
            return
        proxy = self.server.proxy
        proxy._track(proxy._upstream_socks, conn.sock, False)
        with contextlib.suppress(OSError):
            conn.close()

    def _forward(
        self,
        started: float,
        target: str,
        body: bytes,
        is_watch: bool,
        label: str | None,
        max_events: int | None = None,
        clean: bool = True,
    ) -> None:
        proxy = self.server.proxy
        conn = None
        try:
            try:
                conn, resp = self._open_upstream(target, body, watch=is_watch)
            except (OSError, http.client.HTTPException) as e:
                proxy._record(started, self.command, target, "upstream_error")
                problem = f"the proxy could not reach the API server: {type(e).__name__}: {e}"
                self._send_whole(502, [("Content-Type", "application/json")],
                                 json.dumps(status_body(502, problem)).encode())
                return
            outcome: int | str = resp.status if label is None else f"{label}:{resp.status}"
            proxy._record(started, self.command, target, outcome)
            self._relay(conn, resp, is_watch, max_events, clean)
        finally:
            self._close_upstream(conn)

    def _relay(
        self,
        conn: http.client.HTTPConnection,
        resp: http.client.HTTPResponse,
        is_watch: bool,
        max_events: int | None,
        clean: bool,
    ) -> None:
        status = resp.status
        headers = [
            (n, v) for n, v in resp.getheaders()
            if n.lower() not in HOP_BY_HOP and n.lower() != "content-length"
        ]
        upstream_length = resp.getheader("Content-Length")

        # No body at all.
        if self.command == "HEAD" or status in (204, 304) or 100 <= status < 200:
            if upstream_length is not None and self.command == "HEAD":
                headers.append(("Content-Length", upstream_length))
            self._send_head(status, resp.reason, headers)
            return

        # A body of known length: relay it with that length.
        if max_events is None and not resp.chunked and resp.length is not None:
            remaining = resp.length
            self._send_head(status, resp.reason, [*headers, ("Content-Length", str(remaining))])
            while remaining > 0:
                try:
                    data = resp.read1(min(remaining, _CHUNK))
                except (OSError, ValueError, http.client.HTTPException):
                    data = b""
                if not data:
                    self.close_connection = True  # body cut short: so must the client's be
                    return
                remaining -= len(data)
                self._write(data)
            return

        # A stream (watch, follow, or unknown length): chunk by chunk, as it comes.
        chunked = self._chunked_ok()
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        else:
            self.close_connection = True
        self._send_head(status, resp.reason, headers)
        self._stream(conn, resp, chunked, is_watch or max_events is not None, max_events, clean)

    def _stream(
        self,
        conn: http.client.HTTPConnection,
        resp: http.client.HTTPResponse,
        chunked: bool,
        by_line: bool,
        max_events: int | None,
        clean: bool,
    ) -> None:
        proxy = self.server.proxy
        wake_r, wake_w = os.pipe()
        gone = threading.Event()
        monitor = threading.Thread(
            target=self._watch_client, args=(wake_r, gone, conn.sock),
            name="faultproxy-client-monitor", daemon=True,
        )
        proxy._count("_streams", 1)
        monitor.start()
        complete = False
        try:
            events = 0
            while max_events is None or events < max_events:
                try:
                    data = resp.readline(_MAX_LINE) if by_line else resp.read1(_CHUNK)
                except (OSError, ValueError, http.client.HTTPException):
                    break  # the upstream stream broke (or was cut for a departed client)
                if not data:
                    complete = not gone.is_set()  # the upstream body ended properly
                    break
                if by_line and data.endswith(b"\n") and data.strip():
                    events += 1
                self._write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            else:
                complete = clean  # dropped on purpose after max_events
            if complete and chunked:
                self._write(b"0\r\n\r\n")
            else:
                self.close_connection = True
        finally:
            os.write(wake_w, b"x")
            monitor.join(5.0)
            os.close(wake_w)
            os.close(wake_r)
            proxy._count("_streams", -1)

    def _watch_client(
        self, wake: int, gone: threading.Event, upstream: socket.socket | None
    ) -> None:
        """While a stream is relayed, notice the client hanging up and end the upstream
        request then, instead of at the next event. A byte on `wake` ends the watch."""
        sock = self.connection
        try:
            readable, _, _ = select.select([sock, wake], [], [])
            if wake in readable:
                return
            peek = sock.recv(1, socket.MSG_PEEK)
        except (OSError, ValueError):
            peek = b""
        if peek:
            return  # the client sent more (pipelining): cannot tell, stop watching
        gone.set()
        self.close_connection = True
        if upstream is not None:
            _shutdown(upstream)
