"""Deciding what ``deployer rollback`` returns to, and planning it.

Pure functions of the app's state and its recorded history: the on-call command
must be predictable. Without ``--to-revision`` it undoes the last change deployer
made (or the run in progress); when that change was itself a rollback, or a
release that was already rolled back, there is nothing to undo and it says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from deployer.errors import InvalidInput, NothingToRollBack
from deployer.model import AppState, AwaitRollout, Plan, Revision, Step, UndoRollout
from deployer.record import RunRecord
from deployer.validation import expected_version_from_tag, parse_reference


@dataclass(frozen=True)
class RollbackDecision:
    revision: Revision | None  # None: nothing to do
    why: str


def _revision_by_hash(state: AppState, template_hash: str | None) -> Revision | None:
    if not template_hash:
        return None
    for r in state.revisions:
        labels = (r.template.get("metadata") or {}).get("labels") or {}
        if labels.get("pod-template-hash") == template_hash:
            return r
    return None


def decide(state: AppState, in_progress: RunRecord | None, history: list[RunRecord],
           to_revision: int | None) -> RollbackDecision:
    numbers = [r.number for r in state.revisions]
    if to_revision is not None:
        match = next((r for r in state.revisions if r.number == to_revision), None)
        if match is None:
            raise InvalidInput(
                f"--to-revision {to_revision}: {state.deployment_name} has no such revision "
                f"(it has: {', '.join(map(str, numbers)) or 'none'})", id="unknown-revision")
        if match.number == state.revision:
            return RollbackDecision(None, f"revision {to_revision} is already the current one")
        return RollbackDecision(match, f"revision {to_revision} was asked for")
    if in_progress is not None:
        target = _revision_by_hash(state, in_progress.from_template_hash)
        if target is not None and target.number != state.revision:
            return RollbackDecision(target, f"run {in_progress.id} ({in_progress.strategy} to "
                                            f"{in_progress.to_image}) did not finish")
        if target is not None:
            return RollbackDecision(None, f"run {in_progress.id} did not finish, but the "
                                          f"Deployment is already at its starting revision")
    if history:
        last = history[-1]
        if last.strategy == "rollback" or last.verdict in ("rejected", "timeout", "rolled-back"):
            return RollbackDecision(None, f"the last change ({last.strategy} to {last.to_image}, "
                                          f"{last.verdict}) already left the previous version "
                                          "running; use --to-revision N to choose a revision")
        target = _revision_by_hash(state, last.from_template_hash)
        if target is not None and target.number != state.revision:
            return RollbackDecision(target, f"undo the last release ({last.strategy} from "
                                            f"{last.from_image} to {last.to_image})")
    previous = state.previous_revision()
    if previous is None:
        raise NothingToRollBack(
            f"{state.deployment_name} has no earlier revision to roll back to "
            f"(revisions: {', '.join(map(str, numbers)) or 'none'})")
    return RollbackDecision(previous, f"previous revision {previous.number}")


def plan(state: AppState, revision: Revision, cause: str) -> Plan:
    dep = state.deployment_name
    expected = None
    try:
        expected = expected_version_from_tag(parse_reference(revision.image).tag)
    except InvalidInput:
        expected = None
    steps: tuple[Step, ...] = (
        UndoRollout(dep, revision.number, cause),
        AwaitRollout(dep, expected),
    )
    return Plan("rollback", state.app, steps, (),
                summary=f"roll {dep} back from {state.image} (revision {state.revision}) to "
                        f"{revision.image} (revision {revision.number})")
