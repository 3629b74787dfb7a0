"""The settings a run was started with, and what a later command may change of them.

A run continued by another process (the same command re-run after a kill or a CI
timeout, ``promote``, ``abort``) runs its recorded plan with its recorded settings. A flag
written on the later command line that differs from the record is

* refused, naming the flag, when it would change the plan (``--interval``, ``--steps``,
  ``--keep-old``, ...): the recorded plan is what runs, so the flag would silently do
  nothing;
* applied from now on, and said, when it only changes how the run checks its pods
  (``--check-via``/``--url``, ``--samples``, ``--progress-deadline``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# option key -> the flag that sets it
PLAN_OPTIONS = {"max_surge": "--max-surge", "max_unavailable": "--max-unavailable",
                "steps": "--steps", "interval": "--interval", "until_gate": "--until-gate",
                "preview_replicas": "--preview-replicas", "keep_old": "--keep-old",
                "analysis": "--analysis/--arg/--probe/--compare"}
CHECK_SETTINGS = {"check_via": "--check-via", "samples": "--samples",
                  "progress_deadline": "--progress-deadline"}
SECONDS = {"interval", "keep_old", "progress_deadline"}


def snapshot(options: Mapping[str, Any], checks: Mapping[str, Any]) -> dict[str, Any]:
    """What to record: the plan options and the check settings, as JSON values."""
    out: dict[str, Any] = {}
    for key in PLAN_OPTIONS:
        if key in options:
            out[key] = _json(options[key])
    for key in CHECK_SETTINGS:
        if key in checks:
            out[key] = _json(checks[key])
    return out


def _json(value: Any) -> Any:
    if isinstance(value, dict):
        # the analysis spec (templates and all): its digest, which tells two apart
        import hashlib
        import json

        text = json.dumps(value, sort_keys=True, default=str)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]
    return list(value) if isinstance(value, tuple) else value


def show(key: str, value: Any) -> str:
    if value is None:
        return "unset"
    if key == "analysis":
        return "(the analyses recorded in the plan)"
    if key in SECONDS and isinstance(value, int | float):
        return f"{value:g}s"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def compare(recorded: Mapping[str, Any],
            given: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """``given``: the settings written on this command line (key -> value).

    Returns the refusals (plan options that differ, as text) and the check settings to
    apply from now on (key -> new value)."""
    refused: list[str] = []
    applied: dict[str, Any] = {}
    for key, value in given.items():
        if key not in recorded or _json(value) == recorded[key]:
            continue
        if key == "analysis":
            refused.append(f"{PLAN_OPTIONS[key]} ask for other analyses than the run was "
                           "started with" if value else
                           f"the run was started with analyses ({PLAN_OPTIONS[key]})")
        elif key in PLAN_OPTIONS:
            refused.append(f"{PLAN_OPTIONS[key]} {show(key, value)} (the run was started with "
                           f"{show(key, recorded[key])})")
        elif key in CHECK_SETTINGS:
            applied[key] = _json(value)
    return refused, applied


def describe(settings: Mapping[str, Any]) -> str:
    """The recorded settings in the words of their flags."""
    names = {**PLAN_OPTIONS, **CHECK_SETTINGS}
    return ", ".join(names[k] if v is True else f"{names[k]} {show(k, v)}"
                     for k, v in settings.items()
                     if k in names and v is not None and v is not False)
