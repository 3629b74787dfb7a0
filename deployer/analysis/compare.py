"""Canary against stable without hand-set thresholds, as Kayenta judges: the same query's
values for each track over the same window, compared with the Mann-Whitney U test.

The test asks whether the canary's values tend to be larger (``worse="higher"``: an
error rate, a latency) or smaller (``worse="lower"``: a success rate, throughput) than
stable's. It makes no assumption about their distribution, which for error ratios and
latencies is anything but normal. The check fails when that one-sided p-value is below
``alpha`` (0.05 by default); with fewer than ``min_samples`` values on either side it is
Inconclusive, never a pass. scipy is needed: ``pip install 'deployer[stats]'``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from deployer.analysis.assess import Result
from deployer.errors import InvalidInput

TRACK = "{{track}}"
ALPHA = 0.05
MIN_SAMPLES = 8
WORSE = ("higher", "lower")


def require_scipy() -> None:
    """--compare needs scipy; said before anything changes."""
    try:
        import scipy.stats  # noqa: F401
    except ImportError:
        raise InvalidInput("--compare needs scipy, which is not installed",
                           id="missing-extra",
                           hint="pip install 'deployer[stats]' (or pip install scipy)") from None


def check_query(query: str) -> str:
    if TRACK not in query:
        raise InvalidInput(f"--compare {query!r} has no {TRACK} placeholder: the same query "
                           "must give the canary's values and stable's", id="invalid-compare",
                           hint='e.g. sum(rate(http_requests_total{app="hello",'
                                'track="{{track}}",code=~"5.."}[30s]))')
    return query


@dataclass(frozen=True)
class Comparison:
    query: str
    result: Result
    message: str
    canary: tuple[float, ...] = ()
    stable: tuple[float, ...] = ()
    u: float | None = None
    p: float | None = None

    def to_json(self) -> dict[str, Any]:
        def median(values: tuple[float, ...]) -> float | str | None:
            if not values:
                return None
            middle = statistics.median(values)
            if math.isinf(middle):
                return "+Inf" if middle > 0 else "-Inf"  # as Prometheus writes them
            return middle

        return {"query": self.query, "result": self.result.value, "message": self.message,
                "canary": {"samples": len(self.canary), "median": median(self.canary)},
                "stable": {"samples": len(self.stable), "median": median(self.stable)},
                "u": self.u, "pValue": self.p}


def compare(query: str, canary: list[float], stable: list[float], *, alpha: float = ALPHA,
            worse: str = "higher", min_samples: int = MIN_SAMPLES) -> Comparison:
    c, s = tuple(canary), tuple(stable)
    sizes = f"{len(c)} canary and {len(s)} stable values"
    if len(c) < min_samples or len(s) < min_samples:
        return Comparison(query, Result.INCONCLUSIVE,
                          f"not enough samples to compare: {sizes} (at least {min_samples} "
                          "each)", c, s)
    medians = f"medians {statistics.median(c):.4g} (canary) and {statistics.median(s):.4g} " \
              f"(stable), {sizes}"
    if len(set(c) | set(s)) == 1:
        # every value the same on both sides (no error at all): no difference to test
        return Comparison(query, Result.SUCCESSFUL, f"no difference: {medians}", c, s,
                          None, 1.0)
    from scipy.stats import mannwhitneyu

    test = mannwhitneyu(c, s, alternative="greater" if worse == "higher" else "less")
    u, p = float(test.statistic), float(test.pvalue)
    said = f"{medians}; U={u:g}, p={p:.3g}"
    if p < alpha:
        return Comparison(query, Result.FAILED,
                          f"the canary is significantly {worse} (p < {alpha:g}): {said}",
                          c, s, u, p)
    return Comparison(query, Result.SUCCESSFUL,
                      f"the canary is not significantly {worse} (p >= {alpha:g}): {said}",
                      c, s, u, p)
