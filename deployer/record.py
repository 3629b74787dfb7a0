"""The run journal and release history, kept in the cluster in a ConfigMap of the app's.

The ConfigMap ``deployer-<app>`` (next to the Lease of the same name) holds the run in
progress under ``run`` (strategy, phase, current step, the plan itself), so ``deployer
status`` in any other process can see it and ``promote``, ``abort`` or a re-run can
continue it; when a run ends it is appended to ``history`` (the newest entries,
bounded) and ``run`` is removed. ``schemaVersion`` says how the entries are written.
Keeping this in the cluster rather than on the machine that ran deployer is what lets a
later CI job or the on-call engineer continue. It is kept off the Deployment on purpose:
for a Deployment any annotation change is a new generation, and the controller copies
its annotations onto the ReplicaSet.

Releases made while the journal lived in annotations on the Deployment
(``deployer.dev/run``, ``deployer.dev/history``) are read from there until the app's
ConfigMap exists; the first journal write carries them over.
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

from deployer.errors import UnsafeState
from deployer.model import ANNOTATION_PREFIX, camel, plan_view, step_view
from deployer.timestamps import iso
from deployer.writes import conditional_write

if TYPE_CHECKING:
    from deployer.gateway import ClusterGateway

SCHEMA_VERSION = 1
RUN_KEY = "run"
HISTORY_KEY = "history"
SCHEMA_KEY = "schemaVersion"
# A request to hold the run in progress (``deployer pause``), kept apart from ``run`` so
# that the pausing process never writes the running process's record.
PAUSE_KEY = "pause"
HISTORY_LIMIT = 20
MANAGED_BY = {"app.kubernetes.io/managed-by": "deployer"}
# Where releases were recorded before the journal had a ConfigMap of its own.
LEGACY_RUN_ANNOTATION = ANNOTATION_PREFIX + "run"
LEGACY_HISTORY_ANNOTATION = ANNOTATION_PREFIX + "history"


def journal_name(app: str) -> str:
    return f"deployer-{app}"


_IDENTITY: list[str] = []  # the cluster's name for the caller, once it is known
_ACTOR: list[str] = []  # --actor


def set_actor(name: str | None) -> None:
    """--actor: who a run is recorded as, before anything else."""
    _ACTOR[:] = [name] if name else []


def set_identity(name: str | None) -> None:
    """The identity the cluster knows the caller by (a SelfSubjectReview, else the
    kubeconfig's user): who a run is recorded as, unless --actor or a CI actor says."""
    _IDENTITY[:] = [name] if name else []


def who_am_i() -> str:
    """Who is running deployer: --actor (DEPLOYER_ACTOR), else the CI's actor, else the
    cluster identity with user@host, else user@host."""
    if _ACTOR:
        return _ACTOR[0]
    for var in ("DEPLOYER_ACTOR", "GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILD_USER_ID"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        user = "unknown"
    local = f"{user}@{socket.gethostname()}"
    return f"{_IDENTITY[0]} ({local})" if _IDENTITY else local


def ci_run_url(env: dict[str, str] | None = None) -> str | None:
    """The CI run this deploy is part of: GitHub Actions, GitLab CI or Jenkins, from the
    variables each sets."""
    env = dict(os.environ if env is None else env)
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL") or "https://github.com"
        return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    return env.get("CI_JOB_URL") or env.get("BUILD_URL") or None


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
    ci_url: str | None = field(default_factory=ci_run_url)  # the CI run that made it
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
    settings: dict[str, Any] | None = None  # plan options and check settings, as started
    container: str | None = None  # the container the run changed (pods may have several)
    # blue-green's rollback window left open when the run ended: {deployment, service,
    # until}; the next deployer command for the app scales that side down once expired
    old_side: dict[str, Any] | None = None
    # the run is holding at a safe point after ``deployer pause``: {by, since, reason,
    # step, deployment (the Deployment it paused with spec.paused, if any)}
    held: dict[str, Any] | None = None

    def with_(self, **changes: Any) -> RunRecord:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """As the journal stores it (read back by :meth:`from_json`)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def view(self) -> dict[str, Any]:
        """As a report shows it: camelCase names, the plan's and undo's steps too."""
        out: dict[str, Any] = {}
        for key, value in self.to_json().items():
            if key == "plan":
                value = plan_view(value)
            elif key == "undo":
                value = [step_view(s) for s in value]
            elif key == "settings":
                value = {camel(k): v for k, v in value.items()}
            out[camel(key)] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _decode_run(raw: str | None) -> RunRecord | None:
    if not raw:
        return None
    try:
        return RunRecord.from_json(json.loads(raw))
    except (ValueError, TypeError, AttributeError):  # not JSON, or JSON of another shape
        return None


def _decode_history(raw: str | None) -> list[RunRecord]:
    if not raw:
        return []
    try:
        return [RunRecord.from_json(item) for item in json.loads(raw)]
    except (ValueError, TypeError, AttributeError):  # not JSON, or JSON of another shape
        return []


@dataclass(frozen=True)
class Stored:
    """What the cluster holds for one app: the ConfigMap (None before the first write)
    and its entries, or what a Deployment of an earlier version still carries."""

    config_map: dict[str, Any] | None
    run: RunRecord | None
    history: list[RunRecord]


def load(gateway: ClusterGateway, app: str) -> Stored:
    cm = gateway.get_config_map(journal_name(app))
    if cm is not None:
        data = cm.get("data") or {}
        version = data.get(SCHEMA_KEY, str(SCHEMA_VERSION))
        if not version.isdigit() or int(version) > SCHEMA_VERSION:
            raise UnsafeState(f"configmap {journal_name(app)} was written in journal schema "
                              f"{version!r}; this deployer reads up to {SCHEMA_VERSION}",
                              id="unknown-schema", hint="use the deployer version that wrote "
                                                        "it, or a newer one")
        return Stored(cm, _decode_run(data.get(RUN_KEY)), _decode_history(data.get(HISTORY_KEY)))
    dep = gateway.get_deployment(app)
    annotations = ((dep or {}).get("metadata") or {}).get("annotations") or {}
    return Stored(None, _decode_run(annotations.get(LEGACY_RUN_ANNOTATION)),
                  _decode_history(annotations.get(LEGACY_HISTORY_ANNOTATION)))


@dataclass(frozen=True)
class PauseRequest:
    """``deployer pause``: hold run ``run`` at its next safe point until withdrawn."""

    run: str
    by: str
    at: str
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def read_pause(gateway: ClusterGateway, app: str,
               seen: list[dict[str, Any]] | None = None) -> PauseRequest | None:
    """The pause asked for the app's run in progress, or None. ``seen``: the ConfigMap as
    a watch has it (a list of at most one; no request), None to read it."""
    cm = gateway.get_config_map(journal_name(app)) if seen is None else next(iter(seen), None)
    return _decode_pause(((cm or {}).get("data") or {}).get(PAUSE_KEY))


def _decode_pause(raw: str | None) -> PauseRequest | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return PauseRequest(str(data["run"]), str(data["by"]), str(data["at"]),
                            data.get("reason"))
    except (ValueError, TypeError, KeyError):
        return None


def set_pause(gateway: ClusterGateway, app: str, request: PauseRequest | None) -> None:
    """Ask the run in progress to hold (``request``) or to go on (None), conditionally:
    a request for a run that is no longer the one in progress is not written."""
    name = journal_name(app)

    def read() -> dict[str, Any]:
        cm = gateway.get_config_map(name)
        if cm is None:
            raise UnsafeState(f"configmap {name} is gone: {app} has no run in progress",
                              id="no-run")
        return cm

    def apply(cm: dict[str, Any]) -> dict[str, Any] | None:
        data = cm.setdefault("data", {})
        if request is None:
            if PAUSE_KEY not in data:
                return None
            del data[PAUSE_KEY]
            return cm
        run = _decode_run(data.get(RUN_KEY))
        if run is None or run.id != request.run:
            raise UnsafeState(f"run {request.run} of {app} is no longer in progress",
                              id="no-run")
        data[PAUSE_KEY] = json.dumps(request.to_json())
        return cm

    conditional_write(read, gateway.replace_config_map, apply, f"configmap {name}")


def read_run(gateway: ClusterGateway, app: str) -> RunRecord | None:
    return load(gateway, app).run


def read_history(gateway: ClusterGateway, app: str) -> list[RunRecord]:
    return load(gateway, app).history


def remade_deployment(gateway: ClusterGateway, app: str) -> tuple[RunRecord, dict[str, Any]] | None:
    """The app's own Deployment as the unfinished run will make it again, when that run
    deleted it to change its selector (a selector cannot be changed in place) and stopped
    before creating it again; None when no such run is recorded."""
    run = read_run(gateway, app)
    if run is None or not run.plan:
        return None
    steps = run.plan.get("steps") or []
    if not any(step.get("type") == "DeleteDeployment" and step.get("deployment") == app
               for step in steps[: (run.position or 0) + 1]):
        return None
    for step in steps:
        body = step.get("body") if step.get("type") == "ApplyDeployment" else None
        if isinstance(body, dict) and (body.get("metadata") or {}).get("name") == app:
            return run, body
    return None


class Journal:
    """Writes one run's progress into the app's ConfigMap."""

    def __init__(self, gateway: ClusterGateway, app: str, record: RunRecord):
        self.gateway = gateway
        self.app = app
        self.record = record
        # Called before every write; the engine makes it check that it still holds the lock.
        self.before_write: Callable[[], None] = lambda: None

    def update(self, **changes: Any) -> None:
        self.record = self.record.with_(**changes)
        self.before_write()
        self._write(lambda run, history: (self.record, history))

    def finish(self, **changes: Any) -> RunRecord:
        self.record = self.record.with_(finished=iso(time.time()), **changes)
        self.before_write()
        undo = None
        if self.record.verdict == "promoted" and self.record.plan:
            undo = self.record.plan.get("rollback")
        done = self.record.with_(plan=None, undo=undo)
        self._write(lambda run, history: (
            None, [*(r for r in history if r.id != done.id), done][-HISTORY_LIMIT:]))
        return self.record

    def _write(self, change: Change) -> None:
        write_journal(self.gateway, self.app, change)


Change = Callable[[RunRecord | None, list[RunRecord]], tuple[RunRecord | None, list[RunRecord]]]


def update_release(gateway: ClusterGateway, app: str, run_id: str, **changes: Any) -> None:
    """Change one finished release in the history (e.g. its rollback window was closed)."""
    write_journal(gateway, app, lambda run, history: (
        run, [r.with_(**changes) if r.id == run_id else r for r in history]))


def write_journal(gateway: ClusterGateway, app: str, change: Change) -> None:
    """Read the ConfigMap (or what an earlier version left on the Deployment), apply
    ``change`` to its run and history, and write it back conditionally."""
    name = journal_name(app)

    def read() -> dict[str, Any]:
        stored = load(gateway, app)
        if stored.config_map is not None:
            return stored.config_map
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "labels": {**MANAGED_BY, "app": app}},
                "data": _encode(stored.run, stored.history)}

    def apply(cm: dict[str, Any]) -> dict[str, Any] | None:
        data = cm.get("data") or {}
        run, history = change(_decode_run(data.get(RUN_KEY)),
                              _decode_history(data.get(HISTORY_KEY)))
        wanted = _encode(run, history)
        paused = data.get(PAUSE_KEY)
        asked = _decode_pause(paused)
        if paused and run is not None and asked is not None and asked.run == run.id:
            wanted[PAUSE_KEY] = paused  # a pause asked for the run lasts while it runs
        if wanted == data and cm["metadata"].get("resourceVersion"):
            return None
        cm["data"] = wanted
        return cm

    def write(cm: dict[str, Any]) -> None:
        if cm["metadata"].get("resourceVersion"):
            gateway.replace_config_map(cm)
        else:
            gateway.create_config_map(cm)

    conditional_write(read, write, apply, f"configmap {name}")


def _encode(run: RunRecord | None, history: list[RunRecord]) -> dict[str, str]:
    data = {SCHEMA_KEY: str(SCHEMA_VERSION),
            HISTORY_KEY: json.dumps([r.to_json() for r in history])}
    if run is not None:
        data[RUN_KEY] = json.dumps(run.to_json())
    return data
