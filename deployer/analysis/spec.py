"""The analyses a command line asks for, checked and put in the form a plan keeps.

A plan is recorded in the cluster and may be continued by another process (``deployer
promote`` on another machine, the same CI job re-run), so the spec holds what it needs
itself: the documents of the --analysis files (not their paths), the --arg values, the
probe's settings and the comparisons'. Everything is checked here, before anything in the
cluster changes; a problem is an :class:`InvalidInput` naming the flag or the field.
"""

from __future__ import annotations

import re
from typing import Any

from deployer.analysis.compare import ALPHA, MIN_SAMPLES, WORSE, check_query, require_scipy
from deployer.analysis.template import merge, read
from deployer.errors import InvalidInput

PROBE_REQUESTS = 100
MAX_PROBE_REQUESTS = 1000
_ARG = re.compile(r"^([A-Za-z0-9_.-]+)=(.*)$", re.DOTALL)


def parse_args(values: list[str] | None) -> dict[str, str]:
    """--arg NAME=VALUE, each at most once."""
    out: dict[str, str] = {}
    for text in values or []:
        match = _ARG.match(text)
        if match is None:
            raise InvalidInput(f"--arg {text!r} is not NAME=VALUE", id="invalid-analysis",
                               hint="e.g. --arg service-name=hello")
        name, value = match.groups()
        if name in out and out[name] != value:
            raise InvalidInput(f"--arg {name} is given twice, as {out[name]!r} and {value!r}",
                               id="invalid-analysis")
        out[name] = value
    return out


def error_rate(text: str) -> float:
    """--max-error-rate: a percentage from 0 to 100, decimals allowed (0.5 or 0.5%)."""
    digits = text.strip().removesuffix("%")
    try:
        value = float(digits)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 100.0 or digits.lower() in ("nan", "inf"):
        raise InvalidInput(f"--max-error-rate {text!r} is not a percentage from 0 to 100",
                           id="invalid-probe", hint="e.g. --max-error-rate 5 (five percent)")
    return value


def build(*, files: list[str] | None = None, args: list[str] | None = None,
          probe: str | None = None, max_error_rate: str | None = None,
          probe_requests: int | None = None, compare: list[str] | None = None,
          prometheus: str | None = None, alpha: float | None = None,
          worse: str | None = None) -> dict[str, Any] | None:
    """The spec (see :func:`deployer.model.analyses`), or None when nothing is asked."""
    given = parse_args(args)
    spec: dict[str, Any] = {}
    if given and not files:
        raise InvalidInput("--arg is given without --analysis: no template takes it",
                           id="invalid-analysis")
    if files:
        templates = read(files)
        analysis = merge(templates, given)
        spec.update(templates=templates, args=given,
                    metrics=[m.name for m in analysis.metrics],
                    jobs=any(m.provider == "job" for m in analysis.metrics))
    if probe is None and (max_error_rate is not None or probe_requests is not None):
        raise InvalidInput("--max-error-rate and --probe-requests go with --probe PATH",
                           id="invalid-probe")
    if probe is not None:
        if not probe.startswith("/") or any(c.isspace() for c in probe):
            raise InvalidInput(f"--probe {probe!r} is not a path such as / or /api/health",
                               id="invalid-probe")
        if max_error_rate is None:
            raise InvalidInput("--probe needs --max-error-rate PCT: the error rate above "
                               "which the new version fails", id="invalid-probe",
                               hint="e.g. --probe / --max-error-rate 5")
        requests = PROBE_REQUESTS if probe_requests is None else probe_requests
        if not 1 <= requests <= MAX_PROBE_REQUESTS:
            raise InvalidInput(f"--probe-requests {requests} is invalid: use 1 to "
                               f"{MAX_PROBE_REQUESTS}", id="invalid-probe")
        spec["probe"] = {"path": probe, "maxErrorRate": error_rate(max_error_rate),
                         "requests": requests}
    if not compare and (prometheus is not None or alpha is not None or worse is not None):
        raise InvalidInput("--prometheus, --compare-alpha and --compare-worse go with "
                           "--compare QUERY", id="invalid-compare")
    if compare:
        if not prometheus:
            raise InvalidInput("--compare needs --prometheus URL: where the queries are run",
                               id="invalid-compare", hint="e.g. --prometheus "
                                                          "http://prometheus.monitoring:9090")
        if not _http_url(prometheus):
            raise InvalidInput(f"--prometheus {prometheus!r} is not an http(s) URL",
                               id="invalid-compare", hint="e.g. http://prometheus:9090")
        level = ALPHA if alpha is None else alpha
        if not 0.0 < level < 0.5:
            raise InvalidInput(f"--compare-alpha {level:g} is invalid: a significance level "
                               "above 0 and below 0.5 (0.05 is usual)", id="invalid-compare")
        direction = worse or WORSE[0]
        if direction not in WORSE:
            raise InvalidInput(f"--compare-worse {direction!r} is invalid: higher (an error "
                               "rate, a latency) or lower (a success rate)",
                               id="invalid-compare")
        spec["compare"] = {"queries": [check_query(q) for q in compare],
                           "prometheus": prometheus.rstrip("/"), "alpha": level,
                           "worse": direction, "minSamples": MIN_SAMPLES}
        require_scipy()
    return spec or None


def _http_url(text: str) -> bool:
    """An http(s) URL with a host, a whole port if any, and no space."""
    from urllib.parse import urlsplit

    if any(c.isspace() for c in text):
        return False
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
