"""Pod failure reasons: decide in seconds what ``kubectl rollout status`` only
notices when the progress deadline passes.

Some reasons are final the moment they appear (an image that does not exist, an
invalid image name). Others are only final when they persist, because a healthy
rollout shows them too, briefly: a container that crashes once and then runs, a
config map cache that syncs a second late, a pod waiting a moment for room on a
node. Those are tracked by how long they have been seen.

The reasons are a table, ``RULES``: one row per reason, saying where it is seen
and when it becomes final. Small functions turn pods and the Deployment into
observations (pod, container, reason, message, image, exit code); one loop looks
each observation up in the table and remembers since when the persisting ones
have been seen. A reason that disappears is forgotten: if it comes back, it
starts again from zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from enum import Enum
from itertools import chain
from typing import Any

from deployer.model import Measurement, Phase, PodFailure
from deployer.validation import seconds_from_env

CHECK = "pod-failures"

# An image pull that failed with one of these will fail again: final at once.
PULL_NOT_FOUND = ("not found", "pull access denied", "manifest unknown",
                  "repository does not exist", "no such host", "unauthorized",
                  "authentication required", "denied")
# One that failed because the node has no route to the registry will fail again until
# someone mends the node's network or the image reference: final at once too (an offline
# cluster answers a missing image so; a blip of the node's network rejects a release whose
# stable version keeps serving, and the rejection names the cause).
PULL_UNREACHABLE = ("network is unreachable", "no route to host")
# One that failed with one of these may pass on the next try (the registry is busy or
# slow): it gets a budget, PULL_BUDGET seconds by default ($DEPLOYER_IMAGE_PULL_BUDGET).
PULL_TRANSIENT = ("429", "too many requests", "500 internal server error", "502 bad gateway",
                  "503 service unavailable", "504 gateway timeout", "timeout", "timed out",
                  "deadline exceeded", "connection reset")
PULL_BUDGET = 60.0
PULL_BUDGET_ENV = "DEPLOYER_IMAGE_PULL_BUDGET"


def pull_budget() -> float:
    """How long a transient image pull failure may last: $DEPLOYER_IMAGE_PULL_BUDGET
    (seconds above 0), else PULL_BUDGET."""
    return seconds_from_env(PULL_BUDGET_ENV, PULL_BUDGET, whole=False,
                            error_id="invalid-image-pull-budget")

Key = tuple[str, str | None, str]


class Seen(Enum):
    """Where a reason is seen."""

    WAITING = "container waiting reason"
    POD_FAILED = "pod phase Failed"
    UNSCHEDULED = "PodScheduled condition False"
    DEPLOYMENT = "Deployment condition True"


class Final(Enum):
    """When a reason is final, that is, rejects the release."""

    AT_ONCE = "at once"
    PERSISTING = "once it has persisted for the rule's seconds"
    RESTARTING = "once the container has restarted crashloop_restarts times"
    # an image pull: at once when the registry said the image is not there (or not
    # ours), after the pull budget when it said something that may pass (429, 5xx, a
    # timeout), else once it has persisted for the rule's seconds (0: at once)
    PULL = "by what the registry answered"
    NEVER = "never"


ANY = "*"


@dataclass(frozen=True)
class Rule:
    """One row of the table: a reason, where it is seen, and when it is final."""

    reason: str
    seen: Seen
    final: Final
    seconds: float = 0.0
    # final at once, persisting or not, when the message says one of these
    at_once_if: tuple[str, ...] = ()
    # what a reason that is not final yet is reported as
    pending: str = "{where} {reason} for {age:.0f}s"
    # report how the container last exited rather than the waiting message
    explain_exit: bool = False

    def matches(self, message: str) -> bool:
        lowered = message.lower()
        return any(m in lowered for m in self.at_once_if)


# A reason without a row where it is seen is no failure; ANY is every reason seen
# there without a row of its own.
RULES: tuple[Rule, ...] = (
    Rule("InvalidImageName", Seen.WAITING, Final.AT_ONCE),
    Rule("ErrImageNeverPull", Seen.WAITING, Final.AT_ONCE),
    Rule("ImagePullBackOff", Seen.WAITING, Final.PULL,
         at_once_if=PULL_NOT_FOUND + PULL_UNREACHABLE),
    Rule("ErrImagePull", Seen.WAITING, Final.PULL, 10.0,
         at_once_if=PULL_NOT_FOUND + PULL_UNREACHABLE),
    Rule("CreateContainerConfigError", Seen.WAITING, Final.PERSISTING, 15.0),
    Rule("CreateContainerError", Seen.WAITING, Final.PERSISTING, 15.0),
    Rule("RunContainerError", Seen.WAITING, Final.PERSISTING, 15.0),
    Rule("CrashLoopBackOff", Seen.WAITING, Final.RESTARTING,
         pending="{where} crashed once (exit {exit_code})", explain_exit=True),
    Rule("ContainerCreating", Seen.WAITING, Final.NEVER),
    Rule("PodInitializing", Seen.WAITING, Final.NEVER),
    Rule("Unschedulable", Seen.UNSCHEDULED, Final.PERSISTING, 10.0,
         pending="{where} unschedulable for {age:.0f}s"),
    Rule("ReplicaFailure", Seen.DEPLOYMENT, Final.PERSISTING, 10.0,
         pending="cannot create pods for {age:.0f}s: {detail}"),
    Rule("QuotaFreeing", Seen.DEPLOYMENT, Final.NEVER),
    # a pod that failed for one of these is replaced, not the release's fault
    Rule("Evicted", Seen.POD_FAILED, Final.NEVER),
    Rule("Preempting", Seen.POD_FAILED, Final.NEVER),
    Rule("Shutdown", Seen.POD_FAILED, Final.NEVER),
    Rule("NodeShutdown", Seen.POD_FAILED, Final.NEVER),
    Rule("Terminated", Seen.POD_FAILED, Final.NEVER),
    Rule(ANY, Seen.POD_FAILED, Final.AT_ONCE),
)
_BY_REASON = {(r.seen, r.reason): r for r in RULES}


def rule_for(seen: Seen, reason: str) -> Rule | None:
    """The row for a reason, else the row for any reason seen there; None: not a failure."""
    return _BY_REASON.get((seen, reason)) or _BY_REASON.get((seen, ANY))


@dataclass(frozen=True)
class Observation:
    """One reason seen on a pod, one of its containers, or the Deployment."""

    seen: Seen
    pod: str
    container: str | None
    reason: str
    message: str
    image: str | None = None
    exit_code: int | None = None
    restarts: int = 0
    # how the container last exited, if it has
    last_exit: str | None = None
    # the cause a condition names, reported instead of the reason
    cause: str | None = None
    # the condition's message as given, for the report while it persists
    detail: str = ""
    # the pod's imagePullSecrets, named when a registry refuses the credentials
    pull_secrets: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.pod}/{self.container}" if self.seen is Seen.WAITING else self.pod

    def key(self, rule: Rule) -> Key:
        return (self.pod, self.container if self.seen is Seen.WAITING else "", rule.reason)

    def note(self, rule: Rule, age: float = 0.0) -> str:
        return rule.pending.format(where=self.where, reason=self.reason, age=age,
                                   exit_code=self.exit_code, detail=self.detail)

    def failure(self, rule: Rule) -> PodFailure:
        message = self.message
        if rule.explain_exit and self.last_exit is not None:
            message = self.last_exit
        return PodFailure(self.pod, self.container, self.cause or self.reason, message,
                          image=self.image, exit_code=self.exit_code)


def _containers(pod: dict[str, Any]) -> Iterable[dict[str, Any]]:
    status = pod.get("status") or {}
    yield from status.get("initContainerStatuses") or []
    yield from status.get("containerStatuses") or []


def _image_of(pod: dict[str, Any], container: str) -> str | None:
    spec = pod.get("spec") or {}
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        if c.get("name") == container:
            return str(c.get("image"))
    return None


def _last_exit(cs: dict[str, Any], last: dict[str, Any]) -> str | None:
    if last.get("exitCode") is None:
        return None
    return (f"container exited with code {last.get('exitCode')}"
            f" ({last.get('reason', 'Error')}), restarted "
            f"{cs.get('restartCount', 0)} times")


def _waiting(pod: dict[str, Any], name: str) -> Iterator[Observation]:
    secrets = tuple(str(s.get("name")) for s in
                    (pod.get("spec") or {}).get("imagePullSecrets") or [] if s.get("name"))
    for cs in _containers(pod):
        container = cs.get("name", "")
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if not waiting.get("reason"):
            continue
        last = (cs.get("lastState") or {}).get("terminated") or {}
        yield Observation(Seen.WAITING, name, container, waiting["reason"],
                          waiting.get("message") or "",
                          image=_image_of(pod, container) or cs.get("image"),
                          exit_code=last.get("exitCode"), restarts=cs.get("restartCount", 0),
                          last_exit=_last_exit(cs, last), pull_secrets=secrets)


def _unscheduled(status: dict[str, Any], name: str) -> Iterator[Observation]:
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            yield Observation(Seen.UNSCHEDULED, name, None, cond.get("reason") or "",
                              cond.get("message") or "unschedulable")


def _failed(status: dict[str, Any], name: str) -> Observation:
    return Observation(Seen.POD_FAILED, name, None, status.get("reason") or "Failed",
                       status.get("message") or "pod failed")


def pod_observations(pod: dict[str, Any]) -> Iterator[Observation]:
    """What a pod shows, in order: its phase if Failed, else scheduling, then containers."""
    name = pod["metadata"]["name"]
    if pod["metadata"].get("deletionTimestamp"):
        return
    status = pod.get("status") or {}
    if status.get("phase") == "Failed":
        yield _failed(status, name)
        return
    yield from _unscheduled(status, name)
    yield from _waiting(pod, name)


QUOTA_EXCEEDED = "exceeded quota"


def deployment_observations(deployment: dict[str, Any] | None, *,
                            quota_freeing: bool = False) -> Iterator[Observation]:
    """The Deployment's ReplicaFailure condition. A pod refused by a quota while other
    pods of the app are still terminating (the quota counts them until they are gone) is
    waiting for room the rollout itself is freeing, not failing."""
    if deployment is None:
        return
    for cond in (deployment.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            message = cond.get("message") or ""
            freeing = quota_freeing and QUOTA_EXCEEDED in message
            yield Observation(Seen.DEPLOYMENT, deployment["metadata"]["name"], None,
                              "QuotaFreeing" if freeing else "ReplicaFailure", message,
                              cause=cond.get("reason"), detail=str(cond.get("message", "")))


@dataclass
class _Persistence:
    """Since when each persisting reason has been seen, as of one evaluation."""

    first_seen: dict[Key, float]
    now: float
    seen: set[Key] = field(default_factory=set)

    def age(self, key: Key) -> float:
        self.seen.add(key)
        return self.now - self.first_seen.setdefault(key, self.now)

    def forget_unseen(self) -> None:
        for key in list(self.first_seen):
            if key not in self.seen:
                del self.first_seen[key]


SUMMARY_MESSAGE_MAX = 100  # characters of the kubelet's message in one-line summaries


def _measurement(pods: list[dict[str, Any]], failures: list[PodFailure],
                 pending: list[str]) -> Measurement:
    if failures:
        first = failures[0]
        what = f"{first.pod}/{first.container}" if first.container else first.pod
        image = f" (image {first.image})" if first.image else ""
        message = first.message
        if len(message) > SUMMARY_MESSAGE_MAX:  # whole, once, in the report's failed pods
            message = message[:SUMMARY_MESSAGE_MAX - 1].rstrip() + "…"
        others = len({f.pod for f in failures} - {first.pod})
        more = f" (and {others} more pod{'s' if others > 1 else ''})" if others else ""
        return Measurement(CHECK, Phase.FAILED,
                           f"{what}: {first.reason}{image}: {message}".rstrip(": ") + more,
                           {"failures": [f.to_json() for f in failures]})
    if pending:
        return Measurement(CHECK, Phase.RUNNING, "; ".join(pending))
    return Measurement(CHECK, Phase.SUCCESSFUL, f"no failure reason on {len(pods)} pods")


@dataclass
class PodFailureCheck:
    """Stateful across evaluations so that persistence can be measured."""

    clock: Callable[[], float]
    crashloop_restarts: int = 1
    pull_budget: float = field(default_factory=pull_budget)
    _first_seen: dict[Key, float] = field(default_factory=dict)
    # the last ErrImagePull message of each pod's container: ImagePullBackOff says only
    # "Back-off pulling image", the registry's answer is in the ErrImagePull before it
    _pull_errors: dict[tuple[str, str | None], str] = field(default_factory=dict)

    def evaluate(self, pods: list[dict[str, Any]],
                 deployment: dict[str, Any] | None = None, *,
                 quota_freeing: bool = False,
                 scaling_up: frozenset[str] = frozenset(),
                 terminating: int = 0) -> tuple[Measurement, list[PodFailure]]:
        """``terminating``: how many of the app's own pods are terminating; while they are,
        a pod refused for want of room (too many pods, too little cpu or memory) waits for
        the room they free, bounded by the progress deadline, not by the rule's seconds."""
        memory = _Persistence(self._first_seen, self.clock())
        failures: list[PodFailure] = []
        pending: list[str] = []
        observations = chain(chain.from_iterable(pod_observations(p) for p in pods),
                             deployment_observations(deployment, quota_freeing=quota_freeing))
        for obs in observations:
            rule = rule_for(obs.seen, obs.reason)
            if rule is None:
                continue
            if obs.seen is Seen.UNSCHEDULED and obs.pod in scaling_up:
                # a cluster autoscaler is adding a node for it: the progress deadline
                # bounds the wait, not the rule's seconds
                pending.append(f"{obs.pod} unschedulable, the cluster autoscaler is adding "
                               "a node (TriggeredScaleUp)")
                continue
            if obs.seen is Seen.UNSCHEDULED and terminating and wants_room(obs.message):
                pending.append(f"{obs.pod} unschedulable ({_answer_end(obs.message)}) while "
                               f"{terminating} of the app's pods terminate: waiting for the "
                               "room they free")
                continue
            final, note = self._judge(rule, obs, memory)
            if final and rule.final is Final.PULL:
                answer = self._pull_errors.get((obs.pod, obs.container), obs.message)
                failure = obs.failure(rule)
                failures.append(replace(failure, message=answer + credentials_hint(obs, answer)))
            elif final:
                failures.append(obs.failure(rule))
            elif note:
                pending.append(note)
        memory.forget_unseen()
        return _measurement(pods, failures, pending), failures

    def _judge(self, rule: Rule, obs: Observation,
               memory: _Persistence) -> tuple[bool, str | None]:
        """Whether the observation is final; if it is not, what to report meanwhile."""
        if rule.final is Final.NEVER:
            return False, None
        if rule.final is Final.PULL:
            return self._judge_pull(rule, obs, memory)
        if rule.final is Final.AT_ONCE or rule.matches(obs.message):
            return True, None
        if rule.final is Final.RESTARTING:
            if int(obs.restarts) >= self.crashloop_restarts:
                return True, None
            return False, obs.note(rule)
        age = memory.age(obs.key(rule))
        if age >= rule.seconds:
            return True, None
        return False, obs.note(rule, age)


    def _judge_pull(self, rule: Rule, obs: Observation,
                    memory: _Persistence) -> tuple[bool, str | None]:
        where = (obs.pod, obs.container)
        if obs.reason == "ErrImagePull":
            self._pull_errors[where] = obs.message
        answer = self._pull_errors.get(where, obs.message)
        if rule.matches(answer):
            return True, None
        lowered = answer.lower()
        if any(m in lowered for m in PULL_TRANSIENT):
            # the same budget through ErrImagePull and ImagePullBackOff, which alternate
            age = memory.age((obs.pod, obs.container, "image-pull"))
            if age >= self.pull_budget:
                return True, None
            return False, (f"{obs.where}: image pull failing for {age:.0f}s, may pass "
                           f"(retrying up to {self.pull_budget:.0f}s): {_answer_end(answer)}")
        if not rule.seconds:
            return True, None
        age = memory.age(obs.key(rule))
        if age >= rule.seconds:
            return True, None
        return False, obs.note(rule, age)


RPC_PREFIX = "rpc error: code = Unknown desc = "


def _answer_end(answer: str) -> str:
    """A registry's answer in one line: the kubelet's wrapping gone, and the end (the
    status the registry gave) kept when it is long."""
    answer = answer.removeprefix(RPC_PREFIX)
    if len(answer) <= SUMMARY_MESSAGE_MAX:
        return answer
    return "…" + answer[-(SUMMARY_MESSAGE_MAX - 1):].lstrip()


PULL_REFUSED_CREDENTIALS = ("unauthorized", "authentication required", "denied",
                            "401", "403 forbidden")


def registry_of(image: str | None) -> str:
    """The registry host an image reference pulls from (Docker Hub without one)."""
    first = (image or "").split("/")[0]
    return first if "/" in (image or "") and ("." in first or ":" in first or
                                                first == "localhost") else "docker.io"


def credentials_hint(obs: Observation, answer: str) -> str:
    """For a registry that refused the credentials: which secret the pod pulled with."""
    lowered = answer.lower()
    if not any(m in lowered for m in PULL_REFUSED_CREDENTIALS):
        return ""
    registry = registry_of(obs.image)
    if obs.pull_secrets:
        names = ", ".join(obs.pull_secrets)
        return (f" (the pod pulls with imagePullSecrets {names}: check that it holds "
                f"working credentials for {registry})")
    return (f" (the pod has no imagePullSecrets: if the image exists, {registry} wants "
            "credentials; add a pull secret to the pod template or its ServiceAccount)")


ROOM_SHORTAGES = ("too many pods", "insufficient cpu", "insufficient memory",
                  "insufficient ephemeral-storage")


def wants_room(message: str) -> bool:
    """Whether the scheduler refused a pod for want of room on the nodes (which pods that
    terminate give back), not for a rule it breaks (a selector, a taint, a volume)."""
    lowered = message.lower()
    return any(s in lowered for s in ROOM_SHORTAGES)


def unscheduled(pods: list[dict[str, Any]]) -> list[str]:
    """Names of the pods the scheduler could not place (yet)."""
    return [p["metadata"]["name"] for p in pods
            if any(o.seen is Seen.UNSCHEDULED for o in pod_observations(p))]


def not_ready_reasons(pods: list[dict[str, Any]]) -> list[str]:
    """Why pods are not Ready, in words: for the report when a deadline passes."""
    out = []
    for pod in pods:
        status = pod.get("status") or {}
        for cond in status.get("conditions") or []:
            if cond.get("type") == "Ready" and cond.get("status") != "True":
                out.append(f"{pod['metadata']['name']}: not Ready "
                           f"({cond.get('reason') or 'probe failing'})")
    return out
