"""Kubernetes timestamps: RFC 3339 to epoch seconds and back."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def parse(value: str | None) -> float | None:
    """``2026-01-02T03:04:05Z`` (or with fractions, or an offset) -> epoch seconds."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def iso(ts: float | None) -> str | None:
    """Epoch seconds -> ``2026-01-02T03:04:05Z`` (metav1.Time), None stays None."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def micro(ts: float) -> str:
    """Epoch seconds -> ``2026-01-02T03:04:05.000000Z`` (metav1.MicroTime, used by Leases)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
