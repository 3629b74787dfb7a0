"""HTTP ``/version`` checks: which version does each pod (or the Service) answer?

A sample is one GET. Anything but a plain 200 with a short version string is an
error sample, never a success: a timeout, a 5xx, a redirect (not followed), a TLS
failure, an HTML page or binary garbage. A target is verified after N
consecutive matching samples and fails after M consecutive answers of another
version (a measured failure) or E consecutive error samples (could not measure).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx

from deployer.http_get import get
from deployer.model import HttpAnswer, Measurement, Phase

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


def judge(answer: HttpAnswer, target: str) -> Sample:
    """One answer as a sample: a version, or the reason it is none."""
    if answer.error is not None:
        return Sample(target, error=answer.error)
    if answer.status in (301, 302, 303, 307, 308):
        return Sample(target, error=f"HTTP {answer.status} redirect to "
                                    f"{answer.location or '?'} (not followed)")
    if answer.status != 200:
        return Sample(target, error=f"HTTP {answer.status}")
    body = answer.body[:256].decode("utf-8", "replace").strip()
    if not VERSION_TEXT.match(body):
        return Sample(target, error=f"answer is not a version string: {body[:40]!r}")
    return Sample(target, version=body)


def sample_version(client: httpx.Client, url: str, target: str) -> Sample:
    return judge(get(client, url), target)


class PodGateway(Protocol):
    """What the probe needs of the cluster gateway."""

    def pod_get(self, pod: str, port: int | str, path: str) -> HttpAnswer: ...


@dataclass(frozen=True)
class ProbeOptions:
    """How a pod's version is read: ``via`` "proxy" (through the API server), "pod-ip"
    (straight to the pod) or "url" (``url_template`` with ``{pod_ip}``, ``{pod}``,
    ``{namespace}``, ``{port}``)."""

    via: str = "proxy"
    path: str = "/version"
    url_template: str | None = None


class VersionProbe:
    """The one way deployer asks a pod which version it runs."""

    def __init__(self, gateway: PodGateway, options: ProbeOptions | None = None):
        self.gateway = gateway
        self.options = options or ProbeOptions()
        self._client: httpx.Client | None = None

    def sample(self, pod: dict[str, Any], port: int | str) -> Sample:
        return judge(self.answer(pod, port), pod["metadata"]["name"])

    def answer(self, pod: dict[str, Any], port: int | str, path: str | None = None
               ) -> HttpAnswer:
        """One GET of ``path`` (the version path by default) from a pod, by the same route
        as the version check."""
        if self.options.via == "proxy":
            return self.gateway.pod_get(pod["metadata"]["name"], port,
                                        path or self.options.path)
        url = self._url(pod, port)
        if path is not None:
            parts = urlsplit(url)
            wanted = urlsplit(path)
            url = urlunsplit((parts.scheme, parts.netloc, wanted.path, wanted.query, ""))
        return get(self._http(), url)

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=httpx.Timeout(5.0, connect=2.0),
                                        follow_redirects=False)
        return self._client

    def _url(self, pod: dict[str, Any], port: int | str) -> str:
        ip = (pod.get("status") or {}).get("podIP")
        if self.options.via == "url" and self.options.url_template:
            return self.options.url_template.format(
                pod_ip=ip, pod=pod["metadata"]["name"],
                namespace=pod["metadata"].get("namespace", ""), port=port)
        return f"http://{ip}:{port}{self.options.path}"

    def versions(self, pods: list[dict[str, Any]], port: int | str) -> dict[str, str]:
        """Each pod's answer once: its version, or ``error: ...``. The pods are asked side
        by side, 8 at a time: a pod's first answer through the proxy waits for the API
        server to reach it (tens of milliseconds), and a deploy reads them all before its
        first write."""
        if len(pods) > 1:
            from concurrent.futures import ThreadPoolExecutor

            if self.options.via != "proxy":
                self._http()  # one client, made before the threads share it
            with ThreadPoolExecutor(max_workers=min(8, len(pods)),
                                    thread_name_prefix="version") as pool:
                samples = list(pool.map(lambda pod: self.sample(pod, port), pods))
        else:
            samples = [self.sample(pod, port) for pod in pods]
        return {s.target: s.version or f"error: {s.error}" for s in samples}

    def error_rate(self, pods: list[dict[str, Any]], port: int | str, path: str,
                   requests: int) -> ErrorRate:
        """``requests`` GETs of ``path`` spread evenly over ``pods`` (each pod at least once),
        8 at a time, by the version check's route."""
        if not pods:
            return ErrorRate(0, 0, 0)
        total = max(requests, len(pods))
        targets = [pods[i % len(pods)] for i in range(total)]

        def one(pod: dict[str, Any]) -> str | None:
            answer = self.answer(pod, port, path)
            if answer.error is not None:
                return answer.error.split(":")[0]
            if answer.status is None or not 200 <= answer.status < 300:
                return f"HTTP {answer.status}"
            return None

        from concurrent.futures import ThreadPoolExecutor

        if self.options.via != "proxy":
            self._http()  # one client, made before the threads share it
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="probe") as pool:
            results = list(pool.map(one, targets))
        kinds = Counter(r for r in results if r is not None)
        return ErrorRate(len(pods), total, sum(kinds.values()), dict(kinds))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> VersionProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class ErrorRate:
    """What the error-rate probe got from one set of pods: requests sent, how many failed
    (a status outside 2xx, a timeout, no answer), and the failures by kind."""

    pods: int
    requests: int
    errors: int
    kinds: dict[str, int] = field(default_factory=dict)

    @property
    def percent(self) -> float | None:
        return 100.0 * self.errors / self.requests if self.requests else None

    def to_json(self) -> dict[str, Any]:
        return {"pods": self.pods, "requests": self.requests, "errors": self.errors,
                "errorPercent": None if self.percent is None else round(self.percent, 2),
                "errorKinds": self.kinds}


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

    def record(self, sample: Sample, *, count_errors: bool = True) -> None:
        """One more sample of its target. An error breaks a run of matching samples; it
        counts towards the error limit only with ``count_errors`` (a pod that is not
        Ready yet may not answer)."""
        c = self._counters.setdefault(sample.target, _Counter())
        c.last = sample
        if sample.error is not None:
            c.errors += 1 if count_errors else 0
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

    def evaluate(self, targets: list[str], *, at_least: int = 0,
                 starting: list[str] | tuple[str, ...] = ()) -> Measurement:
        """The verdict over ``targets``: all verified (and at least ``at_least`` of them),
        one failed or could not be read. ``starting`` targets (pods not Ready yet) can
        only fail: by answering another version."""
        answers = {t: (c.last.version or c.last.error) for t, c in self._counters.items()
                   if (t in targets or t in starting) and c.last}
        details = {"expected": self.expected, "answers": answers}
        for target in (*targets, *starting):
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
        wanted = max(len(targets), at_least)
        if targets and len(done) == wanted:
            return Measurement(CHECK, Phase.SUCCESSFUL,
                               f"{len(done)} pods answer {self.expected} "
                               f"({self.samples} samples each)", details)
        return Measurement(CHECK, Phase.RUNNING,
                           f"{len(done)} of {wanted} pods verified as {self.expected}",
                           details)
