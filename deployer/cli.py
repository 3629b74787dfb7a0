"""The command line: parse and validate, build a run, print the report, map to exit codes.

Only :func:`main` turns outcomes and errors into process exit codes. Input is
validated here, before the first API call. The Kubernetes client is imported
only when a command needs the cluster, so ``deployer --help`` stays instant.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import typer

from deployer import __version__
from deployer.errors import DeployerError, InvalidInput
from deployer.exitcodes import ExitCode, table
from deployer.validation import (
    is_bare_tag,
    parse_duration,
    parse_image,
    parse_revision,
    parse_surge,
    validate_app_name,
    validate_namespace,
    validate_reason,
    validate_tag,
)

if TYPE_CHECKING:
    from deployer.cluster import Gateway
    from deployer.engine import RunSettings
    from deployer.health.verifier import VerifyOptions
    from deployer.interrupt import StopFlag
    from deployer.lock import Lock
    from deployer.model import AppState, Outcome, Plan, Step, Target
    from deployer.record import RunRecord
    from deployer.report import Reporter

HELP = f"""Roll out a new version of an app on Kubernetes with a chosen strategy,
verify it from evidence (rollout status, pod failure reasons, the app's /version)
and promote it or roll it back.

\b
Exit codes:
{table()}
"""

app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=True,
                  pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]})


@dataclass
class Globals:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    output: str = "text"
    timeout: float = 600.0
    request_timeout: float = 30.0
    insecure: bool = False
    allow_system_namespace: bool = False
    verbose: bool = False
    log_format: str = "console"
    report_file: str | None = None  # --report: the JSON report, also written here
    junit_file: str | None = None  # --junit: JUnit XML of the run
    # what the command did before its plan (a rollback window it closed), for the report
    notes: list[str] = field(default_factory=list)


def _version(value: bool) -> None:
    if value:
        print(f"deployer {__version__}")
        raise typer.Exit(0)


@app.callback()
def global_options(
    ctx: typer.Context,
    kubeconfig: str | None = typer.Option(None, "--kubeconfig", metavar="PATH", envvar="KUBECONFIG",
                                          help="Path of the kubeconfig (default: $KUBECONFIG, "
                                               "~/.kube/config)."),
    context: str | None = typer.Option(
        None, "--context", metavar="CONTEXT",
        help="Kubeconfig context to use (required when $CI is set)."),
    namespace: str | None = typer.Option(None, "-n", "--namespace", metavar="NAMESPACE",
                                         help="Namespace (default: the context's, else "
                                              "'default')."),
    output: str = typer.Option("text", "-o", "--output", metavar="FORMAT",
                               help="text, json or yaml (one report on stdout; the "
                                    "words on stderr)."),
    timeout: str = typer.Option("10m", "--timeout", metavar="DURATION",
                                help="Deadline for the whole run, e.g. "
                                     "90s, 10m."),
    request_timeout: str = typer.Option("30s", "--request-timeout", metavar="DURATION",
                                        help="Deadline for one API request (the client's "
                                             "default is none)."),
    insecure: bool = typer.Option(False, "--insecure-skip-tls-verify",
                                  help="Do not verify the API server's certificate (never the "
                                       "default; says so on every run)."),
    allow_system_namespace: bool = typer.Option(False, "--allow-system-namespace",
                                                help="Allow kube-system, kube-public and "
                                                     "kube-node-lease."),
    verbose: bool = typer.Option(False, "-v", "--verbose",
                                 help="Debug logs on stderr: a line for every API request "
                                      "(method, path, status, ms)."),
    log_format: str = typer.Option("console", "--log-format", metavar="FORMAT",
                                   help="console or json."),
    actor: str | None = typer.Option(None, "--actor", metavar="NAME",
                                     help="Who the run is recorded as (default: the CI's "
                                          "actor, else the cluster's name for you and "
                                          "user@host)."),
    report: str | None = typer.Option(None, "--report", metavar="FILE",
                                      help="Also write the JSON report to FILE (any -o)."),
    junit: str | None = typer.Option(None, "--junit", metavar="FILE",
                                     help="Write JUnit XML to FILE: a test case per step, "
                                          "check and analysed metric, and the release."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    if output not in ("text", "json", "yaml"):
        raise InvalidInput(f"--output {output!r} is invalid: use text, json or yaml",
                           id="invalid-output")
    if log_format not in ("console", "json"):
        raise InvalidInput(f"--log-format {log_format!r} is invalid: use console or json",
                           id="invalid-log-format")
    if namespace is not None:
        validate_namespace(namespace)
    from deployer.ci_outputs import check_path
    from deployer.record import set_actor

    if actor is not None:
        actor = validate_reason(actor, "--actor")
    set_actor(actor)

    files = (check_path(report, "--report"), check_path(junit, "--junit"))
    _CI_FILES[:] = files  # an error before the run is written there too
    ctx.obj = Globals(kubeconfig, context, namespace, output,
                      parse_duration(timeout, "--timeout"),
                      parse_duration(request_timeout, "--request-timeout"), insecure,
                      allow_system_namespace, verbose, log_format, *files)
    _configure_logging(ctx.obj)


_CI_FILES: list[str | None] = [None, None]  # --report and --junit of this command


def _configure_logging(g: Globals) -> None:
    from deployer import logs

    logs.configure(g.verbose, g.log_format)


def _globals(ctx: typer.Context) -> Globals:
    return ctx.obj if isinstance(ctx.obj, Globals) else Globals()


SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")


def _in_ci() -> bool:
    """CI systems (GitHub Actions, GitLab CI, Jenkins via plugins, ...) set CI=true."""
    import os

    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def read_app_or_stand_in(gw: Gateway, app: str, container: str | None,
                         notes: list[str] | None = None) -> AppState:
    """The app as deployer reads it; when its Deployment is missing because an unfinished
    run deleted it to make it again (a new selector) and stopped, the Deployment as that
    run will create it stands in, so the run can be resumed, aborted or rolled back."""
    from deployer.errors import AppNotFound
    from deployer.record import remade_deployment
    from deployer.snapshot import read_app

    try:
        return read_app(gw, app, container)
    except AppNotFound:
        found = remade_deployment(gw, app)
        if found is None:
            raise
    run, body = found
    note = (f"deployment {app} is missing: run {run.id} ({run.strategy} to {run.to_image}) "
            "deleted it to make it again with a new selector and stopped before it did; "
            "the Deployment it will create stands in for it")
    if notes is not None and note not in notes:
        notes.append(note)
    return read_app(gw, app, container, stand_in=body)


def _connect(g: Globals, *, read_only: bool = False) -> Gateway:
    """The gateway for the chosen context and namespace, after the checks that need no API
    call: a context outside $DEPLOYER_ALLOWED_CONTEXTS, no --context in CI, or a system
    namespace is refused. The context is read once: a later `kubectl config use-context`
    does not move a run to another cluster."""
    import os

    from deployer.cluster import Gateway

    if _in_ci() and not g.context:
        raise InvalidInput(
            "running in CI (CI is set) without --context: deployer does not act on whichever "
            "context the kubeconfig happens to have selected", id="context-required",
            hint="pass --context NAME for the cluster this pipeline step is meant for")
    gw = Gateway(kubeconfig=g.kubeconfig, context=g.context, namespace=g.namespace,
                 request_timeout=g.request_timeout, verify_tls=not g.insecure)
    _CONNECTED.append(gw)
    if g.insecure:
        print("warning: --insecure-skip-tls-verify: the API server's certificate is not "
              "verified", file=sys.stderr)
    allowed = [c.strip() for c in os.environ.get("DEPLOYER_ALLOWED_CONTEXTS", "").split(",")
               if c.strip()]
    if allowed and gw.context not in allowed:
        raise InvalidInput(f"context {gw.context!r} is not in DEPLOYER_ALLOWED_CONTEXTS "
                           f"({', '.join(allowed)})", id="context-not-allowed",
                           hint="pass --context with one of them")
    if gw.namespace in SYSTEM_NAMESPACES and not (g.allow_system_namespace or read_only):
        raise InvalidInput(f"namespace {gw.namespace!r} belongs to the cluster itself; deployer "
                           "will not change it", id="system-namespace",
                           hint="pass --allow-system-namespace if you really mean it")
    if not read_only:
        from deployer.record import set_identity

        set_identity(gw.identity())  # who the run is recorded as (one request)
    return gw


def _reporter(g: Globals, gw: Gateway) -> Reporter:
    """The reporter; the commands it prints name this cluster and namespace, so they work
    pasted as they are (in CI too, where --context is required)."""
    from deployer.report import Reporter

    reporter = Reporter(output=g.output)
    reporter.report_file, reporter.junit_file = g.report_file, g.junit_file
    reporter.where = _where(g, gw)
    reporter.api_requests = gw.requests.to_json
    for note in g.notes:
        reporter.note(note)
    return reporter


def _where(g: Globals, gw: Gateway) -> str:
    """The options that point a printed command at this app's cluster and namespace."""
    import os
    import shlex

    where = [f"-n {shlex.quote(gw.namespace)}"]
    if gw.context:
        where.append(f"--context {shlex.quote(gw.context)}")
    if g.kubeconfig and g.kubeconfig != os.environ.get("KUBECONFIG"):
        where.append(f"--kubeconfig {shlex.quote(g.kubeconfig)}")
    return " ".join(where)


@dataclass
class Guard:
    """What a mutating command runs under: the stop flag for signals and the app's lock."""

    stop: StopFlag | None = None
    lock: Lock | None = None
    note: str | None = None
    # nothing another run may have changed since the caller's reads before the lock: the
    # Lease is as it was then (no run took, renewed or gave it back), taken over from
    # nobody, and no rollback window was closed under it
    unchanged: bool = False


@contextmanager
def _exclusive(ctx: typer.Context, gw: Gateway, app_name: str, *,
               enabled: bool = True, needs: Iterable[type[Step]] = (),
               close_window: bool = True, lease_read: str | None = None,
               extra: Iterable[Any] = ()) -> Iterator[Guard]:
    """Hold the app's Lease (and catch SIGINT/SIGTERM) for the body; always release it.

    Callers read the app and refuse bad input before: the Lease is the first write.
    Under the Lease, an expired blue-green rollback window is closed first (not by
    rollback, which returns to that side instead). ``lease_read``: the Lease's
    resourceVersion read before the caller's reads (see Guard.unchanged)."""
    if not enabled:
        yield Guard()
        return
    import uuid

    from deployer.interrupt import StopFlag
    from deployer.lock import Lock
    from deployer.record import who_am_i

    force, wait = ctx.meta.get("force", False), ctx.meta.get("wait_for_lock", 0.0)
    command = ("deployer " + " ".join(sys.argv[1:]))[:250]
    lock = Lock(gw, app_name, f"{uuid.uuid4().hex[:8]}:{who_am_i()}", command)
    from deployer import preflight

    preflight.check(gw, needs, extra)  # before the Lease, which is the first write
    with StopFlag() as stop:
        note = lock.acquire(force=force, wait=wait, stopped=lambda: stop.reason is not None,
                            waiting=lambda message: print(message, file=sys.stderr,
                                                          flush=True))
        if stop.reason is not None:
            from deployer.errors import Interrupted

            raise Interrupted(f"interrupted by {stop.reason} while waiting for the lock of "
                              f"{app_name}; nothing was changed")
        try:
            closed = None
            if close_window:
                from deployer import windows

                closed = windows.close_if_expired(gw, app_name)
                if closed:
                    _globals(ctx).notes.append(closed)
            yield Guard(stop, lock, note, unchanged=lease_read is not None and not note
                        and not closed and lock.found == lease_read)
        finally:
            lock.release()


class Prepared(NamedTuple):
    state: AppState
    target: Target
    plan: Plan
    in_progress: RunRecord | None  # the same run, interrupted: the real run resumes it
    checks: dict[str, Any]  # how the run checks its pods: recorded, or as given now
    applied: dict[str, Any]  # check settings given now that differ from the record
    deferred: bool = False  # another live run holds the lock: decide again under it


def _lock_now(ctx: typer.Context, gw: Gateway, app_name: str) -> tuple[bool, str | None]:
    """What acquiring the app's lock would meet now, read without writing: (held by another
    live run that this command waits for, a note on what the real run would do). LockHeld
    (exit 4, naming the holder) when another run holds it and this command does not wait."""
    import uuid

    from deployer.errors import LockHeld
    from deployer.lock import Lock

    try:
        return False, Lock(gw, app_name, f"{uuid.uuid4().hex[:8]}:check", "").check_free(
            force=ctx.meta.get("force", False))
    except LockHeld as exc:
        wait = ctx.meta.get("wait_for_lock", 0.0)
        if not wait:
            raise
        return True, f"{exc.message}: the real run would wait up to {wait:g}s for it"


def _dry_run_checks(ctx: typer.Context, gw: Gateway, app_name: str,
                    needs: Iterable[type[Step]], extra: Iterable[Any] = ()) -> str | None:
    """What the real run checks before its first write, without writing: permissions and
    the lock. Returns a note on what the real run would do about the lock."""
    from deployer import preflight

    preflight.check(gw, needs, extra)
    return _lock_now(ctx, gw, app_name)[1]


def _recorded_needs(gw: Gateway, app_name: str) -> set[type[Step]]:
    """The kinds of step a rollback, promote or abort may run, read before the lock:
    the unfinished run's plan, the last release's undo steps, or a revision undo."""
    from deployer import preflight
    from deployer.model import AwaitRollout, UndoRollout
    from deployer.record import read_history, read_run

    needs: set[type[Step]] = {UndoRollout, AwaitRollout}
    dep = gw.get_deployment(app_name)
    if dep is None:
        return needs
    run = read_run(gw, app_name)
    needs |= preflight.step_kinds(run.plan if run else None)
    history = read_history(gw, app_name)
    if history and history[-1].undo:
        needs |= preflight.step_kinds({"rollback": history[-1].undo})
    return needs


def _lock_options(ctx: typer.Context, force: bool, wait_for_lock: str | None) -> None:
    """The lock's options, and the environment's budgets: every command that changes
    something starts here, so bad input in any of them is refused before the cluster is
    read."""
    from deployer.engine.context import outage_budget
    from deployer.health.pods import pull_budget
    from deployer.lock import lease_seconds

    outage_budget()  # $DEPLOYER_API_OUTAGE_BUDGET
    lease_seconds()  # $DEPLOYER_LEASE_SECONDS
    pull_budget()  # $DEPLOYER_IMAGE_PULL_BUDGET
    ctx.meta["force"] = force
    ctx.meta["wait_for_lock"] = (parse_duration(wait_for_lock, "--wait-for-lock")
                                 if wait_for_lock else 0.0)


ALLOW_GITOPS = typer.Option(False, "--allow-gitops",
                            help="Change an app that Argo CD or Flux manages anyway (its next "
                                 "sync may revert the release).")
FORCE = typer.Option(False, "--force", help="Take the app's lock over even if another run "
                                             "holds it (that run stops before its next write).")
WAIT_FOR_LOCK = typer.Option(None, "--wait-for-lock", metavar="DURATION",
                             help="Wait this long for another run's "
                                  "lock instead of exiting 4.")


# -------------------------------------------------------------------- deploys


def _check_image_input(image: str) -> None:
    if is_bare_tag(image):
        validate_tag(image)
    else:
        parse_image(image)


def _deploy(ctx: typer.Context, strategy_name: str, app_name: str, image: str | None,
            reason: str | None, dry_run: bool, expect_version: str | None,
            no_version_check: bool, container: str | None, progress_deadline: str | None,
            options: dict[str, Any], samples: int = 3) -> int:
    from deployer.health.http import VERSION_TEXT

    g = _globals(ctx)
    validate_app_name(app_name)
    if image is not None:  # None: the image the app runs now (a restart)
        _check_image_input(image)
    if reason is not None:
        reason = validate_reason(reason)
    if expect_version is not None and not VERSION_TEXT.match(expect_version):
        raise InvalidInput(f"--expect-version {expect_version!r} is not a version string",
                           id="invalid-version")
    progress = parse_duration(progress_deadline, "--progress-deadline") \
        if progress_deadline else None
    clients = _client_addresses(options.pop("client_addresses", None))
    options["clients"] = len(clients)
    atomic = bool(options.pop("atomic", False))
    started = time.monotonic()
    checks = {"check_via": "off" if no_version_check else options.get("http_mode", "proxy"),
              "samples": samples, "progress_deadline": progress}
    given = _given(ctx, {**options, **checks})

    from deployer import preflight, recorded
    from deployer import strategy as strategies
    from deployer.engine import Engine
    from deployer.model import Plan, Target
    from deployer.record import Journal, RunRecord, ci_run_url, read_run, who_am_i
    from deployer.validation import expected_version_from_tag, resolve_image

    plugin = strategies.load(strategy_name)
    extra = preflight.JOB_PERMISSIONS if (options.get("analysis") or {}).get("jobs") else ()
    gw = _connect(g)
    where = _where(g, gw)

    def prepare(under_lock: bool = False) -> Prepared:
        """Everything the run decides from reading alone; every refusal happens here."""
        state = read_app_or_stand_in(gw, app_name, container, g.notes)
        if state.deployment["spec"].get("paused"):
            holding = read_run(gw, app_name)
            held = (holding.held if holding is not None else None) or {}
            raise InvalidInput(f"deployment {app_name} is paused: Kubernetes would not roll "
                               "it out", id="paused",
                               hint=f"deployer paused it, holding a run for {held.get('by')}: "
                                    f"deployer resume --app {app_name} {where} goes on"
                               if held.get("deployment") == app_name else
                               f"resume it first: kubectl rollout resume deployment/"
                               f"{app_name}")
        if image is None:  # the same image again: the version its pods answer now
            live = state.on_live_side()
            target_image = live.image
            expected = expect_version or live.version
        else:
            target_image = resolve_image(image, state.image)
            expected = expect_version or expected_version_from_tag(target_image.tag)
        if expected is None and not no_version_check:
            raise InvalidInput(
                f"cannot tell which version {target_image} should answer on /version",
                id="unknown-expected-version",
                hint="pass --expect-version VERSION (or --no-version-check to skip the HTTP check)")
        target = Target(target_image, None if no_version_check else expected, reason,
                        who_am_i(), ci_run_url())
        plan = plugin.plan(state, target, strategies.Options(options))
        preflight.check_plan(plan)
        live = state.on_live_side()
        for note in (
                preflight.check_owners(
                    [("deployment", state.deployment), ("deployment", live.deployment),
                     ("service", state.service)], allowed=ctx.meta.get("allow_gitops", False)),
                preflight.check_quota(gw, plan, state.replica_counts(),
                                      {state.deployment_name: state.deployment, **state.others},
                                      live.deployment["spec"]["template"]),
                preflight.check_budgets(gw, plan, state.replica_counts(),
                                        {state.deployment_name: state.deployment,
                                         **state.others})):
            if note and note not in g.notes:
                g.notes.append(note)
        in_progress = read_run(gw, app_name)
        if in_progress is not None and in_progress.plan is not None:
            same = (in_progress.strategy == strategy_name
                    and in_progress.to_image == str(target_image))
            if not same or in_progress.phase in ("paused", "rolling-back", "failed"):
                if not under_lock and _lock_now(ctx, gw, app_name)[0]:
                    # A live run holds the lock: wait for it (--wait-for-lock), then look
                    # again under the lock; without waiting, LockHeld names it (exit 4).
                    return Prepared(state, target, plan, None, checks, {}, deferred=True)
                raise InvalidInput(
                    f"{app_name} has an unfinished {in_progress.strategy} run to "
                    f"{in_progress.to_image} ({in_progress.phase}, started "
                    f"{in_progress.started} by {in_progress.who})", id="run-in-progress",
                    hint=f"finish it first: deployer promote --app {app_name} {where}, "
                         f"deployer abort --app {app_name} {where} or deployer rollback "
                         f"--app {app_name} {where}")
            if in_progress.settings is not None:
                refused, applied = recorded.compare(in_progress.settings, given)
                if refused:
                    raise InvalidInput(
                        f"{app_name} has an interrupted {in_progress.strategy} run that this "
                        f"command would resume, but {'; '.join(refused)}: the recorded plan is "
                        "what runs", id="differs-from-recorded-run",
                        hint=f"re-run without {'/'.join(r.split()[0] for r in refused)} to "
                             f"resume it as recorded, or deployer abort --app {app_name} "
                             f"{where} and "
                             "start again")
                return Prepared(state, target, plan, in_progress,
                                {**in_progress.settings, **applied}, applied)
        else:
            in_progress = None
        return Prepared(state, target, plan, in_progress, checks, {})

    # Read and refuse before the first write (the Lease); under the lock, read again when
    # another run may have finished in between.
    def reporter_for(state: AppState, target: Target) -> Reporter:
        reporter = _reporter(g, gw)
        live_image, live_version = state.live_text()
        reporter.fact(app=str(state.app), strategy=strategy_name, from_image=live_image,
                      to_image=str(target.image), from_version=live_version,
                      expected_version=target.expected_version)
        return reporter

    from deployer.lock import lease_name, version_of

    # The Lease as it is before the reads: when taking it finds it the same, no run took or
    # gave back the lock meanwhile, and what was read stands under the lock.
    lease_read = None if dry_run else version_of(gw.get_lease(lease_name(app_name)))
    prepared = prepare()
    if not dry_run and prepared.in_progress is None and not prepared.deferred and \
            plugin.is_current(prepared.state, prepared.target):
        # Already on the image: a no-op (or a mismatch) is decided from reading alone, and
        # writes nothing, not even the Lease.
        return _finish(reporter_for(prepared.state, prepared.target),
                       _already_running(app_name, prepared.state, prepared.target))
    if dry_run:
        note = _dry_run_checks(ctx, gw, app_name, plugin.steps, extra)
        from deployer import windows

        window = windows.pending(gw, app_name)
        if window is not None:
            g.notes.append(f"the real run would first close the rollback window of "
                           f"{window.release.strategy} release {window.release.id}: "
                           f"{window.deployment} scaled to 0")
    with _exclusive(ctx, gw, app_name, enabled=not dry_run, needs=plugin.steps,
                    lease_read=lease_read, extra=extra) as guard:
        if not dry_run and (prepared.deferred or not guard.unchanged):
            prepared = prepare(under_lock=True)
        state, target, plan, in_progress, effective, applied, _ = prepared
        target_image = target.image
        reporter = reporter_for(state, target)
        if dry_run:
            if note:
                reporter.note(note)
            if in_progress is not None:
                reporter.note(f"the real run would resume run {in_progress.id} "
                              f"({in_progress.phase}) at step {(in_progress.position or 0) + 1}"
                              " of its recorded plan")
                plan = Plan.from_json(state.app, in_progress.plan or {})
            return _dry_run_result(reporter, state, plan, plan.summary)
        if in_progress is not None:
            # The same command again (a CI job re-run after a timeout or a kill): continue
            # the recorded plan where it stopped. Steps are idempotent, so the step in
            # progress is simply done again, and no extra revision is created.
            resumed = Plan.from_json(state.app, in_progress.plan or {})
            reporter.note(f"resuming run {in_progress.id} ({in_progress.phase}) at step "
                          f"{(in_progress.position or 0) + 1}: {in_progress.step}")
            _say_recorded(reporter, in_progress, applied)
            settings = _recorded_settings(effective, started + g.timeout, clients, atomic,
                                          in_progress.container or state.container)
            engine = Engine(gw, reporter, settings, lock=guard.lock, stop=guard.stop)
            outcome = engine.run(resumed, Journal(gw, app_name, in_progress),
                                 start=in_progress.position or 0)
            return _finish(reporter, outcome)
        if plugin.is_current(state, target):
            return _finish(reporter, _already_running(app_name, state, target))
        from deployer import windows

        window = windows.pending(gw, app_name)
        if window is not None:
            # What a rollback returns to is about to change: the window's old side goes.
            reporter.note(windows.close(gw, app_name, window, "a new release starts"))
            prepared = prepare(under_lock=True)
            state, target, plan = prepared.state, prepared.target, prepared.plan
        current = next((r for r in state.revisions if r.number == state.revision), None)
        template_hash = None
        if current is not None:
            template_hash = ((current.template.get("metadata") or {}).get("labels") or {}).get(
                "pod-template-hash")
        live = state.on_live_side()  # the release goes from what the Service routes to now
        record = RunRecord(strategy_name, app_name, str(live.image), str(target_image),
                           live.version, target.expected_version, state.revision, template_hash,
                           who=target.who or who_am_i(), reason=reason,
                           settings=recorded.snapshot(options, checks),
                           container=state.container)
        journal = Journal(gw, app_name, record)
        settings = _recorded_settings(checks, started + g.timeout, clients, atomic,
                                      state.container)
        engine = Engine(gw, reporter, settings, lock=guard.lock, stop=guard.stop)
        outcome = engine.run(plan, journal)
        return _finish(reporter, outcome)


# parameter -> the setting it gives (--weight is one canary step: a --steps of one)
_PARAMS = {"max_surge": "max_surge", "max_unavailable": "max_unavailable", "steps": "steps",
           "weight": "steps", "interval": "interval", "until_gate": "until_gate",
           "preview_replicas": "preview_replicas", "keep_old": "keep_old",
           "check_via": "check_via", "no_version_check": "check_via", "samples": "samples",
           "progress_deadline": "progress_deadline", "analysis": "analysis",
           "arg": "analysis", "probe": "analysis", "max_error_rate": "analysis",
           "probe_requests": "analysis", "compare": "analysis", "prometheus": "analysis",
           "compare_alpha": "analysis", "compare_worse": "analysis"}


def _given(ctx: typer.Context, values: dict[str, Any]) -> dict[str, Any]:
    """The settings written on this command line (not defaults), by setting name."""
    out: dict[str, Any] = {}
    for param, key in _PARAMS.items():
        source = ctx.get_parameter_source(param)
        if source is not None and source.name == "COMMANDLINE" and key in values:
            out[key] = values[key]
    return out


def _recorded_settings(checks: dict[str, Any], deadline: float, clients: tuple[str, ...],
                       atomic: bool, container: str | None) -> RunSettings:
    from deployer.engine import RunSettings

    return RunSettings(deadline=deadline, progress_deadline=checks.get("progress_deadline"),
                       verify=_verify_options(str(checks.get("check_via") or "proxy"),
                                              int(checks.get("samples") or 3), container),
                       client_addresses=clients, atomic=atomic)


def _say_recorded(reporter: Reporter, record: RunRecord, applied: dict[str, Any]) -> None:
    from deployer import recorded

    if record.settings is None:
        return
    said = recorded.describe(record.settings)
    if said:
        reporter.note(f"with the settings it was started with: {said}")
    for key, value in applied.items():
        reporter.note(f"{recorded.CHECK_SETTINGS[key]} {recorded.show(key, value)} applies "
                      f"from now on (the run was started with "
                      f"{recorded.show(key, record.settings.get(key))})")


def _recorded_container(gw: Gateway, app_name: str, record: RunRecord | None) -> str | None:
    """The container a recorded run changed, so that rollback, promote and abort need no
    --container on a pod with several (the printed commands carry none). Older records
    name no container: the one running the record's image is it."""
    if record is None:
        return None
    if record.container:
        return record.container
    dep = gw.get_deployment(app_name) or {}
    containers = ((dep.get("spec") or {}).get("template") or {}).get("spec", {}).get(
        "containers") or []
    matching = [c["name"] for c in containers
                if c.get("image") in (record.to_image, record.from_image)]
    return matching[0] if len(matching) == 1 else None


def _already_running(app_name: str, state: AppState, target: Target) -> Outcome:
    """The app runs the image already: a no-op only if it answers the expected version."""
    from deployer.model import Outcome, Verdict

    expected = target.expected_version
    state = state.on_live_side()  # what users get: after a blue-green, its live side
    if expected is None:
        return Outcome(Verdict.NOOP, ExitCode.OK, f"{app_name} already runs {target.image}; "
                       "nothing to do (not verified: the version check is off)")
    if state.version == expected:
        return Outcome(Verdict.NOOP, ExitCode.OK, f"{app_name} already runs {target.image}; "
                       "nothing to do", verified_version=state.version)
    why = (f"its pods answer {state.version}, not {expected}" if state.version else
           "its pods do not all answer one version on /version")
    return Outcome(Verdict.REJECTED, ExitCode.REJECTED,
                   f"{app_name} already runs {target.image}, but {why}; nothing was changed")


URL_FIELDS = {"pod_ip": "10.0.0.1", "pod": "p", "namespace": "n", "port": 8080}


def _check_via(value: str) -> str:
    """proxy, pod-ip, or a URL template with {pod_ip} or {pod} (and {namespace}, {port})."""
    if value in ("proxy", "pod-ip"):
        return value
    if value.startswith(("http://", "https://")):
        try:
            filled = value.format(**URL_FIELDS)
        except (KeyError, IndexError, ValueError) as exc:
            raise InvalidInput(f"--url {value!r} is invalid: unknown or broken placeholder "
                               f"{exc}", id="invalid-url",
                               hint="placeholders: {pod_ip}, {pod}, {namespace}, {port}") from exc
        if filled == value or not ("{pod_ip}" in value or "{pod}" in value):
            raise InvalidInput(f"--url {value!r} names no pod: use {{pod_ip}} or {{pod}}",
                               id="invalid-url")
        return value
    raise InvalidInput(f"--check-via {value!r} is invalid: use proxy, pod-ip or a URL "
                       "template such as http://{pod_ip}:8080/version", id="invalid-check-via")


def _verify_options(mode: str, samples: int, container: str | None = None) -> VerifyOptions:
    """How pods are verified; ``container`` is the one deployed (its port is asked)."""
    from deployer.health.verifier import VerifyOptions

    if mode.startswith(("http://", "https://")):
        return VerifyOptions(samples=samples, http_mode="url", url_template=mode,
                             container=container)
    return VerifyOptions(samples=samples, http_mode=mode, container=container)


def _client_addresses(text: str | None) -> tuple[str, ...]:
    import os

    from deployer.health.traffic import parse_client_addresses

    text = text if text is not None else os.environ.get("DEPLOYER_CLIENT_ADDRESSES")
    return parse_client_addresses(text) if text else ()


def _dry_run_result(reporter: Reporter, state: AppState, plan: Plan, title: str) -> int:
    """A dry run's plan, text and JSON, each step with the replicas after it; exit 0."""
    from deployer.model import Outcome, Verdict

    start = state.replica_counts()
    reporter.heading(f"Plan (dry run, nothing changed): {title}")
    for line in plan.describe(start):
        reporter.line(line)
    reporter.plan = plan.dry_run_json(start)
    reporter.warnings += plan.warnings
    return _finish(reporter, Outcome(Verdict.PLANNED, ExitCode.OK, "dry run: nothing was changed"))


def _finish(reporter: Reporter, outcome: Outcome) -> int:
    reporter.result(outcome)
    return int(outcome.exit_code)


def complete_app(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of --app: the namespace's Deployments, when the cluster answers
    within a second or two; nothing otherwise (completion never waits or fails loudly)."""
    try:
        from deployer import logs
        from deployer.cluster import Gateway, RetryBudget

        logs.configure(False, "console")  # no log line in the middle of a completion
        params = ctx.parent.params if ctx.parent is not None else {}
        gw = Gateway(kubeconfig=params.get("kubeconfig"), context=params.get("context"),
                     namespace=params.get("namespace"), request_timeout=2.0,
                     budget=RetryBudget(attempts=1, seconds=2.0))
        names = [d["metadata"]["name"] for d in gw.list_deployments()]
    except Exception:  # noqa: BLE001 - no cluster, no completion
        return []
    return sorted(n for n in names if n.startswith(incomplete) and
                  not n.endswith(("-canary", "-green")))


APP = typer.Option(..., "--app", metavar="APP", autocompletion=complete_app,
                   help="The app: its Deployment and Service have this name.")
IMAGE = typer.Option(..., "--image", metavar="IMAGE",
                     help="Full image reference, or a bare tag (v2) for the "
                          "app's current repository.")
REASON = typer.Option(None, "--reason", metavar="TEXT", help="Why: recorded as the change-cause.")
DRY_RUN = typer.Option(False, "--dry-run", help="Print the plan; change nothing.")
EXPECT = typer.Option(None, "--expect-version", metavar="VERSION",
                      help="What /version must answer (default: "
                           "from the tag, v2 -> 2.0.0).")
SAMPLES = typer.Option(3, "--samples", metavar="N",
                       help="Consecutive matching /version answers each new pod must give "
                            "(1 to 100).")


def _check_samples(samples: int) -> None:
    if samples < 1 or samples > 100:
        raise InvalidInput(f"--samples {samples} is invalid: use 1 to 100", id="invalid-samples")


def _analysis_spec(files: list[str] | None, args: list[str] | None, probe: str | None,
                   max_error_rate: str | None, probe_requests: int | None,
                   compare: list[str] | None = None, prometheus: str | None = None,
                   alpha: float | None = None, worse: str | None = None
                   ) -> dict[str, Any] | None:
    from deployer.analysis.spec import build

    return build(files=files, args=args, probe=probe, max_error_rate=max_error_rate,
                 probe_requests=probe_requests, compare=compare, prometheus=prometheus,
                 alpha=alpha, worse=worse)


def _analysis_time(interval: str, spec: dict[str, Any] | None) -> float | None:
    """rolling's and blue-green's --interval: how long their analysis runs (None: none)."""
    seconds = parse_duration(interval, "--interval", allow_zero=True)
    if seconds and not spec:
        raise InvalidInput("--interval is how long the analysis runs, and none is asked for",
                           id="invalid-analysis",
                           hint="add --analysis FILE or --probe PATH, or leave --interval out")
    return seconds if spec else None


NO_VERSION = typer.Option(False, "--no-version-check", help="Skip the HTTP /version check.")
CONTAINER = typer.Option(None, "--container", metavar="CONTAINER",
                         help="Container to update (default: the only "
                              "one, or the one named like the app).")
CHECK_VIA = typer.Option("proxy", "--check-via", "--url", metavar="HOW",
                         help="How /version is read from each new pod: proxy (through the "
                              "API server; works from anywhere), pod-ip (direct; needs the pod "
                              "network), or a URL template such as "
                              "https://{pod_ip}:8443/version (TLS verified).")
ATOMIC = typer.Option(False, "--atomic", help="On SIGINT/SIGTERM (a cancelled CI job), roll "
                                               "back before exiting 130 instead of stopping "
                                               "where the run is; a second signal stops at "
                                               "once.")
PROGRESS = typer.Option(None, "--progress-deadline", metavar="DURATION",
                        help="How long new pods may take to be "
                             "healthy (default: the Deployment's "
                             "progressDeadlineSeconds).")


ANALYSIS = typer.Option(None, "--analysis", metavar="FILE",
                        help="An AnalysisTemplate or ClusterAnalysisTemplate file in Argo "
                             "Rollouts' format (argoproj.io/v1alpha1; repeatable): its metrics "
                             "(prometheus, web, job) judge the new version.")
ARG = typer.Option(None, "--arg", metavar="NAME=VALUE",
                   help="A value for a template argument (repeatable). deployer gives app, "
                        "namespace, canary-track, stable-track, new-version, old-version, "
                        "canary-hash, stable-hash and latest-hash itself.")
PROBE = typer.Option(None, "--probe", metavar="PATH",
                     help="Send requests to PATH on every new pod and as many old ones (by the "
                          "--check-via route); fail on a new error rate (non-2xx, timeouts) "
                          "above --max-error-rate, or that much above the old pods'.")
MAX_ERROR_RATE = typer.Option(None, "--max-error-rate", metavar="PCT",
                              help="The error rate in percent above which --probe fails the "
                                   "new version, e.g. 5.")
PROBE_REQUESTS = typer.Option(None, "--probe-requests", metavar="N",
                              help="Requests --probe sends to each side's pods per analysed "
                                   "step (default 100, at most 1000).")
COMPARE = typer.Option(None, "--compare", metavar="QUERY",
                       help="A Prometheus query with a {{track}} placeholder (repeatable), "
                            "run over each step's window for the canary's track and "
                            "stable's; the canary fails when its values are significantly "
                            "worse (Mann-Whitney U; needs deployer[stats]). Fewer than 8 "
                            "values a side is Inconclusive.")
ANALYSIS_TIME = typer.Option("0s", "--interval", metavar="DURATION",
                             help="How long the analysis (--analysis, --probe) runs; metrics "
                                  "with a count run until they have it.")


@app.command()
def rolling(
    ctx: typer.Context,
    app_name: str = APP,
    image: str = IMAGE,
    max_surge: str | None = typer.Option(None, "--max-surge", metavar="N|N%", help="N or N%."),
    max_unavailable: str | None = typer.Option(None, "--max-unavailable", metavar="N|N%",
                                               help="N or N%."),
    reason: str | None = REASON,
    dry_run: bool = DRY_RUN,
    expect_version: str | None = EXPECT,
    no_version_check: bool = NO_VERSION,
    samples: int = SAMPLES,
    container: str | None = CONTAINER,
    check_via: str = CHECK_VIA,
    progress_deadline: str | None = PROGRESS,
    analysis: list[str] | None = ANALYSIS,
    arg: list[str] | None = ARG,
    interval: str = ANALYSIS_TIME,
    probe: str | None = PROBE,
    max_error_rate: str | None = MAX_ERROR_RATE,
    probe_requests: int | None = PROBE_REQUESTS,
    atomic: bool = ATOMIC,
    allow_gitops: bool = ALLOW_GITOPS,
    force: bool = FORCE,
    wait_for_lock: str | None = WAIT_FOR_LOCK,
) -> int:
    """Native rolling update, watched and verified; undone on failure."""
    _lock_options(ctx, force, wait_for_lock)
    ctx.meta["allow_gitops"] = allow_gitops
    from deployer.validation import check_surge_pair

    _check_samples(samples)
    surge = parse_surge(max_surge, "--max-surge") if max_surge is not None else None
    unavailable = (parse_surge(max_unavailable, "--max-unavailable")
                   if max_unavailable is not None else None)
    if surge is not None and unavailable is not None:
        check_surge_pair(surge, unavailable)
    spec = _analysis_spec(analysis, arg, probe, max_error_rate, probe_requests)
    return _deploy(ctx, "rolling", app_name, image, reason, dry_run, expect_version,
                   no_version_check, container, progress_deadline,
                   {"max_surge": surge, "max_unavailable": unavailable,
                    "http_mode": _check_via(check_via), "atomic": atomic, "analysis": spec,
                    "interval": _analysis_time(interval, spec)},
                   samples=samples)


@app.command()
def restart(
    ctx: typer.Context,
    app_name: str = APP,
    reason: str | None = REASON,
    dry_run: bool = DRY_RUN,
    expect_version: str | None = EXPECT,
    no_version_check: bool = NO_VERSION,
    samples: int = SAMPLES,
    container: str | None = CONTAINER,
    check_via: str = CHECK_VIA,
    progress_deadline: str | None = PROGRESS,
    atomic: bool = ATOMIC,
    allow_gitops: bool = ALLOW_GITOPS,
    force: bool = FORCE,
    wait_for_lock: str | None = WAIT_FOR_LOCK,
) -> int:
    """Restart every pod (kubectl rollout restart), verified like a release: the new pods
    must answer the version the app answers now; undone on failure."""
    _lock_options(ctx, force, wait_for_lock)
    ctx.meta["allow_gitops"] = allow_gitops
    _check_samples(samples)
    from deployer.timestamps import iso

    return _deploy(ctx, "restart", app_name, None, reason, dry_run, expect_version,
                   no_version_check, container, progress_deadline,
                   {"restarted_at": iso(time.time()), "http_mode": _check_via(check_via),
                    "atomic": atomic}, samples=samples)


@app.command()
def recreate(
    ctx: typer.Context,
    app_name: str = APP,
    image: str = IMAGE,
    reason: str | None = REASON,
    dry_run: bool = DRY_RUN,
    expect_version: str | None = EXPECT,
    no_version_check: bool = NO_VERSION,
    samples: int = SAMPLES,
    container: str | None = CONTAINER,
    check_via: str = CHECK_VIA,
    progress_deadline: str | None = PROGRESS,
    atomic: bool = ATOMIC,
    allow_gitops: bool = ALLOW_GITOPS,
    force: bool = FORCE,
    wait_for_lock: str | None = WAIT_FOR_LOCK,
) -> int:
    """Stop every old pod, then start the new version; reports the downtime."""
    _lock_options(ctx, force, wait_for_lock)
    ctx.meta["allow_gitops"] = allow_gitops
    _check_samples(samples)
    return _deploy(ctx, "recreate", app_name, image, reason, dry_run, expect_version,
                   no_version_check, container, progress_deadline,
                   {"http_mode": _check_via(check_via), "atomic": atomic}, samples=samples)


@app.command()
def rollback(
    ctx: typer.Context,
    app_name: str = APP,
    to_revision: str | None = typer.Option(None, "--to-revision", metavar="REVISION",
                                           help="Revision number (see history)."),
    reason: str | None = REASON,
    container: str | None = CONTAINER,
    progress_deadline: str | None = PROGRESS,
    dry_run: bool = DRY_RUN,
    force: bool = FORCE,
    wait_for_lock: str | None = WAIT_FOR_LOCK,
) -> int:
    """Return the app to its previous version (or --to-revision N) and verify it."""
    _lock_options(ctx, force, wait_for_lock)
    g = _globals(ctx)
    validate_app_name(app_name)
    revision = parse_revision(to_revision) if to_revision is not None else None
    if reason is not None:
        reason = validate_reason(reason)
    progress = parse_duration(progress_deadline, "--progress-deadline") \
        if progress_deadline else None
    started = time.monotonic()

    from deployer import rollback as rb
    from deployer.engine import Engine, RunSettings
    from deployer.model import Outcome, Plan, Verdict, step_from_json
    from deployer.record import Journal, RunRecord, read_history, read_run, who_am_i

    gw = _connect(g)
    needs = _recorded_needs(gw, app_name)
    who = who_am_i()

    def choose() -> tuple[AppState, str, Plan | None, Any]:
        """What the rollback would do, from reading alone: undo the unfinished run, undo
        the last release, return to a revision, or nothing; a refusal is raised here."""
        in_progress = read_run(gw, app_name)
        history = read_history(gw, app_name)
        state = read_app_or_stand_in(gw, app_name, container or _recorded_container(
            gw, app_name, in_progress or (history[-1] if history else None)), g.notes)
        if revision is None and in_progress is not None and in_progress.plan is not None:
            return state, "unfinished", Plan.from_json(state.app, in_progress.plan), in_progress
        last = history[-1] if history else None
        if revision is None and last is not None and last.verdict == "promoted" and last.undo:
            undo = tuple(step_from_json(s) for s in last.undo)
            return state, "undo", Plan(last.strategy, state.app, (), undo,
                                       summary=f"undo {last.strategy} release "
                                               f"{last.from_image} -> {last.to_image}"), last
        decision = rb.decide(state, in_progress, history, revision)
        if decision.revision is None:
            return state, "nothing", None, decision
        cause = f"deployer rollback to revision {decision.revision.number} by {who}" + (
            f": {reason}" if reason else "")
        return state, "revision", rb.plan(state, decision.revision, cause), decision

    def report_for(state: AppState, kind: str, about: Any) -> Reporter:
        reporter = _reporter(g, gw)
        live_image, live_version = state.live_text()
        reporter.fact(app=str(state.app), strategy="rollback", from_image=live_image,
                      from_version=live_version)
        if kind in ("unfinished", "undo"):
            reporter.fact(to_image=about.from_image, expected_version=about.from_version)
        elif kind == "revision":
            reporter.fact(to_image=about.revision.image)
        return reporter

    # Decide before the first write: a refusal (exit 2) or nothing to do writes nothing,
    # not even the Lease. Under the lock, decide again: another run may have ended since.
    state, kind, plan, about = choose()
    if kind == "unfinished" and _in_rollback_window(about):
        # That run has only the old side's scale-down left; switching back is what this
        # window is for, so its lock is taken over without --force.
        ctx.meta["force"] = True
        g.notes.append(f"{about.strategy} run {about.id} is in its rollback window after a "
                       "verified switch: its lock is taken over")
    if kind == "nothing":
        return _finish(report_for(state, kind, about),
                       Outcome(Verdict.NOOP, ExitCode.OK, f"nothing to roll back: {about.why}"))
    if dry_run:
        note = _dry_run_checks(ctx, gw, app_name, needs)
        reporter = report_for(state, kind, about)
        assert plan is not None
        if note:
            reporter.note(note)
        # An undo is a plan of rollback steps only: those are what the rollback runs.
        shown = plan if plan.steps else Plan(plan.strategy, plan.app, plan.rollback, (),
                                             plan.summary, plan.notes)
        return _dry_run_result(reporter, state, shown, plan.summary or "rollback")
    with _exclusive(ctx, gw, app_name, needs=needs, close_window=False) as guard:
        state, kind, plan, about = choose()
        reporter = report_for(state, kind, about)
        settings = RunSettings(deadline=started + g.timeout, progress_deadline=progress,
                               verify=_verify_options("proxy", 3, state.container),
                               client_addresses=_client_addresses(None))
        engine = Engine(gw, reporter, settings, lock=guard.lock, stop=guard.stop)
        if kind == "nothing" or plan is None:
            return _finish(reporter, Outcome(Verdict.NOOP, ExitCode.OK,
                                             f"nothing to roll back: {about.why}"))
        if kind == "unfinished":
            outcome = engine.abort(plan, Journal(gw, app_name, about),
                                   f"unfinished {about.strategy} run {about.id} "
                                   f"({about.from_image} -> {about.to_image}) rolled back")
        elif kind == "undo":
            record = RunRecord("rollback", app_name, about.to_image, about.from_image, None,
                               None, state.revision, None, who=who,
                               reason=reason or f"undo {about.strategy} release {about.id}",
                               plan=plan.to_json(), container=state.container)
            outcome = engine.abort(plan, Journal(gw, app_name, record),
                                   f"{about.strategy} release {about.from_image} -> "
                                   f"{about.to_image} undone")
        else:
            record = RunRecord("rollback", app_name, str(state.image), about.revision.image,
                               None, None, state.revision, None, who=who,
                               reason=reason or about.why, container=state.container)
            outcome = engine.run(plan, Journal(gw, app_name, record))
        return _finish(reporter, _rollback_outcome(outcome, app_name))


def _in_rollback_window(record: RunRecord) -> bool:
    """A blue-green run, running (or stopped) in its foreground rollback window."""
    steps = (record.plan or {}).get("steps") or []
    position = record.position or 0
    return record.phase in ("running", "interrupted") and 0 <= position < len(steps) and \
        steps[position].get("type") == "KeepOld"


def _rollback_outcome(outcome: Outcome, app_name: str) -> Outcome:
    """A rollback that went through is 'rolled back' (exit 0); one that did not needs a human."""
    from deployer.model import Outcome, Verdict

    if outcome.verdict in (Verdict.PROMOTED, Verdict.ROLLED_BACK):
        return Outcome(Verdict.ROLLED_BACK, ExitCode.OK, outcome.message.replace(
            f"{app_name} is running", f"{app_name} rolled back to"),
            verified_version=outcome.verified_version)
    if outcome.exit_code == ExitCode.INTERRUPTED:
        return outcome
    return Outcome(Verdict.UNSAFE, ExitCode.UNSAFE, f"rollback failed: {outcome.message}",
                   next_command=f"deployer status --app {app_name}")


def _show(ctx: typer.Context, app_name: str, view: str) -> int:
    """A read-only view: its data as JSON with -o json, else as text."""
    from deployer import status as views

    g = _globals(ctx)
    validate_app_name(app_name)
    collect, render = {"status": (views.collect, views.render),
                       "history": (views.collect_history, views.render_history)}[view]
    data = collect(_connect(g, read_only=True), app_name)
    if g.output in ("json", "yaml"):
        from deployer.report import REPORT_SCHEMA_VERSION, dumps

        data = {"schemaVersion": REPORT_SCHEMA_VERSION, "kind": view, **data}
        print(dumps(data, g.output))
    else:
        print(render(data))
    return 0


@app.command()
def status(ctx: typer.Context, app_name: str = APP,
           wait: str | None = typer.Option(None, "--wait-for", metavar="STATE",
                                           help="paused, promoted or done: block until the "
                                                "app's run gets there (exit 0), or ends "
                                                "otherwise (its exit code); --timeout "
                                                "bounds the wait (exit 70)."),
           watch: bool = typer.Option(False, "--watch", help="Draw the view again every "
                                                             "2 s until interrupted.")) -> int:
    """What is running: images, versions answering, replicas, Service, run in progress."""
    if watch:
        if wait is not None:
            raise InvalidInput("--watch and --wait-for exclude each other", id="invalid-wait")
        from deployer import status as views

        g = _globals(ctx)
        validate_app_name(app_name)
        gw = _connect(g, read_only=True)
        try:
            views.watch(gw, app_name, sys.stdout, tty=sys.stdout.isatty() and not _in_ci())
        except KeyboardInterrupt:
            return 0  # the way a watch ends
        return 0
    if wait is None:
        return _show(ctx, app_name, "status")
    from deployer import status as views

    if wait not in views.WAIT_STATES:
        raise InvalidInput(f"--wait-for {wait!r} is invalid: use "
                           f"{', '.join(views.WAIT_STATES)}", id="invalid-wait")
    g = _globals(ctx)
    validate_app_name(app_name)
    gw = _connect(g, read_only=True)
    from deployer.snapshot import find_app

    find_app(gw, app_name)  # an app that does not exist is input, not a wait
    code, what = views.wait_for(gw, app_name, wait, time.monotonic() + g.timeout,
                                said=lambda text: print(text, file=sys.stderr, flush=True))
    print(what, file=sys.stderr if g.output in ("json", "yaml") else sys.stdout)
    if g.output in ("json", "yaml"):
        from deployer.report import REPORT_SCHEMA_VERSION, dumps

        data = {"schemaVersion": REPORT_SCHEMA_VERSION, "kind": "status",
                **views.collect(gw, app_name)}
        print(dumps(data, g.output))
    return code


@app.command()
def history(ctx: typer.Context, app_name: str = APP) -> int:
    """Releases deployer made (strategy, who, why, verdict) and the Deployment's revisions."""
    return _show(ctx, app_name, "history")


@app.command()
def strategies(ctx: typer.Context) -> int:
    """The installed strategies (the deployer.strategies entry points): package, version,
    and whether each loads."""
    from deployer.strategy import registered

    g = _globals(ctx)
    found = registered()
    if g.output in ("json", "yaml"):
        from deployer.report import REPORT_SCHEMA_VERSION, dumps

        print(dumps({"schemaVersion": REPORT_SCHEMA_VERSION, "kind": "strategies",
                     "strategies": [r.to_json() for r in found]}, g.output))
        return 0
    for r in found:
        print(f"{r.name:<12} {r.package or '?'} {r.version or '?'}  ({r.target})")
        if r.problem:
            print(f"warning: {r.problem}", file=sys.stderr)
    return 0


STRATEGY = typer.Option(..., "--strategy", metavar="NAME",
                        help="A strategy deployer strategies lists (a plugin's, or rolling, "
                             "recreate, canary, blue-green).")
SETTING = typer.Option(None, "--set", metavar="KEY=VALUE",
                       help="An option for the strategy's planner (repeatable); the plugin "
                            "says which.")


@app.command()
def deploy(
    ctx: typer.Context,
    strategy: str = STRATEGY,
    app_name: str = APP,
    image: str = IMAGE,
    setting: list[str] | None = SETTING,
    reason: str | None = REASON,
    dry_run: bool = DRY_RUN,
    expect_version: str | None = EXPECT,
    no_version_check: bool = NO_VERSION,
    samples: int = SAMPLES,
    container: str | None = CONTAINER,
    check_via: str = CHECK_VIA,
    progress_deadline: str | None = PROGRESS,
    atomic: bool = ATOMIC,
    allow_gitops: bool = ALLOW_GITOPS,
    force: bool = FORCE,
    wait_for_lock: str | None = WAIT_FOR_LOCK,
) -> int:
    """Deploy with any installed strategy, a plugin's too (the same checks, lock, journal,
    verification and rollback as the built-in commands)."""
    _lock_options(ctx, force, wait_for_lock)
    ctx.meta["allow_gitops"] = allow_gitops
    _check_samples(samples)
    from deployer.strategy import load

    load(strategy)  # an unknown or broken strategy is refused first
    options: dict[str, Any] = {}
    for text in setting or []:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--set {text!r} is not KEY=VALUE", id="invalid-setting")
        options[key.strip()] = value
    return _deploy(ctx, strategy, app_name, image, reason, dry_run, expect_version,
                   no_version_check, container, progress_deadline,
                   {**options, "http_mode": _check_via(check_via), "atomic": atomic},
                   samples=samples)


CLIENTS = typer.Option(None, "--client-addresses", metavar="ADDRESSES",
                       help="Source addresses to call the Service from, to measure the share "
                            "of each version and stickiness, e.g. 10.201.0.1-10.201.0.200 "
                            "(default: $DEPLOYER_CLIENT_ADDRESSES; without any, those checks "
                            "say they were not measured).")
UNTIL_GATE = typer.Option(False, "--until-gate", help="Stop with exit 5 after the analysed "
                                                       "steps; continue with promote or abort.")


@app.command()
def canary(
    ctx: typer.Context,
    app_name: str = APP,
    image: str = IMAGE,
    steps: str | None = typer.Option(None, "--steps", metavar="PERCENTS",
                                     help="Canary weights in percent, e.g. "
                                          "25,50,100 (default)."),
    weight: str | None = typer.Option(None, "--weight", metavar="PERCENT",
                                      help="One canary step at this weight, "
                                           "then promotion."),
    interval: str = typer.Option("0s", "--interval", metavar="DURATION",
                                 help="Analysis time at each step."),
    samples: int = SAMPLES,
    max_surge: str | None = typer.Option(None, "--max-surge", metavar="N|N%",
                                         help="Pods above the app's replicas while the "
                                              "canary takes pods from stable (default: "
                                              "its maxSurge)."),
    until_gate: bool = UNTIL_GATE,
    client_addresses: str | None = CLIENTS,
    reason: str | None = REASON,
    dry_run: bool = DRY_RUN,
    expect_version: str | None = EXPECT,
    container: str | None = CONTAINER,
    check_via: str = CHECK_VIA,
    progress_deadline: str | None = PROGRESS,
    analysis: list[str] | None = ANALYSIS,
    arg: list[str] | None = ARG,
    probe: str | None = PROBE,
    max_error_rate: str | None = MAX_ERROR_RATE,
    probe_requests: int | None = PROBE_REQUESTS,
    compare: list[str] | None = COMPARE,
    prometheus: str | None = typer.Option(None, "--prometheus", metavar="URL",
                                          help="Where --compare queries run, e.g. "
                                               "http://prometheus.monitoring:9090."),
    compare_alpha: float | None = typer.Option(None, "--compare-alpha", metavar="P",
                                               help="--compare's significance level "
                                                    "(default 0.05)."),
    compare_worse: str | None = typer.Option(None, "--compare-worse", metavar="higher|lower",
                                             help="Which values are worse for --compare: "
                                                  "higher (default: error rates, latency) "
                                                  "or lower."),
    atomic: bool = ATOMIC,
    allow_gitops: bool = ALLOW_GITOPS,
    force: bool = FORCE,
    wait_for_lock: str | None = WAIT_FOR_LOCK,
) -> int:
    """Canary: a second Deployment (track: canary) behind the same Service, weighted by
    replicas, verified per step, then promoted (or rolled back)."""
    _lock_options(ctx, force, wait_for_lock)
    ctx.meta["allow_gitops"] = allow_gitops
    from deployer.validation import parse_percent, parse_steps

    if steps is not None and weight is not None:
        raise InvalidInput("--steps and --weight exclude each other", id="invalid-steps")
    _check_samples(samples)
    weights = parse_steps(steps) if steps is not None else (
        (parse_percent(weight, "--weight", minimum=1, maximum=99),) if weight is not None
        else None)
    spec = _analysis_spec(analysis, arg, probe, max_error_rate, probe_requests, compare,
                          prometheus, compare_alpha, compare_worse)
    return _deploy(ctx, "canary", app_name, image, reason, dry_run, expect_version, False,
                   container, progress_deadline,
                   {"steps": weights, "analysis": spec,
                    "interval": parse_duration(interval, "--interval", allow_zero=True),
                    "max_surge": (parse_surge(max_surge, "--max-surge")
                                  if max_surge is not None else None),
                    "until_gate": until_gate, "client_addresses": client_addresses,
                    "http_mode": _check_via(check_via), "atomic": atomic},
                   samples=samples)


@app.command(name="blue-green")
def blue_green(
    ctx: typer.Context,
    app_name: str = APP,
    image: str = IMAGE,
    preview_replicas: str | None = typer.Option(None, "--preview-replicas", metavar="N",
                                                help="Start the new side this small, verify "
                                                     "it, then scale it to full size."),
    keep_old: str = typer.Option("30s", "--keep-old", metavar="DURATION",
                                 help="How long the old side keeps running after the "
                                      "switch: up to 60s the run watches the new side "
                                      "meanwhile; a longer window outlives the run."),
    until_gate: bool = UNTIL_GATE,
    client_addresses: str | None = CLIENTS,
    reason: str | None = REASON,
    dry_run: bool = DRY_RUN,
    expect_version: str | None = EXPECT,
    samples: int = SAMPLES,
    container: str | None = CONTAINER,
    check_via: str = CHECK_VIA,
    progress_deadline: str | None = PROGRESS,
    analysis: list[str] | None = ANALYSIS,
    arg: list[str] | None = ARG,
    interval: str = typer.Option("0s", "--interval", metavar="DURATION",
                                 help="How long the pre-promotion analysis (--analysis, "
                                      "--probe) runs on the new side before the switch; "
                                      "the post-promotion one runs for --keep-old."),
    probe: str | None = PROBE,
    max_error_rate: str | None = MAX_ERROR_RATE,
    probe_requests: int | None = PROBE_REQUESTS,
    atomic: bool = ATOMIC,
    allow_gitops: bool = ALLOW_GITOPS,
    force: bool = FORCE,
    wait_for_lock: str | None = WAIT_FOR_LOCK,
) -> int:
    """Blue-green: verify the new side before any user traffic, switch the Service selector
    in one write, verify through the Service; the old side stays as a rollback window."""
    _lock_options(ctx, force, wait_for_lock)
    ctx.meta["allow_gitops"] = allow_gitops
    from deployer.validation import parse_replicas

    _check_samples(samples)
    preview = (parse_replicas(preview_replicas, "--preview-replicas", minimum=1)
               if preview_replicas is not None else None)
    spec = _analysis_spec(analysis, arg, probe, max_error_rate, probe_requests)
    return _deploy(ctx, "blue-green", app_name, image, reason, dry_run, expect_version, False,
                   container, progress_deadline,
                   {"preview_replicas": preview, "analysis": spec,
                    "interval": _analysis_time(interval, spec),
                    "keep_old": parse_duration(keep_old, "--keep-old", allow_zero=True),
                    "until_gate": until_gate, "client_addresses": client_addresses,
                    "http_mode": _check_via(check_via), "atomic": atomic},
                   samples=samples)


def _resume(ctx: typer.Context, app_name: str, action: str,
            client_addresses: str | None, atomic: bool = False, *,
            dry_run: bool = False) -> int:
    """promote / abort / resume: continue or undo a run recorded in the cluster by another
    process (resume: one held by deployer pause whose process is gone)."""
    g = _globals(ctx)
    validate_app_name(app_name)
    clients = _client_addresses(client_addresses)
    started = time.monotonic()

    from deployer import windows
    from deployer.engine import Engine
    from deployer.errors import AppNotFound
    from deployer.model import Outcome, Plan, Verdict
    from deployer.record import Journal, read_run, remade_deployment
    from deployer.snapshot import find_app

    gw = _connect(g)

    def continuable() -> RunRecord | windows.Window:
        """The recorded run to continue (or, for promote, the rollback window to end);
        every refusal is raised here, from reading alone."""
        try:
            find_app(gw, app_name)
        except AppNotFound:
            if remade_deployment(gw, app_name) is None:
                raise
        record = read_run(gw, app_name)
        if record is None and action == "promote":
            window = windows.pending(gw, app_name)
            if window is not None:
                return window
        if record is None or record.plan is None:
            raise InvalidInput(f"{app_name} has no run to {action}", id="no-run",
                               hint=f"see deployer status --app {app_name} {_where(g, gw)}")
        if action == "resume" and record.phase in ("paused", "rolling-back"):
            raise InvalidInput(f"{app_name}'s {record.strategy} run is {record.phase}; "
                               "resume goes on only with a run held by deployer pause",
                               id="not-paused", hint=f"see deployer status --app {app_name} "
                                                     f"{_where(g, gw)}")
        if action == "promote" and record.phase != "paused" and not _in_rollback_window(
                record):
            raise InvalidInput(f"{app_name}'s {record.strategy} run is {record.phase}, not "
                               "paused at a gate; nothing to promote", id="not-paused",
                               hint=f"deployer abort --app {app_name} {_where(g, gw)} rolls "
                                    "it back")
        return record

    # Refuse before the first write (the Lease); under the lock, read again: another
    # process may have continued the run in between.
    first = continuable()
    if dry_run:
        return _resume_dry_run(ctx, gw, app_name, action, first)
    with _exclusive(ctx, gw, app_name, needs=_recorded_needs(gw, app_name),
                    close_window=action != "promote") as guard:
        record = continuable()
        if isinstance(record, windows.Window):
            reporter = _reporter(g, gw)
            reporter.fact(app=f"{gw.namespace}/{app_name}", strategy=record.release.strategy,
                          from_image=record.release.from_image,
                          to_image=record.release.to_image)
            return _finish(reporter, Outcome(Verdict.PROMOTED, ExitCode.OK, windows.close(
                gw, app_name, record, "deployer promote ends it")))
        from deployer.model import AppRef

        plan = Plan.from_json(AppRef(gw.namespace, app_name), record.plan or {})
        reporter = _reporter(g, gw)
        if action in ("promote", "resume"):
            reporter.fact(app=f"{gw.namespace}/{app_name}", strategy=record.strategy,
                          from_image=record.from_image, to_image=record.to_image,
                          from_version=record.from_version,
                          expected_version=record.expected_version)
        else:  # an abort goes from what serves now back to what served before the run
            live_image, live_version = read_app_or_stand_in(
                gw, app_name, _recorded_container(gw, app_name, record)).live_text()
            reporter.fact(app=f"{gw.namespace}/{app_name}", strategy=record.strategy,
                          from_image=live_image, to_image=record.from_image,
                          from_version=live_version, expected_version=record.from_version)
        _say_recorded(reporter, record, {})
        settings = _recorded_settings(record.settings or {}, started + g.timeout, clients,
                                      atomic, _recorded_container(gw, app_name, record))
        journal = Journal(gw, app_name, record)
        engine = Engine(gw, reporter, settings, lock=guard.lock, stop=guard.stop)
        if action == "promote":
            start = record.position or 0
            if record.phase != "paused":  # stopped in the rollback window: end it now
                start += 1
                reporter.note("the release was switched and verified; the rollback window "
                              "ends now")
            outcome = engine.run(plan, journal, start=start)
        elif action == "resume":
            reporter.note(f"the process that ran {record.strategy} run {record.id} is gone; "
                          "it goes on here, from "
                          f"'{(record.held or {}).get('step') or record.step}'")
            outcome = engine.run(plan, journal, start=record.position or 0)
        else:
            outcome = engine.abort(plan, journal, f"{record.strategy} run {record.id} aborted")
        return _finish(reporter, outcome)


@app.command()
def promote(ctx: typer.Context, app_name: str = APP,
            client_addresses: str | None = CLIENTS, atomic: bool = ATOMIC,
            dry_run: bool = DRY_RUN,
            force: bool = FORCE, wait_for_lock: str | None = WAIT_FOR_LOCK) -> int:
    """Continue a run paused at a promotion gate (from any machine, any time)."""
    _lock_options(ctx, force, wait_for_lock)
    return _resume(ctx, app_name, "promote", client_addresses, atomic, dry_run=dry_run)


@app.command()
def abort(ctx: typer.Context, app_name: str = APP,
          client_addresses: str | None = CLIENTS, dry_run: bool = DRY_RUN,
          force: bool = FORCE, wait_for_lock: str | None = WAIT_FOR_LOCK) -> int:
    """Stop the app's unfinished run (paused, held or interrupted) and roll it back."""
    _lock_options(ctx, force, wait_for_lock)
    if not force and not dry_run:
        _take_over_if_held(ctx, app_name)
    return _resume(ctx, app_name, "abort", client_addresses, dry_run=dry_run)


def _resume_dry_run(ctx: typer.Context, gw: Gateway, app_name: str, action: str,
                    found: Any) -> int:
    """promote/abort --dry-run: the checks the real command makes before its first write,
    and the steps it would run (the rest of the recorded plan, or its rollback)."""
    from dataclasses import replace

    from deployer import windows
    from deployer.model import AppRef, Outcome, Plan, Verdict

    g = _globals(ctx)
    note = _dry_run_checks(ctx, gw, app_name, _recorded_needs(gw, app_name))
    reporter = _reporter(g, gw)
    if note:
        reporter.note(note)
    if isinstance(found, windows.Window):
        reporter.fact(app=f"{gw.namespace}/{app_name}", strategy=found.release.strategy,
                      from_image=found.release.from_image, to_image=found.release.to_image)
        reporter.note(f"the real promote would end the rollback window: {found.deployment} "
                      "scaled to 0")
        return _finish(reporter, Outcome(Verdict.PLANNED, ExitCode.OK,
                                         "dry run: nothing was changed"))
    record = found
    plan = Plan.from_json(AppRef(gw.namespace, app_name), record.plan or {})
    reporter.fact(app=f"{gw.namespace}/{app_name}", strategy=record.strategy,
                  from_image=record.from_image, to_image=record.to_image,
                  from_version=record.from_version, expected_version=record.expected_version)
    if action == "promote":
        start = (record.position or 0) + (0 if record.phase == "paused" else 1)
        remaining = replace(plan, steps=plan.steps[start:], notes=())
    else:  # abort runs the rollback steps
        remaining = replace(plan, steps=plan.rollback, rollback=(), notes=())
    state = read_app_or_stand_in(gw, app_name, _recorded_container(gw, app_name, record))
    return _dry_run_result(reporter, state, remaining,
                           f"{action} of {record.strategy} run {record.id} ({record.phase})")


def _take_over_if_held(ctx: typer.Context, app_name: str) -> None:
    """abort of a run held by deployer pause: its process waits for a word and writes
    nothing, so abort takes its lock over; it stops when it sees that."""
    validate_app_name(app_name)
    from deployer.record import read_run

    g = _globals(ctx)
    run = read_run(_connect(g), app_name)
    if run is not None and run.held:
        ctx.meta["force"] = True
        g.notes.append(f"the {run.strategy} run {run.id} is held (paused by "
                       f"{run.held.get('by')}): abort takes its lock over, and that process "
                       "stops without writing")


PAUSE_REASON = typer.Option(None, "--reason", metavar="TEXT",
                            help="Why: shown by status and by the run that holds.")


@app.command()
def pause(ctx: typer.Context, app_name: str = APP, reason: str | None = PAUSE_REASON) -> int:
    """Hold the app's running deploy at its next safe point, from any shell: no more
    changes, the lock kept, the pods watched, the deadlines stopped (resume goes on)."""
    g = _globals(ctx)
    validate_app_name(app_name)
    reason = validate_reason(reason) if reason is not None else None
    from deployer.control import Control

    gw = _connect(g)
    reporter = _reporter(g, gw)
    outcome = Control(gw, app_name, _where(g, gw)).pause(reason)
    reporter.fact(app=f"{gw.namespace}/{app_name}")
    return _finish(reporter, outcome)


@app.command()
def resume(ctx: typer.Context, app_name: str = APP,
           client_addresses: str | None = CLIENTS, atomic: bool = ATOMIC,
           wait_for_lock: str | None = WAIT_FOR_LOCK) -> int:
    """Let a run held by deployer pause go on; if its process is gone, go on here."""
    _lock_options(ctx, False, wait_for_lock)
    g = _globals(ctx)
    validate_app_name(app_name)
    _client_addresses(client_addresses)
    from deployer.control import Control
    from deployer.model import Outcome

    gw = _connect(g)
    reporter = _reporter(g, gw)
    result = Control(gw, app_name, _where(g, gw)).resume()
    if isinstance(result, Outcome):
        reporter.fact(app=f"{gw.namespace}/{app_name}")
        return _finish(reporter, result)
    return _resume(ctx, app_name, "resume", client_addresses, atomic)


def main(argv: list[str] | None = None) -> None:
    """The ``deployer`` command. Once the command is over and its output is out, the process
    ends without the interpreter's teardown: collecting the client library's objects and
    stopping the watch threads took about 0.2 s of every run, after its last write."""
    import contextlib
    import os

    code = run(argv)
    for stream in (sys.stdout, sys.stderr):
        # a reader that went away, a stream already closed: nothing more can be said
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


_CONNECTED: list[Gateway] = []  # the gateways of this command, for the trace's last line


def run(argv: list[str] | None = None) -> int:
    """The command line's exit code; with -v the trace ends with the number of requests
    sent (the Lease's release included), which agrees with its lines."""
    try:
        return _run(argv)
    finally:
        if _CONNECTED:
            from deployer import logs

            for gw in _CONNECTED:
                logs.get_logger("deployer.cluster").debug(
                    "api requests sent", **gw.requests.to_json())
            _CONNECTED.clear()


def _run(argv: list[str] | None = None) -> int:
    from deployer.cliargs import hoist, table_of

    command = typer.main.get_command(app)
    hoisted = hoist(list(sys.argv[1:] if argv is None else argv), table_of(command))
    output_json = hoisted.output in ("json", "yaml")
    _CI_FILES[:] = [None, None]  # set by the global options, once they are read
    try:
        for tokens in hoisted.repeated.values():
            raise InvalidInput(f"{tokens[0].split()[0]} is given {len(tokens)} times "
                               f"({', '.join(tokens)}): give it once", id="repeated-option")
        result = command(args=hoisted.argv, standalone_mode=False, prog_name="deployer")
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        print("interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except typer.TyperException as exc:  # a usage error: unknown option, missing value, ...
        show = getattr(exc, "show", None)
        if callable(show):
            show()  # the usage line, the error, and where to find help
        else:
            print(f"error: {exc.format_message()}", file=sys.stderr)
        return int(ExitCode.INVALID)
    except DeployerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        from deployer.report import REPORT_SCHEMA_VERSION

        error = {"schemaVersion": REPORT_SCHEMA_VERSION, "kind": "error", "verdict": "error",
                 "exitCode": int(exc.exit_code), "error": exc.id, "message": exc.message,
                 "hint": exc.hint}
        if output_json:
            from deployer.report import dumps

            print(dumps(error, str(hoisted.output)))
        from deployer.ci_outputs import write_all

        write_all(error, report_file=_CI_FILES[0], junit_file=_CI_FILES[1])
        _CI_FILES[:] = [None, None]
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    return int(result) if isinstance(result, int) else 0
