"""Every exit code deployer can return, and what it means.

Only ``deployer.cli.main`` turns an outcome into a process exit code; everything
else returns values or raises :class:`deployer.errors.DeployerError`.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    REJECTED = 1
    INVALID = 2
    UNSAFE = 3
    LOCKED = 4
    PAUSED = 5
    UNREACHABLE = 69
    TIMEOUT = 70
    INTERRUPTED = 130

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


_MEANINGS = {
    ExitCode.OK: "done: rolled out, promoted, or rolled back on request",
    ExitCode.REJECTED: "release rejected: the verifier failed it, it was rolled back, "
    "the stable version is serving",
    ExitCode.INVALID: "invalid input or usage; nothing was changed",
    ExitCode.UNSAFE: "rollback failed or the state is unsafe; a human is needed",
    ExitCode.LOCKED: "another run holds this app's lock",
    ExitCode.PAUSED: "paused at a promotion gate, or an analysis was inconclusive (continue "
    "with promote or abort)",
    ExitCode.UNREACHABLE: "cluster unreachable or not authorised: before the first change, "
    "nothing was changed; mid-run, the outcome is unknown and the report says where it stopped",
    ExitCode.TIMEOUT: "timed out; the report says what state was left",
    ExitCode.INTERRUPTED: "interrupted (SIGINT/SIGTERM); the report says how to continue",
}


def table() -> str:
    """The exit-code table as printed by ``deployer --help`` and the README."""
    return "\n".join(f"{int(code):>4}  {code.meaning}" for code in ExitCode)
