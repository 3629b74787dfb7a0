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


def pods_of(amount: int | str, replicas: int, *, round_up: bool) -> int:
    """maxSurge / maxUnavailable as a pod count, as Kubernetes resolves them: a percentage
    of the replicas, rounded up for the surge and down for the unavailable pods."""
    if isinstance(amount, str) and amount.endswith("%"):
        exact = replicas * int(amount[:-1]) / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(amount)


def bounded_split(replicas: int, percent: int) -> tuple[int, int, float]:
    """(canary pods, stable pods, share) for a canary that takes its pods from the stable
    side: the two add up to ``replicas``, each keeps at least one pod, and the canary's
    count c / replicas comes closest to ``percent`` (ties go to fewer canary pods). An app
    of one replica runs its canary beside it: 1 + 1, half of the clients."""
    if replicas < 2:
        return 1, 1, 0.5
    canary = min(range(1, replicas), key=lambda c: (abs(c * 100 - percent * replicas), c))
    return canary, replicas - canary, canary / replicas


def shift(limit: int, floor: int, grow: tuple[int, int], shrink: tuple[int, int]
          ) -> list[tuple[str, int]]:
    """How to move pods from one side to the other within a pod budget: the growing side
    from grow[0] to grow[1] pods and the shrinking side from shrink[0] to shrink[1], never
    more than ``limit`` pods in all and, counting only what has become Ready, never fewer
    than ``floor``. Each ("grow", n) is to be waited for (its pods Ready) before the
    ("shrink", n) that follows it. ValueError when the budget allows no move at all."""
    g, s = grow[0], shrink[0]
    moves: list[tuple[str, int]] = []
    while (g, s) != (grow[1], shrink[1]):
        room = limit - (g + s)
        if g < grow[1] and room > 0:
            g = min(grow[1], g + room)
            moves.append(("grow", g))
            continue
        low = max(shrink[1], floor - g)
        if s <= low:
            raise ValueError(f"no pod can be added ({g + s} of at most {limit}) nor removed "
                             f"(at least {floor} must serve)")
        s = low
        moves.append(("shrink", s))
    return moves
