"""Replica-ratio weights: how many canary pods give a share closest to a percentage."""

from __future__ import annotations

import math


def split(stable: int, percent: int) -> tuple[int, float]:
    """The canary pod count whose share c / (stable + c) comes closest to ``percent``.

    At least one canary pod (a canary of nothing verifies nothing); ties go to fewer pods.
    """
    wanted = percent / 100
    best = min(range(1, max(1, stable) * 10 + 1),
               key=lambda c: (abs(c / (stable + c) - wanted), c))
    return best, best / (stable + best)


# A share whose chance under the plan is below this, on either side, is not chance: a
# correct canary fails one step by bad luck alone at most twice in a thousand.
ALPHA = 1e-3


def clients_needed(share: float) -> int:
    """The fewest clients with which a ``share`` of none (or of all) would be noticed."""
    edge = min(share, 1 - share)
    if edge <= 0:
        return 1
    return math.ceil(math.log(ALPHA) / math.log(1 - edge))
