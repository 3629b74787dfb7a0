"""The only module that talks to the Kubernetes API.

Everything else in deployer sees a :class:`Gateway` that speaks plain JSON dicts
and raises deployer's own errors. The client library is imported lazily, and only
its transport: ``Configuration`` and ``load_kube_config`` (every kubeconfig auth form,
exec plugins and refreshing tokens included), ``ApiClient.param_serialize`` (URL, query
and auth headers) and ``call_api`` (TLS, the connection pool). Requests name the API
paths themselves: the generated ``CoreV1Api``/``AppsV1Api`` classes import about a
thousand pydantic models on first use, over a second of CPU in every deployer process,
to build objects deployer never asks for (it reads JSON).

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
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from deployer import logs
from deployer.errors import (
    ApiRejected,
    ClusterUnreachable,
    Conflict,
    DeployerError,
    InvalidInput,
    NotAuthorised,
    NotFound,
)
from deployer.gateway import RequestCount
from deployer.http_get import get
from deployer.model import HttpAnswer

if TYPE_CHECKING:
    import httpx

log = logs.get_logger("deployer.cluster")

REQUEST_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds for every API call
POD_PROXY_TIMEOUT = 5.0  # seconds a pod may take to answer through the pod proxy
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})

# The API paths deployer uses; each is served by every Kubernetes from 1.20 on (the
# EndpointSlice version is chosen at run time: see Gateway._slices_path).
_CORE = "/api/v1/namespaces/{namespace}"
PODS = f"{_CORE}/pods"
POD_LOG = f"{_CORE}/pods/{{name}}/log"
SERVICE = f"{_CORE}/services/{{name}}"
ENDPOINTS = f"{_CORE}/endpoints/{{name}}"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # on each EndpointSlice of a Service
EVENTS = f"{_CORE}/events"
RESOURCE_QUOTAS = f"{_CORE}/resourcequotas"
CONFIGMAPS = f"{_CORE}/configmaps"
CONFIGMAP = f"{CONFIGMAPS}/{{name}}"
DEPLOYMENTS = "/apis/apps/v1/namespaces/{namespace}/deployments"
DEPLOYMENT = f"{DEPLOYMENTS}/{{name}}"
REPLICASETS = "/apis/apps/v1/namespaces/{namespace}/replicasets"
JOBS = "/apis/batch/v1/namespaces/{namespace}/jobs"
JOB = f"{JOBS}/{{name}}"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
LEASE = f"{LEASES}/{{name}}"
ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
RULES_REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews"
AUTOSCALERS = "/apis/autoscaling/v1/namespaces/{namespace}/horizontalpodautoscalers"


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


def _trace(count: RequestCount, method: str, path: str, started: float, status: int | None,
           error: str | None = None) -> None:
    """The -v line of one request (kubectl -v=6): never headers, so never credentials."""
    count.add(path)
    log.debug("api request", method=method, path=path, status=status,
              ms=round((time.monotonic() - started) * 1000), **({"error": error} if error else {}))


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
            raise InvalidInput(f"cannot read the kubeconfig: {exc}", id="no-kubeconfig",
                               hint="pass --kubeconfig PATH or set KUBECONFIG") from exc
        chosen = active
        if context:
            chosen = next((c for c in contexts if c["name"] == context), None)
            if chosen is None:
                names = ", ".join(c["name"] for c in contexts)
                raise InvalidInput(
                    f"context {context!r} is not in the kubeconfig (known: {names})",
                    id="unknown-context", hint="kubectl config get-contexts lists them")
        self.context = chosen["name"] if chosen else None
        context_namespace = (chosen or {}).get("context", {}).get("namespace")
        self.context_user: str | None = (chosen or {}).get("context", {}).get("user")
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
        self.budget = budget or RetryBudget()
        self.request_timeout = (min(REQUEST_TIMEOUT[0], request_timeout), request_timeout)
        self.requests = RequestCount()
        self._http: httpx.Client | None = None
        self._http_mutex = threading.Lock()
        self._slices: str | None = None  # the EndpointSlice path, once discovered ("": none)
        self._budgets: str | None = None  # the PodDisruptionBudget path, likewise

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

    def _send(self, method: str, path: str, *, params: dict[str, str] | None = None,
              query: dict[str, Any] | None = None, body: Any = None,
              content_type: str | None = None,
              timeout: Any = None) -> Any:
        """One request through the client's transport; a non-2xx answer is raised.

        Returns the client's response before its body is read, so a watch can stream it.
        """
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        method, url, headers, body, post = self.api_client.param_serialize(
            method=method, resource_path=path, path_params=params,
            query_params=[(k, v) for k, v in (query or {}).items() if v not in (None, "")],
            header_params=headers, body=body, auth_settings=["BearerToken"])
        started = time.monotonic()
        shown = unquote(url.removeprefix(self.api_client.configuration.host))  # never credentials
        try:
            response = self.api_client.call_api(
                method, url, headers, body, post,
                _request_timeout=timeout or self.request_timeout)
        except Exception as exc:
            _trace(self.requests, method, shown, started, None, type(exc).__name__)
            raise
        _trace(self.requests, method, shown, started, response.status)
        if not 200 <= response.status <= 299:
            response.read()
            raise self._client_mod.ApiException.from_response(
                http_resp=response, body=None, data=None)
        return response

    def _call(self, what: str, method: str, path: str, *, params: dict[str, str] | None = None,
              query: dict[str, Any] | None = None, body: Any = None, safe: bool = True,
              content_type: str | None = None) -> Any:
        """Send a request, decode its JSON, retry if ``safe``, translate errors."""

        def once() -> Any:
            try:
                response = self._send(method, path, params=params, query=query, body=body,
                                      content_type=content_type)
            except BaseException as exc:  # noqa: BLE001 - classified below
                status = _status_of(exc)
                if safe and (status in RETRYABLE_STATUS or
                             (status is None and _is_connection_error(exc))):
                    raise _Transient(exc, _retry_after(exc)) from exc
                raise
            data = response.read()
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

    def _ns(self, **params: str) -> dict[str, str]:
        return {"namespace": self.namespace, **params}

    def server_version(self) -> dict[str, Any]:
        return dict(self._call("reading the server version", "GET", "/version"))

    def identity(self) -> str | None:
        """Who the API server knows the caller as: a SelfSubjectReview (served from 1.28),
        else the kubeconfig context's user name."""
        try:
            out = self._call("asking the API server who this is", "POST",
                             "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                             body={"apiVersion": "authentication.k8s.io/v1",
                                   "kind": "SelfSubjectReview"})
            name = (((out or {}).get("status") or {}).get("userInfo") or {}).get("username")
            if name:
                return str(name)
        except (NotFound, NotAuthorised, ApiRejected):
            pass  # not served here (before 1.28), or not allowed
        return self.context_user

    def namespace_exists(self) -> bool | None:
        """Whether the gateway's namespace exists; None when we may not read namespaces."""
        try:
            self._call(f"reading namespace {self.namespace}", "GET", "/api/v1/namespaces/{name}",
                       params={"name": self.namespace})
        except NotFound:
            return False
        except NotAuthorised:
            return None
        return True

    def get_deployment(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self._call(f"reading deployment {name}", "GET", DEPLOYMENT,
                                   params=self._ns(name=name)))
        except NotFound:
            return None

    def list_deployments(self, selector: str | None = None) -> list[dict[str, Any]]:
        out = self._call("listing deployments", "GET", DEPLOYMENTS, params=self._ns(),
                         query={"labelSelector": selector})
        return list(out.get("items") or [])

    def list_replicasets(self, selector: str) -> list[dict[str, Any]]:
        out = self._call("listing replicasets", "GET", REPLICASETS, params=self._ns(),
                         query={"labelSelector": selector})
        return list(out.get("items") or [])

    def list_pods(self, selector: str) -> list[dict[str, Any]]:
        out = self._call("listing pods", "GET", PODS, params=self._ns(),
                         query={"labelSelector": selector})
        return list(out.get("items") or [])

    def get_service(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self._call(f"reading service {name}", "GET", SERVICE,
                                   params=self._ns(name=name)))
        except NotFound:
            return None

    def _slices_path(self) -> str | None:
        """The EndpointSlice collection this server serves: discovery.k8s.io/v1 from 1.21,
        v1beta1 before (the lab's 1.20); None when neither is (or discovery fails)."""
        if self._slices is None:
            try:
                group = self._call("reading API group discovery.k8s.io", "GET",
                                   "/apis/discovery.k8s.io")
                served = {v.get("version") for v in (group or {}).get("versions") or []}
            except (NotFound, NotAuthorised):
                served = set()
            version = next((v for v in ("v1", "v1beta1") if v in served), "")
            self._slices = (f"/apis/discovery.k8s.io/{version}/namespaces/{{namespace}}/"
                            "endpointslices") if version else ""
        return self._slices or None

    def list_disruption_budgets(self) -> list[dict[str, Any]]:
        """The namespace's PodDisruptionBudgets: policy/v1 from 1.21, v1beta1 before (the
        lab's 1.20); none where neither is served."""
        if self._budgets is None:
            try:
                group = self._call("reading API group policy", "GET", "/apis/policy")
                served = {v.get("version") for v in (group or {}).get("versions") or []}
            except NotFound:
                served = set()
            version = next((v for v in ("v1", "v1beta1") if v in served), "")
            self._budgets = (f"/apis/policy/{version}/namespaces/{{namespace}}/"
                             "poddisruptionbudgets") if version else ""
        if not self._budgets:
            return []
        out = self._call("listing poddisruptionbudgets", "GET", self._budgets,
                         params=self._ns())
        return list(out.get("items") or [])

    def endpoint_addresses(self, service: str) -> set[str]:
        """Ready addresses of a Service: the union of its EndpointSlices (what kube-proxy
        reads: every IP family, past 1000 addresses), an endpoint counting as ready unless
        its ``ready`` condition says false. core/v1 Endpoints only where slices are not
        served or may not be read."""
        path = self._slices_path()
        if path is not None:
            try:
                out = self._call(f"listing endpointslices of {service}", "GET", path,
                                 params=self._ns(),
                                 query={"labelSelector": f"{SERVICE_NAME_LABEL}={service}"})
            except NotAuthorised:
                self._slices = ""  # not granted: Endpoints from now on
            else:
                return {address for item in out.get("items") or []
                        for ep in item.get("endpoints") or []
                        if (ep.get("conditions") or {}).get("ready") is not False
                        for address in ep.get("addresses") or []}
        try:
            ep = self._call(f"reading endpoints {service}", "GET", ENDPOINTS,
                            params=self._ns(name=service))
        except NotFound:
            return set()
        return {a["ip"] for subset in ep.get("subsets") or []
                for a in subset.get("addresses") or []}

    def list_resource_quotas(self) -> list[dict[str, Any]]:
        out = self._call("listing resourcequotas", "GET", RESOURCE_QUOTAS, params=self._ns())
        return list(out.get("items") or [])

    def list_autoscalers(self) -> list[dict[str, Any]]:
        out = self._call("listing horizontalpodautoscalers", "GET", AUTOSCALERS,
                         params=self._ns())
        return list(out.get("items") or [])

    def list_events(self, object_name: str) -> list[dict[str, Any]]:
        out = self._call("listing events", "GET", EVENTS, params=self._ns(),
                         query={"fieldSelector": f"involvedObject.name={object_name}"})
        items = list(out.get("items") or [])
        items.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return items

    def pod_logs(self, pod: str, container: str, *, tail_lines: int = 10,
                 previous: bool = False) -> list[str]:
        try:
            response = self._send("GET", POD_LOG, params=self._ns(name=pod),
                                  query={"container": container, "tailLines": tail_lines,
                                         "previous": previous})
            text = response.read().decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - logs are a courtesy in a report, never a failure
            return []
        return [line for line in text.splitlines() if line.strip()][-tail_lines:]

    # ------------------------------------------------------------------- writes

    def replace_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        """PUT of the whole object; conditional on its metadata.resourceVersion."""
        name = body["metadata"]["name"]
        return dict(self._call(
            f"replacing deployment {name}", "PUT", DEPLOYMENT, params=self._ns(name=name),
            body=body, safe=bool(body["metadata"].get("resourceVersion"))))

    def create_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call(f"creating deployment {body['metadata']['name']}", "POST",
                               DEPLOYMENTS, params=self._ns(), body=body))

    def delete_deployment(self, name: str) -> None:
        try:
            self._call(f"deleting deployment {name}", "DELETE", DEPLOYMENT,
                       params=self._ns(name=name), query={"propagationPolicy": "Background"})
        except NotFound:
            return

    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call(f"creating job {body['metadata']['name']}", "POST", JOBS,
                               params=self._ns(), body=body, safe=False))

    def get_job(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self._call(f"reading job {name}", "GET", JOB,
                                   params=self._ns(name=name)))
        except NotFound:
            return None

    def delete_job(self, name: str) -> None:
        """Delete a Job and, in the background, its pods."""
        try:
            self._call(f"deleting job {name}", "DELETE", JOB, params=self._ns(name=name),
                       query={"propagationPolicy": "Background"})
        except NotFound:
            return

    def patch_service(self, name: str, patch: dict[str, Any], *,
                      resource_version: str | None = None) -> dict[str, Any]:
        body = dict(patch)
        if resource_version:
            body["metadata"] = {**body.get("metadata", {}), "resourceVersion": resource_version}
        return dict(self._call(
            f"patching service {name}", "PATCH", SERVICE, params=self._ns(name=name),
            body=body, safe=resource_version is not None,
            content_type="application/merge-patch+json"))

    def get_config_map(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self._call(f"reading configmap {name}", "GET", CONFIGMAP,
                                   params=self._ns(name=name)))
        except NotFound:
            return None

    def create_config_map(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call(f"creating configmap {body['metadata']['name']}", "POST",
                               CONFIGMAPS, params=self._ns(), body=body))

    def replace_config_map(self, body: dict[str, Any]) -> dict[str, Any]:
        """Conditional on metadata.resourceVersion: 409 when someone else wrote in between."""
        name = body["metadata"]["name"]
        return dict(self._call(f"updating configmap {name}", "PUT", CONFIGMAP,
                               params=self._ns(name=name), body=body,
                               safe=bool(body["metadata"].get("resourceVersion"))))

    def get_lease(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self._call(f"reading lease {name}", "GET", LEASE,
                                   params=self._ns(name=name)))
        except NotFound:
            return None

    def create_lease(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call(f"creating lease {body['metadata']['name']}", "POST", LEASES,
                               params=self._ns(), body=body))

    def replace_lease(self, body: dict[str, Any]) -> dict[str, Any]:
        """Conditional on metadata.resourceVersion: 409 when someone else wrote in between."""
        name = body["metadata"]["name"]
        return dict(self._call(f"updating lease {name}", "PUT", LEASE,
                               params=self._ns(name=name), body=body,
                               safe=bool(body["metadata"].get("resourceVersion"))))

    def access_rules(self) -> tuple[list[dict[str, Any]], bool]:
        """SelfSubjectRulesReview: the resource rules of the current identity in the
        namespace, and whether the server says that list is incomplete."""
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                "spec": {"namespace": self.namespace}}
        # Creating a review changes nothing, so replaying it is safe.
        out = self._call("asking what we may do", "POST", RULES_REVIEWS, body=body)
        status = (out or {}).get("status") or {}
        return list(status.get("resourceRules") or []), bool(status.get("incomplete"))

    def can_i(self, verb: str, group: str, resource: str, subresource: str = "") -> bool:
        """SelfSubjectAccessReview: may the current identity do this in the namespace?"""
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {"namespace": self.namespace, "verb": verb,
                                                "group": group, "resource": resource,
                                                "subresource": subresource}}}
        # Creating a review changes nothing, so replaying it is safe.
        out = self._call(f"asking whether we may {verb} {resource}", "POST", ACCESS_REVIEWS,
                         body=body)
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
        """The gateway's own HTTP client for the API server's pod proxy, built once (pods
        are asked side by side: the first threads must not build one each)."""
        with self._http_mutex:
            return self._http or self._make_pod_http()

    def _make_pod_http(self) -> httpx.Client:
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
            started = time.monotonic()
            try:
                answer = get(self._pod_http(), url, headers=self._auth_headers(),
                             raise_connect_errors=True)
                _trace(self.requests, "GET", url, started, answer.status, answer.error)
                return answer
            except httpx.ConnectError as exc:
                _trace(self.requests, "GET", url, started, None, type(exc).__name__)
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

    def changes(self, *, deployment: str | None = None, replicasets: str | None = None,
                pod_selector: str | None = None, service: str | None = None,
                config_map: str | None = None) -> ChangeFeed:
        """Start watching a Deployment, ReplicaSets and pods (by label selector), a
        Service's EndpointSlices and/or a ConfigMap; ``feed.wait(t)`` wakes on any change,
        and ``feed.current(source)`` is what the watch has seen so far."""
        sources: list[tuple[str, str, dict[str, Any]]] = []
        if deployment:
            sources.append(("deployment", DEPLOYMENTS,
                            {"fieldSelector": f"metadata.name={deployment}"}))
        if replicasets:
            sources.append(("replicasets", REPLICASETS, {"labelSelector": replicasets}))
        if pod_selector:
            sources.append(("pods", PODS, {"labelSelector": pod_selector}))
        if config_map:
            sources.append(("configmap", CONFIGMAPS, {"fieldSelector":
                                                      f"metadata.name={config_map}"}))
        if service and (path := self._slices_path()) is not None:
            sources.append(("endpointslices", path,
                            {"labelSelector": f"{SERVICE_NAME_LABEL}={service}"}))
        return ChangeFeed(self, sources)


class ChangeFeed:
    """Background watches that wake a waiting step as soon as something changes, and keep
    what they saw: each source's objects as of its last event (an informer's cache).

    Each source lists once for a resourceVersion, then watches from it; when the
    server says 410 Gone (the version is too old) or the stream ends, it lists again
    and carries on. While a source is not in step with the server (before its first
    listing, after an error until it lists again) ``current`` says so (None) and the
    caller reads the cluster itself; so waking and re-reading costs no request when
    the watches are in step, and a missed event costs at most one wait interval.
    """

    def __init__(self, gateway: Gateway, sources: list[tuple[str, str, dict[str, Any]]]):
        self._gateway = gateway
        self._queue: queue.Queue[tuple[str, str]] = queue.Queue()
        self._stop = threading.Event()
        self._mutex = threading.Lock()
        self._seen: dict[str, dict[str, dict[str, Any]]] = {}  # source -> uid -> object
        self._threads = [
            threading.Thread(target=self._run, args=src, daemon=True, name=f"watch-{src[0]}")
            for src in sources
        ]
        for thread in self._threads:
            thread.start()

    def current(self, source: str) -> list[dict[str, Any]] | None:
        """The source's objects as last seen (oldest first), or None when its watch is not
        in step with the server."""
        with self._mutex:
            seen = self._seen.get(source)
            return None if seen is None else list(seen.values())

    def _keep(self, source: str, objects: list[dict[str, Any]] | None) -> None:
        with self._mutex:
            if objects is None:
                self._seen.pop(source, None)
            else:
                self._seen[source] = {_key(o): o for o in objects}

    def _event(self, source: str, kind: str, obj: Any) -> None:
        with self._mutex:
            seen = self._seen.get(source)
            if seen is None or not isinstance(obj, dict) or "metadata" not in obj:
                return
            if kind in ("ADDED", "MODIFIED"):
                seen[_key(obj)] = obj
            elif kind == "DELETED":
                seen.pop(_key(obj), None)

    def _run(self, name: str, path: str, selectors: dict[str, Any]) -> None:
        from kubernetes import watch

        gw = self._gateway

        def open_watch(*, resource_version: str, timeout_seconds: int,
                       _request_timeout: Any = None, **_: Any) -> Any:
            # Watch.stream passes watch=True and _preload_content=False: a watch is
            # always a stream, and the response is handed over unread.
            query = {**selectors, "watch": True, "resourceVersion": resource_version,
                     "timeoutSeconds": timeout_seconds}
            return gw._send("GET", path, params=gw._ns(), query=query,
                            timeout=_request_timeout).response

        while not self._stop.is_set():
            try:
                listing = gw._call(f"listing {name}", "GET", path, params=gw._ns(),
                                   query=selectors)
                rv = listing["metadata"]["resourceVersion"]
                self._keep(name, listing.get("items") or [])
                self._queue.put((name, "LISTED"))
                w = watch.Watch(return_type="object")
                for event in w.stream(open_watch, resource_version=rv, timeout_seconds=60,
                                      deserialize=False, _request_timeout=(5.0, 75.0)):
                    if self._stop.is_set():
                        w.stop()
                        break
                    kind = str(event.get("type"))
                    self._event(name, kind, event.get("object"))
                    self._queue.put((name, kind))
            except Exception as exc:  # noqa: BLE001 - a watch must never kill the run
                self._keep(name, None)  # out of step until listed again
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


def _key(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return str(meta.get("uid") or meta.get("name"))


if TYPE_CHECKING:
    from deployer.gateway import ClusterGateway

    def _conforms(gateway: Gateway) -> ClusterGateway:
        """mypy checks here that the real gateway is what the Protocol describes."""
        return gateway
