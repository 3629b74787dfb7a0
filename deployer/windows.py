"""blue-green's rollback window once the run that opened it has ended.

A window longer than a run waits for (``--keep-old`` above a minute) is recorded on the
release in the app's history: ``old_side`` names the Deployment kept up and when the
window ends. No process waits for it: the next deployer command for the app closes an
expired window (scales that side to 0), ``deployer promote`` closes it at once, a new
release closes it before its first change (the previous version is no longer what a
rollback returns to), and ``deployer rollback`` inside it switches back to that side,
which is still running.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from deployer.gateway import ClusterGateway
from deployer.labels import selects
from deployer.record import RunRecord, read_history, update_release
from deployer.timestamps import parse
from deployer.writes import conditional_write


@dataclass(frozen=True)
class Window:
    release: RunRecord  # the release that left the old side up
    deployment: str
    service: str
    until: float  # epoch seconds

    def expired(self, now: float) -> bool:
        return now >= self.until


def pending(gateway: ClusterGateway, app: str) -> Window | None:
    """The open window of the app's last release, if it left one."""
    history = read_history(gateway, app)
    last = history[-1] if history else None
    side = last.old_side if last is not None else None
    if not side or not side.get("deployment"):
        return None
    assert last is not None
    until = parse(side.get("until"))
    return Window(last, str(side["deployment"]), str(side.get("service") or app),
                  until if until is not None else 0.0)


def close(gateway: ClusterGateway, app: str, window: Window, why: str) -> str:
    """Scale the window's old side to 0 (unless the Service routes to it again) and
    record the window as closed. Returns what was done, for the report."""
    dep = gateway.get_deployment(window.deployment)
    service = gateway.get_service(window.service)
    selector = ((service or {}).get("spec") or {}).get("selector") or {}
    if dep is None:
        done = f"{window.deployment} no longer exists"
    elif selects(selector, dep["spec"]["template"]["metadata"].get("labels") or {}):
        done = (f"service {window.service} routes to {window.deployment} again: it is left "
                "running")
    else:
        def change(current: dict[str, Any]) -> dict[str, Any] | None:
            if int(current["spec"].get("replicas", 1)) == 0:
                return None
            current["spec"]["replicas"] = 0
            return current

        def read() -> dict[str, Any]:
            fresh = gateway.get_deployment(window.deployment)
            return fresh if fresh is not None else {"spec": {"replicas": 0}}

        wrote = conditional_write(read, gateway.replace_deployment, change,
                                  f"deployment {window.deployment}")
        done = f"{window.deployment} scaled to 0" if wrote else \
            f"{window.deployment} was already at 0"
    update_release(gateway, app, window.release.id, old_side=None)
    return f"rollback window of {window.release.strategy} release {window.release.id} " \
           f"({window.release.to_image}) closed: {why}; {done}"


def close_if_expired(gateway: ClusterGateway, app: str,
                     now: float | None = None) -> str | None:
    window = pending(gateway, app)
    moment = time.time() if now is None else now
    if window is None or not window.expired(moment):
        return None
    return close(gateway, app, window, "it ended")
