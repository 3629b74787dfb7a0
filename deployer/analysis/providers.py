"""Taking one measurement of a metric: the ``prometheus`` and ``web`` providers.

Each returns the value the metric's conditions are evaluated on, and a line saying what
was asked, for the report; a measurement that could not be taken raises
:class:`MeasureError` (the measurement is an Error, as in Argo Rollouts).

- ``prometheus``: an instant query (``GET {address}/api/v1/query``); ``result`` is the
  vector's values (a list of numbers, ``NaN`` included), or the number of a scalar. A query
  that matches no series gives ``[]``: ``len(result) == 0`` is how a condition says what
  that means. Other result types (a range vector, a string) are an Error.
- ``web``: ``GET``, ``POST`` or ``PUT`` of ``url`` with ``headers`` and ``body`` (or
  ``jsonBody``), within ``timeoutSeconds`` (10); the answer must be JSON with a 2xx status;
  ``result`` is what ``jsonPath`` (Kubernetes' ``{$.a.b}`` form) selects, the whole body
  without one.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

PROMETHEUS_TIMEOUT = 30.0  # seconds, when the template gives none
WEB_TIMEOUT = 10.0  # seconds, Argo's default


class MeasureError(Exception):
    """The measurement could not be taken, or its answer not read."""


def _headers(settings: dict[str, Any]) -> dict[str, str]:
    return {h["key"]: h["value"] for h in settings.get("headers") or []}


def _shown(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def prometheus(client: httpx.Client, settings: dict[str, Any]) -> tuple[Any, str]:
    """One instant query. ``settings``: the provider's fields, arguments filled in."""
    address = settings["address"].rstrip("/")
    query = settings["query"]
    asked = f"prometheus {address}: {_shown(query)}"
    data = _ask_prometheus(client, f"{address}/api/v1/query", {"query": query}, asked,
                           _headers(settings),
                           float(settings.get("timeout") or PROMETHEUS_TIMEOUT))
    kind, result = data.get("resultType"), data.get("result") or []
    try:
        if kind == "vector":
            return [_sample(s["value"][1]) for s in result], asked
        if kind == "scalar":
            return _sample(result[1]), asked
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise MeasureError(f"{asked}: a {kind} deployer cannot read: {exc}") from None
    raise MeasureError(f"{asked}: the query gives a {kind}; deployer judges instant vectors "
                       "and scalars (a range vector [5m] needs a function such as rate())")


def _ask_prometheus(client: httpx.Client, url: str, params: dict[str, str], asked: str,
                    headers: dict[str, str], timeout: float) -> dict[str, Any]:
    """The ``data`` of Prometheus's answer to one API request; anything else is an Error."""
    import httpx

    try:
        response = client.get(url, params=params, headers=headers, timeout=timeout)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise MeasureError(f"{asked}: {type(exc).__name__}: {_shown(str(exc))}") from None
    try:
        body = response.json()
    except ValueError:
        raise MeasureError(f"{asked}: HTTP {response.status_code}, not JSON: "
                           f"{_shown(response.text)}") from None
    if not isinstance(body, dict):
        raise MeasureError(f"{asked}: HTTP {response.status_code}, not Prometheus's answer: "
                           f"{_shown(response.text)}")
    if body.get("status") != "success":
        raise MeasureError(f"{asked}: HTTP {response.status_code}, "
                           f"{body.get('errorType') or 'error'}: {body.get('error')}")
    return dict(body.get("data") or {})


def _sample(text: Any) -> float:
    return float(text)  # Prometheus writes "NaN", "+Inf" and "-Inf", which float() reads


def web(client: httpx.Client, settings: dict[str, Any]) -> tuple[Any, str]:
    """One request, its JSON answer (or the part ``jsonPath`` selects)."""
    import httpx

    method = settings.get("method") or "GET"
    url = settings["url"]
    asked = f"web {method} {url}"
    headers = _headers(settings)
    content: bytes | None = None
    if "jsonBody" in settings:
        content = json.dumps(settings["jsonBody"]).encode()
        headers.setdefault("Content-Type", "application/json")
    elif "body" in settings:
        content = str(settings["body"]).encode()
    try:
        response = client.request(method, url, headers=headers, content=content,
                                  timeout=float(settings.get("timeoutSeconds") or WEB_TIMEOUT))
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise MeasureError(f"{asked}: {type(exc).__name__}: {_shown(str(exc))}") from None
    if not 200 <= response.status_code < 300:
        raise MeasureError(f"{asked}: HTTP {response.status_code}: {_shown(response.text)}")
    try:
        body = response.json()
    except ValueError:
        raise MeasureError(f"{asked}: the answer is not JSON: {_shown(response.text)}") from None
    path = settings.get("jsonPath")
    if not path:
        return body, asked
    return select(body, path, asked), f"{asked} {path}"


def client_for(settings: dict[str, Any]) -> httpx.Client:
    """An HTTP client as the provider's settings ask: ``insecure`` skips TLS verification,
    ``caCert`` (PEM) is trusted on top of the system's authorities."""
    import ssl

    import httpx

    if settings.get("insecure"):
        return httpx.Client(verify=False, follow_redirects=False, trust_env=False)
    context = ssl.create_default_context()
    if settings.get("caCert"):
        try:
            context.load_verify_locations(cadata=settings["caCert"])
        except ssl.SSLError as exc:
            raise MeasureError(f"caCert is not a PEM certificate: {exc}") from None
    return httpx.Client(verify=context, follow_redirects=False, trust_env=False)


def json_path(path: str) -> Any:
    """A Kubernetes-style JSONPath (``{$.data.ok}``, ``{.items[0].v}``) parsed; ValueError
    when it is not one."""
    from jsonpath_ng.ext import parse

    expression = path.strip()
    if expression.startswith("{") and expression.endswith("}"):
        expression = expression[1:-1].strip()
    if expression.startswith("."):
        expression = "$" + expression
    try:
        return parse(expression)
    except Exception as exc:  # noqa: BLE001 - the parser raises several kinds
        raise ValueError(str(exc)) from None


def select(body: Any, path: str, asked: str = "") -> Any:
    """What a Kubernetes-style JSONPath (``{$.data.ok}``, ``{.items[0].v}``) selects: one
    match as itself, several as a list, none is an Error."""
    try:
        matches = [m.value for m in json_path(path).find(body)]
    except ValueError as exc:
        raise MeasureError(f"{asked}: jsonPath {path!r}: {exc}") from None
    if not matches:
        raise MeasureError(f"{asked}: jsonPath {path!r} selects nothing in "
                           f"{_shown(json.dumps(body))}")
    return matches[0] if len(matches) == 1 else matches


def prometheus_range(client: httpx.Client, address: str, query: str, start: float,
                     end: float, step: float) -> list[float]:
    """A range query's values from start to end (epoch seconds) every ``step``, of every
    series pooled; NaN left out (a ratio over no requests)."""
    import math

    address = address.rstrip("/")
    asked = f"prometheus {address} range: {_shown(query)}"
    data = _ask_prometheus(client, f"{address}/api/v1/query_range",
                           {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}",
                            "step": f"{step:g}"}, asked, {}, PROMETHEUS_TIMEOUT)
    if data.get("resultType") != "matrix":
        raise MeasureError(f"{asked}: a {data.get('resultType')}, not a matrix")
    try:
        values = [_sample(v[1]) for series in data.get("result") or []
                  for v in series["values"]]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise MeasureError(f"{asked}: a matrix deployer cannot read: {exc}") from None
    return [v for v in values if not math.isnan(v)]
