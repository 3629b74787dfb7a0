"""What a strategy is, and how deployer finds one.

A strategy is a pure planner: given a snapshot of the app and what the user asked
for, it returns a :class:`~deployer.model.Plan` (the steps forward and the steps
back). It never talks to the cluster; the engine executes plans. Strategies are
found through the ``deployer.strategies`` entry-point group, so a package can add
one without changing deployer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Protocol

from deployer.errors import InvalidInput
from deployer.model import AppState, Phase, Plan, Step, Target
from deployer.rollout import rollout_status

ENTRY_POINT_GROUP = "deployer.strategies"


@dataclass(frozen=True)
class Options:
    """Strategy-specific settings parsed from the command line."""

    values: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


class Strategy(Protocol):
    name: str
    steps: tuple[type[Step], ...]  # every kind of step its plans may hold (for preflight)

    def plan(self, state: AppState, target: Target, options: Options) -> Plan: ...

    def is_current(self, state: AppState, target: Target) -> bool:
        """True when the app already serves ``target`` completely: re-running is a no-op."""
        ...


def rolled_out(deployment: dict[str, Any]) -> bool:
    """Rolled out by kubectl's rule (see :mod:`deployer.rollout`)."""
    return rollout_status(deployment).phase is Phase.SUCCESSFUL


def runs_image(deployment: dict[str, Any], container: str, image: str) -> bool:
    containers = deployment["spec"]["template"]["spec"].get("containers") or []
    return any(c["name"] == container and c["image"] == image for c in containers)


@dataclass(frozen=True)
class Registered:
    """A strategy as its entry point registers it, and whether it can be loaded."""

    name: str
    target: str  # module:attribute
    package: str | None
    version: str | None
    problem: str | None = None  # why it cannot be loaded, when it cannot

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "package": self.package,
                "version": self.version, "problem": self.problem}


def registered() -> list[Registered]:
    """Every strategy of the entry-point group, each loaded to see that it can be: one that
    fails is listed with the reason (a warning), not an error, until it is used."""
    out = []
    for entry in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = entry.dist
        problem = None
        try:
            _instance(entry)
        except InvalidInput as exc:
            problem = exc.message
        out.append(Registered(entry.name, entry.value, dist.name if dist else None,
                              dist.version if dist else None, problem))
    return out


def _instance(entry: metadata.EntryPoint) -> Strategy:
    """The strategy an entry point names, made; a plugin that fails is InvalidInput."""
    package = entry.dist.name if entry.dist else "?"
    try:
        plugin = entry.load()()
    except Exception as exc:  # noqa: BLE001 - a third party's import may raise anything
        raise InvalidInput(f"strategy {entry.name!r} ({entry.value}, package {package}) "
                           f"fails to load: {type(exc).__name__}: {exc}",
                           id="broken-strategy",
                           hint=f"reinstall or fix {package}; deployer strategies lists "
                                "what is installed") from None
    missing = [a for a in ("name", "steps", "plan", "is_current") if not hasattr(plugin, a)]
    if missing:
        raise InvalidInput(f"strategy {entry.name!r} ({entry.value}, package {package}) is not "
                           f"a strategy: it has no {', '.join(missing)}", id="broken-strategy")
    return plugin  # type: ignore[no-any-return]


def load(name: str) -> Strategy:
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            return _instance(entry)
    known = ", ".join(sorted(e.name for e in metadata.entry_points(group=ENTRY_POINT_GROUP)))
    raise InvalidInput(f"unknown strategy {name!r} (installed: {known})", id="unknown-strategy",
                       hint="deployer strategies lists them with their packages")


def change_cause(action: str, target: Target) -> str:
    """The ``kubernetes.io/change-cause`` text: what, by whom, why."""
    text = f"deployer {action} to {target.image}"
    if target.who:
        text += f" by {target.who}"
    if target.reason:
        text += f": {target.reason}"
    if target.run_url:
        text += f" ({target.run_url})"
    return text
