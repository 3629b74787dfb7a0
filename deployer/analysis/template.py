"""Analysis templates from files, in Argo Rollouts' format (``argoproj.io/v1alpha1``
``AnalysisTemplate`` and ``ClusterAnalysisTemplate``).

Everything is checked when the files are loaded, before anything changes: a field deployer
does not know or does not support, a provider other than ``prometheus``, ``web`` and ``job``,
a condition outside the expression subset (:mod:`deployer.analysis.conditions`), a
duration or a limit that is not one, an argument without a value. Each is refused with the
file and the field named (exit 2), never ignored. Several templates (``---`` in one file,
or several files) are merged as Argo merges them: metric names must be unique, and an
argument given two different values is an error.

Argo's defaults and meanings: without ``interval`` a metric is measured once (``count``
1); with ``interval`` and no ``count`` it is measured until its step's time is up;
``failureLimit`` and ``inconclusiveLimit`` default to 0 (the first Failed or Inconclusive
measurement decides), ``consecutiveErrorLimit`` to 4, a web metric's ``timeoutSeconds`` to
10 (see :mod:`deployer.analysis.providers`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployer.analysis.conditions import Condition
from deployer.analysis.providers import json_path
from deployer.errors import InvalidInput
from deployer.validation import parse_duration

API_VERSION = "argoproj.io/v1alpha1"
KINDS = ("AnalysisTemplate", "ClusterAnalysisTemplate")
PROVIDERS = ("prometheus", "web", "job")
CONSECUTIVE_ERROR_LIMIT = 4  # Argo's default

# The arguments deployer gives every analysis (deployer.engine.analysing.arguments); a
# template may declare
# them without a value.
PROVIDED = ("app", "namespace", "canary-track", "stable-track", "new-version", "old-version",
            "canary-hash", "stable-hash", "latest-hash")

_PLACEHOLDER = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}")
_METRIC_FIELDS = {"name", "interval", "initialDelay", "count", "successCondition",
                  "failureCondition", "failureLimit", "inconclusiveLimit",
                  "consecutiveErrorLimit", "provider"}
_PROVIDER_FIELDS = {
    "prometheus": {"address", "query", "timeout", "insecure", "headers", "caCert"},
    "web": {"url", "method", "headers", "body", "jsonBody", "timeoutSeconds", "jsonPath",
            "insecure"},
    "job": {"metadata", "spec"},
}
_UNSUPPORTED = {  # what Argo has and deployer refuses, with why
    "dryRun": "dry-run metrics are not supported: every metric decides",
    "measurementRetention": "every measurement is kept in the report",
    "valueFrom": "arguments from Secrets or fields are not supported: pass --arg NAME=VALUE",
    "authentication": "Prometheus authentication (sigv4, oauth2, basicAuth) is not "
                      "supported: a header (Authorization) can carry credentials",
    "rangeQuery": "range queries are not supported: deployer judges instant queries",
}


@dataclass(frozen=True)
class Metric:
    name: str
    provider: str  # prometheus, web or job
    settings: dict[str, Any]  # the provider's fields, arguments not yet filled in
    count: int | None  # None: until the step's time is up
    interval: float | None  # seconds
    initial_delay: float
    success: Condition | None
    failure: Condition | None
    failure_limit: int
    inconclusive_limit: int
    consecutive_error_limit: int
    source: str  # "FILE (template NAME)"


@dataclass(frozen=True)
class Analysis:
    """The merged templates: their arguments (None: no value yet) and metrics."""

    args: dict[str, str | None] = field(default_factory=dict)
    metrics: tuple[Metric, ...] = ()

    def missing(self, given: dict[str, str]) -> list[str]:
        """Arguments that would have no value with these, deployer's aside."""
        return [name for name, value in self.args.items()
                if value is None and name not in given and name not in PROVIDED]


def load(paths: list[str], given: dict[str, str] | None = None) -> Analysis:
    """The templates in these files, checked and merged; ``given``: the --arg values,
    which must each be declared by a template."""
    return merge(read(paths), given)


def read(paths: list[str]) -> list[dict[str, Any]]:
    """The documents of these files as they are, each with the file it came from: what a
    plan keeps, so that a run continued elsewhere judges by the same templates."""
    import json

    # as JSON values (a YAML date becomes its text, as it would in the Kubernetes API), so
    # that the plan can be recorded
    return [{"source": path, "document": json.loads(json.dumps(doc, default=str))}
            for path in paths for doc in _documents(path)]


def merge(documents: list[dict[str, Any]], given: dict[str, str] | None = None) -> Analysis:
    """Documents (from :func:`read`) checked and merged; ``given``: the --arg values."""
    args: dict[str, str | None] = {}
    where: dict[str, str] = {}
    metrics: list[Metric] = []
    numbers: dict[str, int] = {}
    for entry in documents:
        path, doc = str(entry["source"]), entry["document"]
        number = numbers[path] = numbers.get(path, 0) + 1
        name, declared, found = _template(path, number, doc)
        for arg, value in declared.items():
            if arg in args and value is not None and args[arg] is not None \
                    and args[arg] != value:
                raise InvalidInput(
                    f"{name}: argument {arg!r} has the value {value!r}, and {where[arg]} "
                    f"gave it {args[arg]!r}", id="invalid-analysis",
                    hint="an argument given two different values cannot be merged; "
                         "drop one, or pass it with --arg")
            if arg not in args or args[arg] is None:
                args[arg], where[arg] = value, name
        for metric in found:
            twin = next((m for m in metrics if m.name == metric.name), None)
            if twin is not None:
                raise InvalidInput(f"{metric.source}: metric {metric.name!r} is also in "
                                   f"{twin.source}", id="invalid-analysis",
                                   hint="metric names must be unique across templates")
            metrics.append(metric)
    for arg in given or {}:
        if arg not in args:
            known = ", ".join(sorted(args)) or "none"
            raise InvalidInput(f"--arg {arg}: no template declares an argument {arg!r} "
                               f"(declared: {known})", id="invalid-analysis")
    analysis = Analysis(args, tuple(metrics))
    missing = analysis.missing(given or {})
    if missing:
        raise InvalidInput(f"analysis argument {', '.join(repr(m) for m in missing)} has no "
                           "value", id="invalid-analysis",
                           hint=" ".join(f"--arg {m}=VALUE" for m in missing))
    return analysis


def fill(text: str, values: dict[str, str]) -> str:
    """``{{args.NAME}}`` (spaces allowed inside the braces) replaced by its value."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(name)
        return values[name]

    return _PLACEHOLDER.sub(value, text)


def filled(settings: Any, values: dict[str, str]) -> Any:
    """A provider's settings with every argument placeholder filled in, recursively."""
    if isinstance(settings, str):
        return fill(settings, values)
    if isinstance(settings, list):
        return [filled(v, values) for v in settings]
    if isinstance(settings, dict):
        return {k: filled(v, values) for k, v in settings.items()}
    return settings


# ---------------------------------------------------------------- reading, checking


def _documents(path: str) -> list[dict[str, Any]]:
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"--analysis {path}: cannot read it ({exc.strerror})",
                           id="invalid-analysis") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise InvalidInput(f"--analysis {path}: not YAML ({exc})".replace("\n", " "),
                           id="invalid-analysis") from None
    if not docs:
        raise InvalidInput(f"--analysis {path}: holds no template", id="invalid-analysis")
    return docs


def _template(path: str, number: int, doc: Any) -> tuple[str, dict[str, str | None],
                                                          list[Metric]]:
    at = f"{path} (document {number})"
    if not isinstance(doc, dict):
        raise InvalidInput(f"{at}: not a mapping", id="invalid-analysis")
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") not in KINDS:
        raise InvalidInput(f"{at}: apiVersion {doc.get('apiVersion')!r}, kind "
                           f"{doc.get('kind')!r}: deployer reads {API_VERSION} "
                           f"{' and '.join(KINDS)}", id="invalid-analysis")
    name = f"{path} ({doc['kind']} {((doc.get('metadata') or {}).get('name')) or number})"
    _only(doc, {"apiVersion", "kind", "metadata", "spec"}, name)
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        raise InvalidInput(f"{name}: spec is missing", id="invalid-analysis")
    _only(spec, {"args", "metrics"}, f"{name}: spec")
    args: dict[str, str | None] = {}
    for i, arg in enumerate(_list(spec.get("args"), f"{name}: spec.args")):
        where = f"{name}: spec.args[{i}]"
        if not isinstance(arg, dict) or not isinstance(arg.get("name"), str):
            raise InvalidInput(f"{where}: an argument needs a name", id="invalid-analysis")
        _only(arg, {"name", "value"}, where)
        value = arg.get("value")
        args[arg["name"]] = None if value is None else str(value)
    metrics = [_metric(m, f"{name}: spec.metrics[{i}]", name, set(args))
               for i, m in enumerate(_list(spec.get("metrics"), f"{name}: spec.metrics"))]
    if not metrics:
        raise InvalidInput(f"{name}: spec.metrics is empty", id="invalid-analysis")
    return name, args, metrics


def _metric(raw: Any, where: str, source: str, declared: set[str]) -> Metric:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise InvalidInput(f"{where}: a metric needs a name", id="invalid-analysis")
    where = f"{source}: metric {raw['name']!r}"
    _only(raw, _METRIC_FIELDS, where)
    provider = raw.get("provider")
    if not isinstance(provider, dict) or len(provider) != 1:
        raise InvalidInput(f"{where}: provider must name exactly one of "
                           f"{', '.join(PROVIDERS)}", id="invalid-analysis")
    (kind, settings), = provider.items()
    if kind not in PROVIDERS:
        raise InvalidInput(f"{where}: provider {kind!r} is not supported (deployer has "
                           f"{', '.join(PROVIDERS)})", id="invalid-analysis")
    if not isinstance(settings, dict):
        raise InvalidInput(f"{where}: provider.{kind} must be a mapping", id="invalid-analysis")
    _only(settings, _PROVIDER_FIELDS[kind], f"{where}: provider.{kind}")
    _check_provider(kind, settings, f"{where}: provider.{kind}")
    _check_placeholders(settings, declared, f"{where}: provider.{kind}")
    interval = _duration(raw.get("interval"), f"{where}: interval", declared)
    count = _whole(raw.get("count"), f"{where}: count", declared, minimum=1)
    if count is None and interval is None:
        count = 1  # Argo: without an interval, one measurement
    if count is not None and count > 1 and interval is None:
        raise InvalidInput(f"{where}: count {count} needs an interval between the "
                           "measurements", id="invalid-analysis")
    if kind == "job" and (raw.get("successCondition") or raw.get("failureCondition")):
        raise InvalidInput(f"{where}: a job metric is decided by the Job itself (succeeded "
                           "or failed); successCondition and failureCondition do not apply",
                           id="invalid-analysis")
    success, failure = (Condition(str(raw[key]), f"{where}: {key}") if raw.get(key) else None
                        for key in ("successCondition", "failureCondition"))
    return Metric(
        name=raw["name"], provider=kind, settings=settings, count=count, interval=interval,
        initial_delay=_duration(raw.get("initialDelay"), f"{where}: initialDelay",
                                declared) or 0.0,
        success=success, failure=failure,
        failure_limit=_whole(raw.get("failureLimit"), f"{where}: failureLimit", declared) or 0,
        inconclusive_limit=_whole(raw.get("inconclusiveLimit"), f"{where}: inconclusiveLimit",
                                  declared) or 0,
        consecutive_error_limit=_limit(raw, "consecutiveErrorLimit", CONSECUTIVE_ERROR_LIMIT,
                                       where, declared),
        source=source)


def _check_provider(kind: str, s: dict[str, Any], where: str) -> None:
    def text(key: str, required: bool = True) -> None:
        if key in s and not isinstance(s[key], str) or required and not s.get(key):
            raise InvalidInput(f"{where}.{key} must be {'a non-empty' if required else 'a'} "
                               "string", id="invalid-analysis")

    if kind == "prometheus":
        text("address")
        text("query")
        if "timeout" in s and (not isinstance(s["timeout"], int) or s["timeout"] <= 0):
            raise InvalidInput(f"{where}.timeout must be a whole number of seconds above 0",
                               id="invalid-analysis")
        _headers(s.get("headers"), f"{where}.headers")
        text("caCert", required=False)
    elif kind == "web":
        text("url")
        method = s.get("method", "GET")
        if method not in ("GET", "POST", "PUT"):
            raise InvalidInput(f"{where}.method {method!r}: GET, POST or PUT",
                               id="invalid-analysis")
        if "body" in s and "jsonBody" in s:
            raise InvalidInput(f"{where}: body and jsonBody are exclusive",
                               id="invalid-analysis")
        if method == "GET" and ("body" in s or "jsonBody" in s):
            raise InvalidInput(f"{where}: a GET sends no body", id="invalid-analysis")
        text("body", required=False)
        text("jsonPath", required=False)
        if s.get("jsonPath"):
            try:
                json_path(s["jsonPath"])
            except ValueError as exc:
                raise InvalidInput(f"{where}.jsonPath {s['jsonPath']!r} is not a JSONPath: "
                                   f"{exc}", id="invalid-analysis") from None
        timeout = s.get("timeoutSeconds")
        if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool)
                                    or timeout <= 0):
            raise InvalidInput(f"{where}.timeoutSeconds must be a whole number of seconds "
                               "above 0", id="invalid-analysis")
        _headers(s.get("headers"), f"{where}.headers")
    elif kind == "job":
        spec = s.get("spec")
        if not isinstance(spec, dict) or not isinstance(spec.get("template"), dict):
            raise InvalidInput(f"{where}.spec must be a Job spec with a pod template",
                               id="invalid-analysis")
    if "insecure" in s and not isinstance(s["insecure"], bool):
        raise InvalidInput(f"{where}.insecure must be true or false", id="invalid-analysis")


def _headers(headers: Any, where: str) -> None:
    if headers is None:
        return
    if not isinstance(headers, list) or not all(
            isinstance(h, dict) and set(h) == {"key", "value"} and isinstance(h["key"], str)
            and isinstance(h["value"], str) for h in headers):
        raise InvalidInput(f"{where} must be a list of {{key, value}} strings",
                           id="invalid-analysis")


def _check_placeholders(settings: Any, declared: set[str], where: str) -> None:
    for text in _strings(settings):
        for name in _PLACEHOLDER.findall(text):
            if name not in declared:
                raise InvalidInput(f"{where} uses {{{{args.{name}}}}}, which the template "
                                   "does not declare in spec.args", id="invalid-analysis")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


def _only(mapping: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in mapping:
        if key in allowed:
            continue
        why = _UNSUPPORTED.get(key)
        raise InvalidInput(f"{where}: field {key!r} " + (f"is not supported ({why})" if why else
                                                         "is not one deployer knows"),
                           id="invalid-analysis",
                           hint=f"known here: {', '.join(sorted(allowed))}")


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"{where} must be a list", id="invalid-analysis")
    return value


def _placeholder_only(value: Any, declared: set[str], where: str) -> bool:
    """An IntOrString set to an argument: checked when the analysis runs, with values."""
    if isinstance(value, str) and _PLACEHOLDER.fullmatch(value.strip()):
        _check_placeholders(value, declared, where)
        return True
    return False


def _duration(value: Any, where: str, declared: set[str]) -> float | None:
    if value is None:
        return None
    if _placeholder_only(value, declared, where):
        raise InvalidInput(f"{where}: an argument as a duration is not supported",
                           id="invalid-analysis", hint="write the duration itself, e.g. 30s")
    return parse_duration(str(value), where)


def _whole(value: Any, where: str, declared: set[str], minimum: int = 0) -> int | None:
    if value is None:
        return None
    if _placeholder_only(value, declared, where):
        raise InvalidInput(f"{where}: an argument as a number is not supported",
                           id="invalid-analysis", hint="write the number itself")
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"\d+", text) or int(text) < minimum:
        raise InvalidInput(f"{where} is {value!r}: a whole number of at least {minimum}",
                           id="invalid-analysis")
    return int(text)


def _limit(raw: dict[str, Any], key: str, default: int, where: str, declared: set[str]) -> int:
    value = _whole(raw.get(key), f"{where}: {key}", declared)
    return default if value is None else value
