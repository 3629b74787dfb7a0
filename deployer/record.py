"""The run journal, kept in the cluster as annotations on the app's Deployment.

``deployer.dev/run`` holds the run in progress (strategy, phase, current step),
so ``deployer status`` in any other process can see it; when a run ends it is
appended to ``deployer.dev/history`` (the newest entries, bounded) and the run
annotation is removed. Keeping this in the cluster rather than on the machine
that ran deployer is what lets a later CI job or the on-call engineer continue.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from deployer.errors import Conflict
from deployer.model import ANNOTATION_PREFIX
from deployer.timestamps import iso

if TYPE_CHECKING:
    from deployer.cluster import Gateway

RUN_ANNOTATION = ANNOTATION_PREFIX + "run"
HISTORY_ANNOTATION = ANNOTATION_PREFIX + "history"
HISTORY_LIMIT = 20


def who_am_i() -> str:
    """Who is running deployer: the CI identity when there is one, else user@host."""
    for var in ("DEPLOYER_ACTOR", "GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILD_USER_ID"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class RunRecord:
    strategy: str
    app: str
    from_image: str | None = None
    to_image: str | None = None
    from_version: str | None = None
    expected_version: str | None = None
    from_revision: int | None = None
    from_template_hash: str | None = None
    who: str = field(default_factory=who_am_i)
    reason: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    started: str | None = field(default_factory=lambda: iso(time.time()))
    phase: str = "running"
    step: str | None = None
    verdict: str | None = None
    verified_version: str | None = None
    finished: str | None = None
    message: str | None = None
    position: int | None = None  # index of the plan step in progress (or next, when paused)
    plan: dict[str, Any] | None = None  # the plan itself, so another process can continue it
    undo: list[dict[str, Any]] | None = None  # steps that undo a promoted release

    def with_(self, **changes: Any) -> RunRecord:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def read_run(deployment: dict[str, Any]) -> RunRecord | None:
    raw = (deployment["metadata"].get("annotations") or {}).get(RUN_ANNOTATION)
    if not raw:
        return None
    try:
        return RunRecord.from_json(json.loads(raw))
    except (ValueError, TypeError):
        return None


def read_history(deployment: dict[str, Any]) -> list[RunRecord]:
    raw = (deployment["metadata"].get("annotations") or {}).get(HISTORY_ANNOTATION)
    if not raw:
        return []
    try:
        return [RunRecord.from_json(item) for item in json.loads(raw)]
    except (ValueError, TypeError):
        return []


class Journal:
    """Writes one run's progress onto the Deployment."""

    def __init__(self, gateway: Gateway, deployment: str, record: RunRecord):
        self.gateway = gateway
        self.deployment = deployment
        self.record = record
        # Called before every write; the runner makes it check that it still holds the lock.
        self.before_write: Callable[[], None] = lambda: None

    def update(self, **changes: Any) -> None:
        self.record = self.record.with_(**changes)
        self.before_write()
        # Setting one annotation to a fixed value is idempotent: safe to replay.
        self.gateway.patch_deployment(
            self.deployment,
            {"metadata": {"annotations": {RUN_ANNOTATION: json.dumps(self.record.to_json())}}},
            idempotent=True)

    def finish(self, **changes: Any) -> RunRecord:
        self.record = self.record.with_(finished=iso(time.time()), **changes)
        self.before_write()
        for _ in range(5):  # read-modify-write of the history: conditional, re-read on 409
            dep = self.gateway.get_deployment(self.deployment)
            if dep is None:
                return self.record
            history = [r for r in read_history(dep) if r.id != self.record.id]
            undo = None
            if self.record.verdict == "promoted" and self.record.plan:
                undo = self.record.plan.get("rollback")
            history.append(self.record.with_(plan=None, undo=undo))
            body = json.dumps([r.to_json() for r in history[-HISTORY_LIMIT:]])
            try:
                self.gateway.patch_deployment(
                    self.deployment,
                    {"metadata": {"annotations": {HISTORY_ANNOTATION: body, RUN_ANNOTATION: None}}},
                    resource_version=dep["metadata"]["resourceVersion"])
                return self.record
            except Conflict:
                continue
        raise Conflict(f"could not record the run on deployment {self.deployment}: "
                       "it kept changing")
