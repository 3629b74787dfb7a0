"""SIGINT and SIGTERM: finish the current step's write, stop at the next safe point.

The first signal only sets a flag; the engine looks at it between steps and in every
wait, records "interrupted" in the cluster and exits 130 with the command to continue
or roll back. With ``--atomic`` the run first rolls back (bounded in time) and then
exits 130. A second signal stops at once.
"""

from __future__ import annotations

import signal
from types import FrameType

from deployer.errors import Interrupted


class StopFlag:
    def __init__(self) -> None:
        self.reason: str | None = None
        self.signals = 0
        self.acknowledged = False
        self._old: dict[int, object] = {}

    def check(self) -> None:
        if self.reason is not None and not self.acknowledged:
            raise Interrupted(f"interrupted by {self.reason}")

    def acknowledge(self) -> None:
        """The first signal is being acted on (``--atomic`` rolls back): safe points pass
        again; a second signal still stops at once."""
        self.acknowledged = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.signals += 1
        if self.reason is not None:
            raise Interrupted(f"interrupted by a second {name}")
        self.reason = name

    def __enter__(self) -> StopFlag:
        for s in (signal.SIGINT, signal.SIGTERM):
            self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)  # type: ignore[arg-type]
