"""HTTP ``/version`` checks: which version does each pod (or the Service) answer?

A sample is one GET. Anything but a plain 200 with a short version string is an
error sample, never a success: a timeout, a 5xx, a redirect (not followed), a TLS
failure, an HTML page or binary garbage. A target is verified after N
consecutive matching samples and fails after M consecutive answers of another
version (a measured failure) or E consecutive error samples (could not measure).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import httpx

from deployer.model import Measurement, Phase

CHECK = "http-version"
VERSION_TEXT = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$")


@dataclass(frozen=True)
class Sample:
    target: str
    version: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def sample_version(client: httpx.Client, url: str, target: str) -> Sample:
    try:
        response = client.get(url)
    except httpx.TimeoutException:
        return Sample(target, error="timed out")
    except httpx.HTTPError as exc:
        return Sample(target, error=f"{type(exc).__name__}: {exc}"[:200])
    if response.is_redirect:
        return Sample(target, error=f"HTTP {response.status_code} redirect to "
                                    f"{response.headers.get('location', '?')} (not followed)")
    if response.status_code != 200:
        return Sample(target, error=f"HTTP {response.status_code}")
    body = response.content[:256].decode("utf-8", "replace").strip()
    if not VERSION_TEXT.match(body):
        return Sample(target, error=f"answer is not a version string: {body[:40]!r}")
    return Sample(target, version=body)


@dataclass
class _Counter:
    good: int = 0
    bad: int = 0
    errors: int = 0
    last: Sample | None = None


@dataclass
class VersionCheck:
    """Consecutive-sample bookkeeping per target (a pod, or a client address)."""

    expected: str
    samples: int = 3
    failure_limit: int = 3
    error_limit: int = 5
    _counters: dict[str, _Counter] = field(default_factory=dict)

    def record(self, sample: Sample) -> None:
        c = self._counters.setdefault(sample.target, _Counter())
        c.last = sample
        if sample.error is not None:
            c.errors += 1
            c.good = 0
        elif sample.version == self.expected:
            c.good += 1
            c.bad = 0
            c.errors = 0
        else:
            c.bad += 1
            c.good = 0
            c.errors = 0

    def verified(self, target: str) -> bool:
        c = self._counters.get(target)
        return bool(c and c.good >= self.samples)

    def evaluate(self, targets: list[str]) -> Measurement:
        answers = {t: (c.last.version or c.last.error) for t, c in self._counters.items()
                   if t in targets and c.last}
        details = {"expected": self.expected, "answers": answers}
        for target in targets:
            c = self._counters.get(target)
            if c and c.bad >= self.failure_limit and c.last:
                return Measurement(CHECK, Phase.FAILED,
                                   f"{target} answers version {c.last.version!r}, expected "
                                   f"{self.expected!r} ({c.bad} samples in a row)", details)
            if c and c.errors >= self.error_limit and c.last:
                return Measurement(CHECK, Phase.ERROR,
                                   f"could not read the version of {target}: {c.last.error} "
                                   f"({c.errors} samples in a row)", details)
        done = [t for t in targets if self.verified(t)]
        if targets and len(done) == len(targets):
            return Measurement(CHECK, Phase.SUCCESSFUL,
                               f"{len(done)} pods answer {self.expected} "
                               f"({self.samples} samples each)", details)
        return Measurement(CHECK, Phase.RUNNING,
                           f"{len(done)} of {len(targets)} pods verified as {self.expected}",
                           details)
