"""``deployer status`` and ``deployer history``: read-only views of an app."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from deployer.errors import AppNotFound
from deployer.lock import describe_holder, lease_name
from deployer.model import labels_text
from deployer.record import read_history, read_pause, read_run
from deployer.rollout import rollout_status
from deployer.snapshot import current_versions, pick_container, revisions
from deployer.timestamps import iso, parse

if TYPE_CHECKING:
    from deployer.gateway import ClusterGateway


def _deployments(gw: ClusterGateway, app: str) -> list[dict[str, Any]]:
    found = {d["metadata"]["name"]: d for d in gw.list_deployments(f"app={app}")}
    main = gw.get_deployment(app)
    if main is not None:
        found[app] = main
    if not found:
        raise AppNotFound(f"no Deployment named or labelled {app!r} in namespace "
                          f"{gw.namespace!r}")
    return [found[k] for k in sorted(found, key=lambda n: (n != app, n))]


def _container(dep: dict[str, Any], app: str, recorded: str | None) -> dict[str, Any]:
    """The container status shows: the one deployer's runs change (recorded), else the
    only one, else the one named like the Deployment or the app, else the first."""
    containers = dep["spec"]["template"]["spec"].get("containers") or []
    for name in (recorded, dep["metadata"]["name"], app):
        for c in containers:
            if name and c["name"] == name:
                return dict(c)
    return pick_container(dep, None) if len(containers) == 1 else dict(containers[0])


def collect(gw: ClusterGateway, app: str) -> dict[str, Any]:
    deployments = []
    run = None
    last = None
    releases = read_history(gw, app)
    recorded = next((r.container for r in [read_run(gw, app), *reversed(releases)]
                     if r is not None and r.container), None)
    for dep in _deployments(gw, app):
        container = _container(dep, app, recorded)
        status = dep.get("status") or {}
        rollout = rollout_status(dep)
        versions = current_versions(gw, dep, container["name"])
        deployments.append({
            "name": dep["metadata"]["name"],
            "image": container["image"],
            "track": (dep["spec"]["template"]["metadata"].get("labels") or {}).get("track"),
            "revision": (dep["metadata"].get("annotations") or {}).get(
                "deployment.kubernetes.io/revision"),
            "replicas": {"desired": dep["spec"].get("replicas", 1),
                         "updated": status.get("updatedReplicas", 0),
                         "ready": status.get("readyReplicas", 0),
                         "available": status.get("availableReplicas", 0)},
            "rollout": {"phase": rollout.phase.value, "message": rollout.message},
            "versions": dict(versions),
            "paused": bool(dep["spec"].get("paused")),
        })
        if dep["metadata"]["name"] == app:
            record = read_run(gw, app)
            run = record.view() if record else None
            asked = read_pause(gw, app) if record else None
            if record is not None and run is not None and asked is not None \
                    and asked.run == record.id:
                run["pauseRequested"] = asked.to_json()
            history = read_history(gw, app)
            last = history[-1].view() if history else None
    svc = gw.get_service(app)
    service = None
    if svc is not None:
        service = {"name": app, "selector": svc["spec"].get("selector"),
                   "sessionAffinity": svc["spec"].get("sessionAffinity"),
                   "clusterIP": svc["spec"].get("clusterIP"),
                   "ports": [f"{p.get('port')}->{p.get('targetPort')}"
                             for p in svc["spec"].get("ports") or []]}
    lease = gw.get_lease(lease_name(app))
    lock = describe_holder(lease, time.time()) if lease else None
    return {"app": app, "namespace": gw.namespace, "deployments": deployments,
            "service": service, "runInProgress": run, "lastRun": last, "lock": lock}


def render(data: dict[str, Any]) -> str:
    lines = [f"app {data['app']} in namespace {data['namespace']}"]
    for d in data["deployments"]:
        r = d["replicas"]
        versions = ", ".join(f"{v} x{n}" for v, n in d["versions"].items()) or "none answering"
        lines += [
            f"  deployment {d['name']}" + (f" (track {d['track']})" if d["track"] else ""),
            f"    image:     {d['image']} (revision {d['revision']})",
            f"    replicas:  {r['desired']} desired, {r['updated']} updated, {r['ready']} ready, "
            f"{r['available']} available",
            f"    rollout:   {d['rollout']['phase']}: {d['rollout']['message']}",
            f"    versions:  {versions}",
        ]
        if d["paused"]:
            lines.append("    paused:    yes")
    s = data["service"]
    if s:
        shown = labels_text(s["selector"])
        lines.append(f"  service {s['name']}: selector {shown}, sessionAffinity "
                     f"{s['sessionAffinity']}, {s['clusterIP']} {', '.join(s['ports'])}")
    else:
        lines.append("  service: none")
    run = data["runInProgress"]
    if run:
        lines.append(f"  run in progress: {run.get('strategy')} {run.get('fromImage')} -> "
                     f"{run.get('toImage')}, phase {run.get('phase')}, step "
                     f"{run.get('step')!r}, by {run.get('who')} since {run.get('started')}")
        held, asked = run.get("held"), run.get("pauseRequested")
        if held:
            why = f" ({held['reason']})" if held.get("reason") else ""
            paused = (f"; deployment {held['deployment']} is paused (spec.paused)"
                      if held.get("deployment") else "")
            lines.append(f"  paused:    by {held.get('by')} since {held.get('since')}{why}, "
                         f"at {held.get('step')!r}{paused}; deployer resume goes on, "
                         "deployer abort rolls it back")
        elif asked:
            lines.append(f"  pause asked by {asked.get('by')} at {asked.get('at')}: the run "
                         "holds at its next safe point")
    else:
        lines.append("  run in progress: none")
    lock = data.get("lock")
    if lock:
        state = (f"expires in {lock['expiresIn']:.0f}s" if lock["expiresIn"] > 0
                 else f"expired {-lock['expiresIn']:.0f}s ago (the next run takes it over)")
        lines.append(f"  lock: held by {lock['holder']} ({lock['command']}), {state}")
    else:
        lines.append("  lock: free")
    last = data["lastRun"]
    if last:
        lines.append(f"  last run: {last.get('strategy')} to {last.get('toImage')}: "
                     f"{last.get('verdict')} at {last.get('finished')} by {last.get('who')}")
        side = last.get("oldSide")
        if side:
            until = parse(side.get("until")) or 0.0
            when = (f"until {side.get('until')}" if until > time.time() else
                    f"expired at {side.get('until')}: the next deploy, promote or abort of the app "
                    "scales it down")
            lines.append(f"  rollback window: {side.get('deployment')} kept up {when} "
                         "(deployer rollback switches back to it, deployer promote ends it)")
    return "\n".join(lines)


def collect_history(gw: ClusterGateway, app: str) -> dict[str, Any]:
    dep = gw.get_deployment(app)
    if dep is None:
        raise AppNotFound(f"no Deployment named {app!r} in namespace {gw.namespace!r}")
    container = pick_container(dep, None)["name"]
    revs = revisions(gw, dep, container)
    current = (dep["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
    return {
        "app": app, "namespace": gw.namespace,
        "releases": [r.view() for r in read_history(gw, app)],
        "revisions": [{"revision": r.number, "image": r.image, "changeCause": r.change_cause,
                       "created": r.created, "current": str(r.number) == current}
                      for r in revs],
    }


def render_history(data: dict[str, Any]) -> str:
    lines = [f"releases of {data['app']} (namespace {data['namespace']}), oldest first:"]
    if not data["releases"]:
        lines.append("  none recorded by deployer")
    for r in data["releases"]:
        version = r.get("verifiedVersion") or r.get("expectedVersion") or "-"
        lines.append(f"  {r.get('finished') or r.get('started')}  {r.get('strategy'):<10} "
                     f"{r.get('fromImage')} -> {r.get('toImage')}  version {version}  "
                     f"{r.get('verdict') or r.get('phase')}  by {r.get('who')}"
                     + (f"  why: {r['reason']}" if r.get("reason") else "")
                     + (f"  run: {r['ciUrl']}" if r.get("ciUrl") else ""))
        if r.get("verdict") not in (None, "promoted", "no-op") and r.get("message"):
            lines.append(f"      because: {r['message']}")
    lines.append("revisions:")
    for r in data["revisions"]:
        mark = "*" if r["current"] else " "
        lines.append(f" {mark}{r['revision']:>4}  {r['image']:<40} {r['changeCause'] or ''}")
    return "\n".join(lines)


WAIT_STATES = ("paused", "promoted", "done")
WAIT_POLL = 2.0  # seconds between reads of the app's journal while waiting


def wait_for(gw: ClusterGateway, app: str, state: str, deadline: float, *,
             clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep,
             said: Callable[[str], None] = lambda text: None) -> tuple[int, str]:
    """Wait until the app's run reaches ``state``; (exit code, what happened).

    ``paused``: the run in progress stops at a gate (0); it ends without stopping there
    instead: the exit code of how it ended. ``promoted``: the run in progress (or, with
    none, the last one) ends promoted (0), or otherwise (1 rejected or rolled back, 3
    unsafe). ``done``: it ends, whichever way (0 promoted, rolled back or a no-op;
    otherwise as for promoted). Past ``deadline``: 70.
    """
    from deployer.exitcodes import ExitCode

    started_with = read_run(gw, app)
    watched = started_with.id if started_with is not None else None
    last_said = None
    while True:
        run = read_run(gw, app)
        if run is not None and watched is None:
            watched = run.id  # a run started while we waited: it is the one to follow
        if state == "paused" and run is not None and run.id == watched \
                and run.phase == "paused":
            return int(ExitCode.OK), f"{run.strategy} run {run.id} is paused at the gate"
        finished = None
        if run is None or run.id != watched:
            history = read_history(gw, app)
            finished = next((r for r in reversed(history) if r.id == watched), None) \
                if watched else (history[-1] if history else None)
        if finished is not None or (run is None and watched is None):
            if finished is None:
                return int(ExitCode.INVALID), f"{app} has no run to wait for"
            verdict = finished.verdict or finished.phase
            what = f"{finished.strategy} run {finished.id} ended {verdict}"
            if verdict == "promoted" or (state == "done" and verdict in ("rolled-back",
                                                                          "no-op")):
                return int(ExitCode.OK), what
            return int(ExitCode.UNSAFE if verdict == "unsafe" else ExitCode.REJECTED), what
        if clock() > deadline:
            where = f"{run.phase} at '{run.step}'" if run is not None else "not started"
            return int(ExitCode.TIMEOUT), f"timed out waiting for {state}: the run is {where}"
        now = f"waiting for {state}: run {run.id} {run.phase} at '{run.step}'" \
            if run is not None else f"waiting for {state}"
        if now != last_said:
            said(now)
            last_said = now
        sleep(WAIT_POLL)


WATCH_INTERVAL = 2.0  # seconds between two views of status --watch


def watch(gw: ClusterGateway, app: str, out: Any, *, tty: bool,
          sleep: Callable[[float], None] = time.sleep, wall: Callable[[], float] = time.time,
          rounds: int | None = None) -> None:
    """status --watch: the view again every 2 s until interrupted. On a terminal it is
    redrawn in place; elsewhere (CI) a view is printed, with its time, only when it
    changed. ``rounds``: stop after that many views (tests)."""
    last = None
    done = 0
    while rounds is None or done < rounds:
        view = render(collect(gw, app))
        if tty:
            out.write("\x1b[H\x1b[2J" + view + "\n")
        elif view != last:
            out.write(f"--- {iso(wall())}\n{view}\n")
        out.flush()
        last = view
        done += 1
        if rounds is None or done < rounds:
            sleep(WATCH_INTERVAL)
