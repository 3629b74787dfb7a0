"""deployer's own errors.

Each error carries a stable ``id`` (shown as ``(deployer: <id>)``), an optional
``hint`` and the exit code it maps to. The Kubernetes client's exceptions never
leave :mod:`deployer.cluster`; they are translated into the classes below so the
rest of the code can decide by meaning, not by HTTP status.
"""

from __future__ import annotations

from typing import Any

from deployer.exitcodes import ExitCode


class DeployerError(Exception):
    """Base class: an expected failure with a message a person can act on."""

    exit_code: ExitCode = ExitCode.UNSAFE
    default_id = "error"

    def __init__(self, message: str, *, id: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.id = id or self.default_id
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.message} (deployer: {self.id})"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class InvalidInput(DeployerError):
    """The user's input breaks a rule; refused before anything is changed."""

    exit_code = ExitCode.INVALID
    default_id = "invalid-input"


class AppNotFound(InvalidInput):
    default_id = "unknown-app"


class NothingToRollBack(DeployerError):
    """There is no earlier revision to return to."""

    exit_code = ExitCode.INVALID
    default_id = "no-previous-revision"


class ClusterUnreachable(DeployerError):
    """The API server could not be reached (or kept failing) within the budget."""

    exit_code = ExitCode.UNREACHABLE
    default_id = "cluster-unreachable"


class NotAuthorised(DeployerError):
    """401/403: credentials rejected or a permission missing."""

    exit_code = ExitCode.UNREACHABLE
    default_id = "not-authorised"


class ApiRejected(DeployerError):
    """400/422 and other final refusals from the API server (never retried)."""

    exit_code = ExitCode.UNSAFE
    default_id = "api-rejected"


class NotFound(DeployerError):
    exit_code = ExitCode.UNSAFE
    default_id = "not-found"


class Conflict(DeployerError):
    """409: the object changed between our read and our write."""

    exit_code = ExitCode.UNSAFE
    default_id = "conflict"


class LockHeld(DeployerError):
    exit_code = ExitCode.LOCKED
    default_id = "lock-held"


class DeadlineExceeded(DeployerError):
    exit_code = ExitCode.TIMEOUT
    default_id = "timeout"


class Interrupted(DeployerError):
    exit_code = ExitCode.INTERRUPTED
    default_id = "interrupted"


class UnsafeState(DeployerError):
    """A rollback failed or the app is in a state deployer will not touch."""

    exit_code = ExitCode.UNSAFE
    default_id = "unsafe-state"


class StepFailed(Exception):
    """A plan step found the release bad (the engine then rolls back).

    Not a :class:`DeployerError`: it never leaves the engine, which turns it into an
    outcome. ``evaluation`` carries the verifier's evidence when there is some.
    """

    def __init__(self, message: str, evaluation: Any = None, timed_out: bool = False):
        super().__init__(message)
        self.message = message
        self.evaluation = evaluation
        self.timed_out = timed_out


class Undecided(Exception):
    """An analysis ended Inconclusive: the run stops at a gate after the step that ran it,
    so that a person decides (``deployer promote`` goes on, ``deployer abort`` rolls back)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
