"""The only module that talks to the Kubernetes API.

Everything else in deployer sees a :class:`Gateway` that speaks plain JSON dicts
and raises deployer's own errors. The client library is imported lazily: it
costs about half a second, and ``deployer --help`` must stay instant.

Retry policy (one place, applied at this edge only):

* reads (GET/LIST, opening a watch) are retried on 429, 500, 502, 503, 504 and
  connection errors with jittered exponential backoff, waiting at least what a
  ``Retry-After`` header asks for, within a budget of attempts and time;
* writes are retried only when replaying them is safe: a PATCH or PUT carrying a
  ``resourceVersion`` precondition (a replay of an applied write fails with 409
  instead of applying twice), a DELETE (404 on replay means done) or a POST
  (409 AlreadyExists on replay is handled by the caller, who adopts the object);
* 400, 401, 403, 404, 405, 409, 422 and TLS errors are never retried.

Every request carries a timeout: the client's default is to wait forever.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from deployer.errors import (
    ApiRejected,
    ClusterUnreachable,
    Conflict,
    DeployerError,
    NotAuthorised,
    NotFound,
)
from deployer.http_get import get
from deployer.model import HttpAnswer

if TYPE_CHECKING:
    import httpx

log = structlog.get_logger("deployer.cluster")

REQUEST_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds for every API call
POD_PROXY_TIMEOUT = 5.0  # seconds a pod may take to answer through the pod proxy
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
T = TypeVar("T")


class _Transient(Exception):
    """A failure worth retrying; carries the original and any Retry-After."""

    def __init__(self, original: BaseException, retry_after: float | None = None):
        super().__init__(str(original))
        self.original = original
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryBudget:
    attempts: int = 6
    seconds: float = 60.0
    initial: float = 0.25
    maximum: float = 10.0


def _wait(budget: RetryBudget) -> Callable[[RetryCallState], float]:
    computed = wait_exponential_jitter(multiplier=budget.initial, max=budget.maximum)

    def wait(state: RetryCallState) -> float:
        delay = computed(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        return delay

    return wait


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning(
        "api call failed, retrying",
        attempt=state.attempt_number,
        error=str(getattr(exc, "original", exc))[:200],
        sleep=round(state.next_action.sleep, 2) if state.next_action else None,
    )


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def _retry_after(exc: BaseException) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _message_of(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if body:
        try:
            parsed = json.loads(body)
            if isinstance(parsed, dict) and parsed.get("message"):
                return str(parsed["message"])
        except (ValueError, TypeError):
            pass
    reason = getattr(exc, "reason", None)
    return str(reason or exc)


def _is_tls_error(exc: BaseException) -> bool:
    import ssl

    import urllib3.exceptions as u3

    reason = getattr(exc, "reason", None)
    return isinstance(exc, u3.SSLError | ssl.SSLError) or isinstance(
        reason, u3.SSLError | ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _is_connection_error(exc: BaseException) -> bool:
    """Worth retrying: the connection failed or timed out. A TLS failure never is."""
    import urllib3.exceptions as u3

    return isinstance(
        exc,
        (u3.MaxRetryError, u3.ProtocolError, u3.TimeoutError, u3.NewConnectionError,
         ConnectionError, TimeoutError),
    ) and not _is_tls_error(exc)


def translate(exc: BaseException, what: str) -> DeployerError:
    """Turn a client exception into deployer's own error, saying what was being done."""
    status = _status_of(exc)
    message = f"{what}: {_message_of(exc)}"
    if status in (401, 403):
        return NotAuthorised(message, hint="check the kubeconfig user and its RBAC permissions")
    if status == 404:
        return NotFound(message)
    if status == 409:
        return Conflict(message)
    if status in (400, 405, 406, 415, 422):
        return ApiRejected(message)
    if status is not None:
        return ClusterUnreachable(message)
    if _is_tls_error(exc):
        return NotAuthorised(f"{what}: TLS verification of the API server failed: {exc}",
                             id="tls-error",
                             hint="check the kubeconfig's certificate-authority; deployer never "
                                  "skips verification")
    return ClusterUnreachable(f"{what}: {exc}")


class Gateway:
    """Namespaced access to the objects deployer manages, as JSON dicts."""

    def __init__(
        self,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        namespace: str | None = None,
        budget: RetryBudget | None = None,
        request_timeout: float = REQUEST_TIMEOUT[1],
        verify_tls: bool = True,
    ):
        from kubernetes import client, config

        self._client_mod = client
        try:
            contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
        except config.ConfigException as exc:
            raise ClusterUnreachable(f"cannot read kubeconfig: {exc}", id="no-kubeconfig") from exc
        chosen = active
        if context:
            chosen = next((c for c in contexts if c["name"] == context), None)
            if chosen is None:
                names = ", ".join(c["name"] for c in contexts)
                raise ClusterUnreachable(
                    f"context {context!r} is not in the kubeconfig (known: {names})",
                    id="unknown-context",
                )
        self.context = chosen["name"] if chosen else None
        context_namespace = (chosen or {}).get("context", {}).get("namespace")
        self.namespace = namespace or context_namespace or "default"
        configuration = client.Configuration()
        config.load_kube_config(
            config_file=kubeconfig, context=self.context, client_configuration=configuration
        )
        configuration.retries = 0  # retries are ours (tenacity), never urllib3's as well
        if not verify_tls:
            configuration.verify_ssl = False
        self.configuration = configuration
        self.api_client = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)
        self.coordination = client.CoordinationV1Api(self.api_client)
        self.authorization = client.AuthorizationV1Api(self.api_client)
        self.budget = budget or RetryBudget()
        self.request_timeout = (min(REQUEST_TIMEOUT[0], request_timeout), request_timeout)
        self._http: httpx.Client | None = None

    # ----------------------------------------------------------------- plumbing

    def _retrying(self) -> Retrying:
        """Retries of what is safe to replay, within the gateway's budget."""
        budget = self.budget
        return Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, _Transient)),
            wait=_wait(budget),
            stop=stop_after_attempt(budget.attempts) | stop_after_delay(budget.seconds),
            before_sleep=_log_retry,
            reraise=True,
        )

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, safe: bool = True,
              **kwargs: Any) -> Any:
        """Call the client, decode JSON, retry if ``safe``, translate errors."""
        kwargs.setdefault("_request_timeout", self.request_timeout)
        kwargs["_preload_content"] = False

        def once() -> Any:
            try:
                response = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - classified below
                status = _status_of(exc)
                if safe and (status in RETRYABLE_STATUS or
                             (status is None and _is_connection_error(exc))):
                    raise _Transient(exc, _retry_after(exc)) from exc
                raise
            data = response.data
            return json.loads(data) if data else None

        try:
            return self._retrying()(once)
        except _Transient as exc:
            raise translate(exc.original, what) from exc.original
        except DeployerError:
            raise
        except Exception as exc:
            if isinstance(exc, self._client_mod.ApiException) or _is_connection_error(exc) \
                    or type(exc).__module__.startswith("urllib3"):
                raise translate(exc, what) from exc
            raise

    # -------------------------------------------------------------------- reads

    def server_version(self) -> dict[str, Any]:
        api = self._client_mod.VersionApi(self.api_client)
        return dict(self._call("reading the server version", api.get_code))

    def get_deployment(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self._call(f"reading deployment {name}",
                                   self.apps.read_namespaced_deployment, name, self.namespace))
        except NotFound:
            return None

    def list_deployments(self, selector: str | None = None) -> list[dict[str, Any]]:
        out = self._call("listing deployments", self.apps.list_namespaced_deployment,
                         self.namespace, label_selector=selector or "")
        return list(out.get("items") or [])

    def list_replicasets(self, selector: str) -> list[dict[str, Any]]:
        out = self._call("listing replicasets", self.apps.list_namespaced_replica_set,
                         self.namespace, label_selector=selector)
        return list(out.get("items") or [])

    def list_pods(self, selector: str) -> list[dict[str, Any]]:
        out = self._call("listing pods", self.core.list_namespaced_pod, self.namespace,
                         label_selector=selector)
        return list(out.get("items") or [])

    def get_service(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self._call(f"reading service {name}",
                                   self.core.read_namespaced_service, name, self.namespace))
        except NotFound:
            return None

    def endpoint_addresses(self, service: str) -> set[str]:
        """Ready addresses of a Service's Endpoints (core/v1, served by every version)."""
        try:
            ep = self._call(f"reading endpoints {service}",
                            self.core.read_namespaced_endpoints, service, self.namespace)
        except NotFound:
            return set()
        return {a["ip"] for subset in ep.get("subsets") or []
                for a in subset.get("addresses") or []}

    def list_events(self, object_name: str) -> list[dict[str, Any]]:
        out = self._call("listing events", self.core.list_namespaced_event, self.namespace,
                         field_selector=f"involvedObject.name={object_name}")
        items = list(out.get("items") or [])
        items.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return items

    def pod_logs(self, pod: str, container: str, *, tail_lines: int = 10,
                 previous: bool = False) -> list[str]:
        try:
            response = self.core.read_namespaced_pod_log(
                pod, self.namespace, container=container, tail_lines=tail_lines,
                previous=previous, _preload_content=False,
                _request_timeout=self.request_timeout)
        except Exception:  # noqa: BLE001 - logs are a courtesy in a report, never a failure
            return []
        text = response.data.decode("utf-8", "replace")  # type: ignore[attr-defined]
        return [line for line in text.splitlines() if line.strip()][-tail_lines:]

    # ------------------------------------------------------------------- writes

    def replace_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        """PUT of the whole object; conditional on its metadata.resourceVersion."""
        name = body["metadata"]["name"]
        return dict(self._call(
            f"replacing deployment {name}", self.apps.replace_namespaced_deployment, name,
            self.namespace, body, safe=bool(body["metadata"].get("resourceVersion"))))

    def create_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call(
            f"creating deployment {body['metadata']['name']}",
            self.apps.create_namespaced_deployment, self.namespace, body))

    def delete_deployment(self, name: str) -> None:
        try:
            self._call(f"deleting deployment {name}", self.apps.delete_namespaced_deployment,
                       name, self.namespace, propagation_policy="Background")
        except NotFound:
            return

    def patch_service(self, name: str, patch: dict[str, Any], *,
                      resource_version: str | None = None) -> dict[str, Any]:
        body = dict(patch)
        if resource_version:
            body["metadata"] = {**body.get("metadata", {}), "resourceVersion": resource_version}
        return dict(self._call(
            f"patching service {name}", self.core.patch_namespaced_service, name,
            self.namespace, body, safe=resource_version is not None,
            _content_type="application/merge-patch+json"))

    def get_config_map(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self._call(f"reading configmap {name}",
                                   self.core.read_namespaced_config_map, name, self.namespace))
        except NotFound:
            return None

    def create_config_map(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call(f"creating configmap {body['metadata']['name']}",
                               self.core.create_namespaced_config_map, self.namespace, body))

    def replace_config_map(self, body: dict[str, Any]) -> dict[str, Any]:
        """Conditional on metadata.resourceVersion: 409 when someone else wrote in between."""
        name = body["metadata"]["name"]
        return dict(self._call(f"updating configmap {name}",
                               self.core.replace_namespaced_config_map, name, self.namespace,
                               body, safe=bool(body["metadata"].get("resourceVersion"))))

    def get_lease(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self._call(f"reading lease {name}",
                                   self.coordination.read_namespaced_lease, name, self.namespace))
        except NotFound:
            return None

    def create_lease(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call(f"creating lease {body['metadata']['name']}",
                               self.coordination.create_namespaced_lease, self.namespace, body))

    def replace_lease(self, body: dict[str, Any]) -> dict[str, Any]:
        """Conditional on metadata.resourceVersion: 409 when someone else wrote in between."""
        name = body["metadata"]["name"]
        return dict(self._call(f"updating lease {name}",
                               self.coordination.replace_namespaced_lease, name, self.namespace,
                               body, safe=bool(body["metadata"].get("resourceVersion"))))

    def can_i(self, verb: str, group: str, resource: str, subresource: str = "") -> bool:
        """SelfSubjectAccessReview: may the current identity do this in the namespace?"""
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {"namespace": self.namespace, "verb": verb,
                                                "group": group, "resource": resource,
                                                "subresource": subresource}}}
        # Creating a review changes nothing, so replaying it is safe.
        out = self._call(f"asking whether we may {verb} {resource}",
                         self.authorization.create_self_subject_access_review, body)
        return bool((out.get("status") or {}).get("allowed"))

    # ------------------------------------------------------------------ pod proxy

    def _auth_headers(self) -> dict[str, str]:
        """The header credentials the client itself would send now (a bearer token).

        Read for every request: the client's refresh hook (exec plugins, expiring tokens)
        runs inside ``auth_settings()``, so a renewed token is used as soon as it exists.
        """
        cfg = self.configuration
        settings: dict[str, dict[str, Any]] = dict(cfg.auth_settings())  # type: ignore[arg-type]
        return {str(s["key"]): str(s["value"]) for s in settings.values()
                if s.get("in") == "header" and s.get("value")}

    def _pod_http(self) -> httpx.Client:
        """The gateway's own HTTP client for the API server's pod proxy, built once."""
        if self._http is None:
            import ssl

            import httpx

            cfg = self.configuration
            if cfg.verify_ssl:
                context = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
            else:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if cfg.cert_file and cfg.key_file:
                context.load_cert_chain(cfg.cert_file, cfg.key_file)
            self._http = httpx.Client(base_url=cfg.host, verify=context,
                                      timeout=httpx.Timeout(POD_PROXY_TIMEOUT, connect=2.0),
                                      follow_redirects=False)
        return self._http

    def pod_get(self, pod: str, port: int | str, path: str) -> HttpAnswer:
        """GET ``path`` from a pod through the API server's pod proxy.

        What the pod answers (any status, a timeout, a reset) comes back as an
        :class:`HttpAnswer`: judging it is the caller's business. Not reaching the API
        server at all is retried like any read, then raised as ClusterUnreachable (a
        refused connection is the API server's, not the pod's); a TLS failure is raised
        as NotAuthorised and never retried.
        """
        import httpx

        url = f"/api/v1/namespaces/{self.namespace}/pods/{pod}:{port}/proxy/{path.lstrip('/')}"
        what = f"reading {path} of pod {pod} through the API server"

        def once() -> HttpAnswer:
            try:
                return get(self._pod_http(), url, headers=self._auth_headers(),
                           raise_connect_errors=True)
            except httpx.ConnectError as exc:
                if _is_tls_error(exc):
                    raise
                raise _Transient(exc) from exc

        try:
            return self._retrying()(once)
        except _Transient as exc:
            raise ClusterUnreachable(f"the API server's pod proxy is unreachable: {what}: "
                                     f"{exc.original}") from exc.original
        except httpx.ConnectError as exc:
            raise translate(exc, what) from exc

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    # ------------------------------------------------------------------ watches

    def changes(self, *, deployment: str | None = None,
                pod_selector: str | None = None) -> ChangeFeed:
        """Start watching a Deployment and/or pods; ``feed.wait(t)`` wakes on any change."""
        sources: list[tuple[str, Callable[..., Any], dict[str, Any]]] = []
        if deployment:
            sources.append(("deployment", self.apps.list_namespaced_deployment,
                            {"field_selector": f"metadata.name={deployment}"}))
        if pod_selector:
            sources.append(("pods", self.core.list_namespaced_pod,
                            {"label_selector": pod_selector}))
        return ChangeFeed(self, sources)


class ChangeFeed:
    """Background watches that wake a waiting step as soon as something changes.

    Each source lists once for a resourceVersion, then watches from it; when the
    server says 410 Gone (the version is too old) or the stream ends, it lists again
    and carries on. Callers never rely on events alone: after waking they re-read
    the current state, so a missed event costs at most one wait interval.
    """

    def __init__(self, gateway: Gateway, sources: list[tuple[str, Callable[..., Any],
                                                             dict[str, Any]]]):
        self._gateway = gateway
        self._queue: queue.Queue[tuple[str, str]] = queue.Queue()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=src, daemon=True, name=f"watch-{src[0]}")
            for src in sources
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, name: str, list_fn: Callable[..., Any], selectors: dict[str, Any]) -> None:
        from kubernetes import watch

        gw = self._gateway
        while not self._stop.is_set():
            try:
                listing = gw._call(f"listing {name}", list_fn, gw.namespace, **selectors)
                rv = listing["metadata"]["resourceVersion"]
                w = watch.Watch()
                for event in w.stream(list_fn, gw.namespace, resource_version=rv,
                                      timeout_seconds=60, deserialize=False,
                                      _request_timeout=(5.0, 75.0), **selectors):
                    if self._stop.is_set():
                        w.stop()
                        break
                    self._queue.put((name, str(event.get("type"))))
            except Exception as exc:  # noqa: BLE001 - a watch must never kill the run
                if _status_of(exc) == 410:
                    log.debug("watch expired, relisting", source=name)
                    continue
                log.debug("watch interrupted", source=name, error=str(exc)[:200])
                self._stop.wait(1.0)

    def wait(self, timeout: float) -> bool:
        """Block until a change arrives or ``timeout`` passes; True if something changed."""
        try:
            self._queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return False
        while True:  # coalesce a burst of events into one wake-up
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return True

    def close(self) -> None:
        self._stop.set()

    def __enter__(self) -> ChangeFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if TYPE_CHECKING:
    from deployer.gateway import ClusterGateway

    def _conforms(gateway: Gateway) -> ClusterGateway:
        """mypy checks here that the real gateway is what the Protocol describes."""
        return gateway
