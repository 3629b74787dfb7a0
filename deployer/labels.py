"""The app's own label scheme, and the new side's labels derived from it.

Apps label their pods in many ways: ``app`` only, ``app`` and ``track``, ``app`` and
``version`` (the classic blue-green lesson: the Deployment's selector and the Service's
hold the version), or all three. A new side (a canary, the other colour of a blue-green)
copies the live side's labels and changes only what tells it apart: ``track`` for a
canary, and the version label when the app has one. Where the live Deployment's selector
holds the version label, the new side's selector follows the new version, so each side
selects only its own pods, as the lesson does it.
"""

from __future__ import annotations

import re
from typing import Any

from deployer.errors import InvalidInput
from deployer.model import labels_text

TRACK_KEY = "track"
CANARY_TRACK = "canary"  # a canary's pods: the app's labels plus track: canary
VERSION_KEYS = ("version", "app.kubernetes.io/version")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")  # at most 63


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Does an equality selector (a Service's, a matchLabels) select pods with ``labels``?"""
    return all(labels.get(k) == v for k, v in selector.items())


def match_labels(dep: dict[str, Any]) -> dict[str, str]:
    return dict(((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})


def pod_labels(dep: dict[str, Any]) -> dict[str, str]:
    template = (dep.get("spec") or {}).get("template") or {}
    return dict((template.get("metadata") or {}).get("labels") or {})


def version_key(dep: dict[str, Any]) -> str | None:
    """The label that carries the app's version on its pods, if it has one."""
    labels = {**pod_labels(dep), **match_labels(dep)}
    return next((k for k in VERSION_KEYS if k in labels), None)


def versioned_selector(dep: dict[str, Any]) -> str | None:
    """The version label, when the Deployment's selector holds it (the selector cannot
    change, so that Deployment can only ever run pods labelled with that one version)."""
    key = version_key(dep)
    return key if key is not None and key in match_labels(dep) else None


def side_labels(live: dict[str, Any], track: str | None,
                version: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """(selector, pod labels) of a new side copied from ``live``: ``track`` set when given,
    the version label set to ``version``, in the selector too where the live one holds it."""
    match = match_labels(live)
    labels = pod_labels(live)
    key = version_key(live) or "version"
    if track is not None:
        match["track"] = labels["track"] = track
    if version is not None:
        labels[key] = version
        if key in match:
            match[key] = version
    elif key not in match:
        labels.pop(key, None)  # the old version's label would be wrong on the new pods
    return match, labels


def version_labels(dep: dict[str, Any], version: str | None,
                   service: dict[str, Any] | None = None) -> dict[str, str] | None:
    """The pod label an in-place update sets beside the image so that the pods say their
    version: the version label when the pods carry one outside the selector, and (for the
    Deployment that serves) outside the Service's selector, whose pods would leave it."""
    key = version_key(dep)
    routed = ((service or {}).get("spec") or {}).get("selector") or {}
    if (version is None or key is None or key in match_labels(dep)
            or key not in pod_labels(dep) or key in routed):
        return None
    return {key: version}


def require_version_label(live: dict[str, Any], version: str | None, strategy: str) -> None:
    """Refuse, before any write, a new side the version-label scheme cannot label."""
    key = versioned_selector(live)
    if key is None:
        return
    name = live["metadata"]["name"]
    current = match_labels(live)[key]
    if version is None:
        raise InvalidInput(
            f"deployment {name} selects its pods by {key}={current}, so the new side's pods "
            f"need a {key} label, and the image's tag names no version", id="version-label",
            hint="pass --expect-version VERSION (the label value and what /version answers)")
    if len(version) > 63 or not LABEL_VALUE.fullmatch(version):
        raise InvalidInput(
            f"version {version!r} cannot be the value of the label {key} (at most 63 letters, "
            "digits, '-', '_' or '.', beginning and ending with a letter or digit)",
            id="version-label", hint="pass --expect-version with a label-safe version")
    if version == current and strategy == "blue-green":
        raise InvalidInput(
            f"deployment {name} already selects {key}={current}: both sides of the "
            f"blue-green would select {labels_text({**match_labels(live), key: version})}",
            id="version-label",
            hint="deploy a new version, or use rolling to change the image of the same one")


def kept_label_warnings(dep: dict[str, Any], version: str | None) -> tuple[str, ...]:
    """Say so when an in-place update must leave the pods labelled with the old version."""
    key = versioned_selector(dep)
    if key is None:
        return ()
    old = match_labels(dep)[key]
    return (f"{dep['metadata']['name']} selects its pods by {key}={old}, and a selector "
            f"cannot change: its pods run {version or 'the new image'} still labelled "
            f"{key}={old} (blue-green moves a version label with the version)",)


def selector_matches(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions: In, NotIn, Exists,
    DoesNotExist) against a set of labels, as the API server evaluates it."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for term in selector.get("matchExpressions") or []:
        key, op, values = term.get("key"), term.get("operator"), term.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True
