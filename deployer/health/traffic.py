"""What clients get through the Service: the share of each version, and stickiness.

Requests go to the Service's ClusterIP from several client addresses (each a
separate source IP, each request a new connection), so kube-proxy's ClientIP
affinity decides, per client, which pod and so which version answers. That is
only possible from somewhere the ClusterIP is routed (inside the cluster network);
elsewhere the check says it is unsupported rather than pretending to pass.
"""

from __future__ import annotations

import ipaddress
import math
import ssl
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from deployer.errors import InvalidInput
from deployer.health.http import Sample, sample_version
from deployer.model import Measurement, Phase
from deployer.weights import ALPHA, clients_needed

SHARE = "traffic-share"
STICKY = "stickiness"
REQUEST_ERRORS = "service-requests"
# A request that fails (a timeout, a reset, an HTTP error) says nothing of which version a
# client is on; a few fail on any busy network. More than this share of them is a finding.
ERROR_TOLERANCE = 0.01
REQUESTS_PER_CLIENT = 5
CONCURRENT_CLIENTS = 8  # clients asking at the same time (each its own connection)


def parse_client_addresses(text: str) -> tuple[str, ...]:
    """``10.200.0.2-10.200.0.41`` or ``10.200.0.2,10.200.0.3`` (mixable) -> addresses."""
    out: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            if "-" in part:
                first, last = (ipaddress.IPv4Address(x.strip()) for x in part.split("-", 1))
                if int(last) < int(first) or int(last) - int(first) > 1023:
                    raise ValueError("range is reversed or longer than 1024 addresses")
                out += [str(ipaddress.IPv4Address(i)) for i in range(int(first), int(last) + 1)]
            else:
                out.append(str(ipaddress.IPv4Address(part)))
        except ValueError as exc:
            raise InvalidInput(f"--client-addresses {part!r} is invalid: {exc}",
                               id="invalid-client-addresses",
                               hint="e.g. 10.200.0.2-10.200.0.41 or 10.0.0.5,10.0.0.6") from exc
    if len(set(out)) != len(out):
        raise InvalidInput("--client-addresses lists an address twice",
                           id="invalid-client-addresses")
    return tuple(out)


def _binomial_tails(k: int, n: int, p: float) -> tuple[float, float]:
    """P(X <= k) and P(X >= k) for X ~ Binomial(n, p), exactly."""
    pmf = [math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(n + 1)]
    return min(1.0, sum(pmf[:k + 1])), min(1.0, sum(pmf[k:]))


@dataclass
class ServiceTraffic:
    base_url: str  # http://CLUSTER-IP:PORT
    path: str = "/version"
    requests_per_client: int = REQUESTS_PER_CLIENT

    def sample(self, addresses: list[str]) -> dict[str, list[Sample]]:
        """Each client's answers; clients are independent, so several ask at once."""
        tls = ssl.create_default_context()  # loaded once, not once per client address

        def one(address: str) -> list[Sample]:
            transport = httpx.HTTPTransport(local_address=address, verify=tls)
            # No keep-alive: every request is a new connection, as a new visit would be.
            with httpx.Client(transport=transport, base_url=self.base_url, trust_env=False,
                              timeout=httpx.Timeout(3.0, connect=2.0), follow_redirects=False,
                              limits=httpx.Limits(max_keepalive_connections=0)) as client:
                return [sample_version(client, self.path, address)
                        for _ in range(self.requests_per_client)]

        with ThreadPoolExecutor(max_workers=CONCURRENT_CLIENTS) as pool:
            return dict(zip(addresses, pool.map(one, addresses), strict=True))


def unreachable(answers: dict[str, list[Sample]]) -> bool:
    return all(not s.ok and ("Connect" in (s.error or "") or "timed out" in (s.error or ""))
               for samples in answers.values() for s in samples)


def stickiness(answers: dict[str, list[Sample]],
               earlier: dict[str, str]) -> tuple[Measurement, dict[str, str]]:
    """Each client must get one version on every request that was answered, and the same
    as at earlier steps (failed requests are judged by :func:`request_errors`)."""
    seen: dict[str, str] = {}
    broken = []
    for address, samples in answers.items():
        versions = {s.version for s in samples if s.ok and s.version}
        if not versions:
            continue  # no answer to tell a version by
        if len(versions) != 1:
            broken.append(f"{address} got {sorted(versions)}")
            continue
        version = versions.pop()
        seen[address] = version
        if address in earlier and earlier[address] != version:
            broken.append(f"{address} moved from {earlier[address]} to {version}")
    details = {"clients": len(answers), "broken": broken[:10]}
    if not seen and not broken:
        return Measurement(STICKY, Phase.ERROR, f"none of {len(answers)} clients got an "
                           "answer", details), seen
    if broken:
        return Measurement(STICKY, Phase.FAILED,
                           f"{len(broken)} of {len(answers)} clients did not stay on one "
                           f"version: {'; '.join(broken[:3])}", details), seen
    return Measurement(STICKY, Phase.SUCCESSFUL,
                       f"each of {len(answers)} clients stayed on one version "
                       f"over {sum(len(s) for s in answers.values())} requests", details), seen


def request_errors(answers: dict[str, list[Sample]]) -> Measurement:
    """Requests through the Service that failed: more than ERROR_TOLERANCE of them (and
    more than one) is a failure, each named by client; fewer are said, not judged."""
    failed = [(a, s.error) for a, samples in answers.items() for s in samples if not s.ok]
    total = sum(len(s) for s in answers.values())
    named = [f"{a}: {e}" for a, e in failed[:10]]
    details = {"requests": total, "failed": len(failed), "errors": named}
    if not failed:
        return Measurement(REQUEST_ERRORS, Phase.SUCCESSFUL,
                           f"all {total} requests answered", details)
    text = f"{len(failed)} of {total} requests failed ({'; '.join(named[:3])})"
    if len(failed) > 1 and len(failed) > ERROR_TOLERANCE * total:
        return Measurement(REQUEST_ERRORS, Phase.FAILED, text, details)
    return Measurement(REQUEST_ERRORS, Phase.SUCCESSFUL,
                       f"{text}: within {ERROR_TOLERANCE:.0%} of them", details)


def share_check(versions: dict[str, str], new_version: str | None, old_version: str | None,
                planned: float) -> Measurement:
    """Does the share of clients on the new version match the plan, beyond chance?

    Each client lands on the new version with the planned probability, so the count is
    binomial: the check fails when a count this far from the plan has a chance below
    ALPHA. With too few clients to tell the planned share from none at all (20 clients at
    25%: no canary traffic happens by chance 0.3% of the time), it says "not measured"."""
    n = len(versions)
    counts = Counter(versions.values())
    if n == 0 or new_version is None:
        return Measurement(SHARE, Phase.INCONCLUSIVE, "not measured: no clients to measure "
                                                     "the share with")
    strangers = {v: c for v, c in counts.items() if v not in (new_version, old_version)}
    k = counts.get(new_version, 0)
    observed = k / n
    details: dict[str, object] = {"clients": n, "planned": round(planned, 4),
                                  "observed": round(observed, 4), "answers": dict(counts)}
    if strangers:
        return Measurement(SHARE, Phase.FAILED, f"clients got versions that are neither "
                           f"{new_version} nor {old_version}: {strangers}", details)
    if planned in (0.0, 1.0):  # nothing is left to chance
        if observed != planned:
            return Measurement(SHARE, Phase.FAILED, f"{observed:.0%} of {n} clients got "
                               f"{new_version}, planned {planned:.0%}", details)
        return Measurement(SHARE, Phase.SUCCESSFUL, f"{observed:.0%} of {n} clients got "
                           f"{new_version}, as planned", details)
    needed = clients_needed(planned)
    if n < needed:
        return Measurement(SHARE, Phase.INCONCLUSIVE,
                           f"not measured: too few clients: {n} cannot tell a {planned:.0%} "
                           f"share from none (at least {needed} can)", details)
    low, high = _binomial_tails(k, n, planned)
    chance = min(low, high)
    details["chance"] = chance
    if chance < ALPHA:
        return Measurement(SHARE, Phase.FAILED,
                           f"{k} of {n} clients ({observed:.0%}) got {new_version}, planned "
                           f"{planned:.0%}: chance gives a share this far off with probability "
                           f"{chance:.1g}", details)
    return Measurement(SHARE, Phase.SUCCESSFUL,
                       f"{k} of {n} clients ({observed:.0%}) got {new_version}, planned "
                       f"{planned:.0%}", details)
