"""Replica-ratio weights: how many canary pods give a share closest to a percentage."""

from __future__ import annotations


def split(stable: int, percent: int) -> tuple[int, float]:
    """The canary pod count whose share c / (stable + c) comes closest to ``percent``.

    At least one canary pod (a canary of nothing verifies nothing); ties go to fewer pods.
    """
    wanted = percent / 100
    best = min(range(1, max(1, stable) * 10 + 1),
               key=lambda c: (abs(c / (stable + c) - wanted), c))
    return best, best / (stable + best)
