"""The command line: parse and validate, build a run, print the report, map to exit codes.

Only :func:`main` turns outcomes and errors into process exit codes. Input is
validated here, before the first API call. The Kubernetes client is imported
only when a command needs the cluster, so ``deployer --help`` stays instant.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
import typer

from deployer import __version__
from deployer.errors import DeployerError, Interrupted, InvalidInput
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
    from deployer.model import Outcome
    from deployer.report import Reporter

HELP = f"""Roll out a new version of an app on Kubernetes with a chosen strategy,
verify it from evidence (rollout status, pod failure reasons, the app's /version)
and promote it or roll it back.

\b
Exit codes:
{table()}
"""

app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]})


@dataclass
class Globals:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    output: str = "text"
    timeout: float = 600.0
    verbose: bool = False
    log_format: str = "console"


def _version(value: bool) -> None:
    if value:
        print(f"deployer {__version__}")
        raise typer.Exit(0)


@app.callback()
def global_options(
    ctx: typer.Context,
    kubeconfig: str | None = typer.Option(None, "--kubeconfig", envvar="KUBECONFIG",
                                          help="Path of the kubeconfig (default: $KUBECONFIG, "
                                               "~/.kube/config)."),
    context: str | None = typer.Option(None, "--context", help="Kubeconfig context to use."),
    namespace: str | None = typer.Option(None, "-n", "--namespace",
                                         help="Namespace (default: the context's, else "
                                              "'default')."),
    output: str = typer.Option("text", "-o", "--output", help="text or json (one JSON report "
                                                              "on stdout)."),
    timeout: str = typer.Option("10m", "--timeout", help="Deadline for the whole run, e.g. "
                                                         "90s, 10m."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Debug logs on stderr."),
    log_format: str = typer.Option("console", "--log-format", help="console or json."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    if output not in ("text", "json"):
        raise InvalidInput(f"--output {output!r} is invalid: use text or json",
                           id="invalid-output")
    if log_format not in ("console", "json"):
        raise InvalidInput(f"--log-format {log_format!r} is invalid: use console or json",
                           id="invalid-log-format")
    if namespace is not None:
        validate_namespace(namespace)
    ctx.obj = Globals(kubeconfig, context, namespace, output,
                      parse_duration(timeout, "--timeout"), verbose, log_format)
    _configure_logging(ctx.obj)


def _configure_logging(g: Globals) -> None:
    import logging

    import structlog

    level = logging.DEBUG if g.verbose else logging.WARNING
    renderer: Any = (structlog.processors.JSONRenderer() if g.log_format == "json"
                     else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=[structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso"), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def _globals(ctx: typer.Context) -> Globals:
    return ctx.obj if isinstance(ctx.obj, Globals) else Globals()


def _connect(g: Globals) -> Gateway:
    from deployer.cluster import Gateway

    return Gateway(kubeconfig=g.kubeconfig, context=g.context, namespace=g.namespace)


def _reporter(g: Globals) -> Reporter:
    from deployer.report import Reporter

    return Reporter(output=g.output)


class _Signals:
    """SIGINT/SIGTERM become :class:`Interrupted` so the runner can stop at a step boundary."""

    def __enter__(self) -> _Signals:
        def handler(signum: int, frame: object) -> None:
            raise Interrupted(f"received {signal.Signals(signum).name}")

        self._old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


# -------------------------------------------------------------------- deploys


def _check_image_input(image: str) -> None:
    if is_bare_tag(image):
        validate_tag(image)
    else:
        parse_image(image)


def _deploy(ctx: typer.Context, strategy_name: str, app_name: str, image: str,
            reason: str | None, dry_run: bool, expect_version: str | None,
            no_version_check: bool, container: str | None, progress_deadline: str | None,
            options: dict[str, Any]) -> int:
    from deployer.health.http import VERSION_TEXT

    g = _globals(ctx)
    validate_app_name(app_name)
    _check_image_input(image)
    if reason is not None:
        reason = validate_reason(reason)
    if expect_version is not None and not VERSION_TEXT.match(expect_version):
        raise InvalidInput(f"--expect-version {expect_version!r} is not a version string",
                           id="invalid-version")
    progress = parse_duration(progress_deadline, "--progress-deadline") \
        if progress_deadline else None
    started = time.monotonic()

    from deployer import strategy as strategies
    from deployer.health.rollout import rollout_status
    from deployer.health.verifier import VerifyOptions
    from deployer.model import Outcome, Phase, Target, Verdict
    from deployer.record import Journal, RunRecord, read_run, who_am_i
    from deployer.runner import Runner, RunSettings
    from deployer.snapshot import read_app
    from deployer.validation import expected_version_from_tag, resolve_image

    plugin = strategies.load(strategy_name)
    gw = _connect(g)
    state = read_app(gw, app_name, container)
    target_image = resolve_image(image, state.image)
    expected = expect_version or expected_version_from_tag(target_image.tag)
    if expected is None and not no_version_check:
        raise InvalidInput(
            f"cannot tell which version {target_image} should answer on /version",
            id="unknown-expected-version",
            hint="pass --expect-version VERSION (or --no-version-check to skip the HTTP check)")
    who = who_am_i()
    target = Target(target_image, None if no_version_check else expected, reason, who)
    reporter = _reporter(g)
    reporter.fact(app=str(state.app), strategy=strategy_name, from_image=str(state.image),
                  to_image=str(target_image), from_version=state.version,
                  expected_version=target.expected_version)
    plan = plugin.plan(state, target, strategies.Options(options))
    if dry_run:
        reporter.heading(f"Plan (dry run, nothing changed): {plan.summary}")
        for line in plan.describe():
            reporter.line(line)
        return _finish(reporter, Outcome(Verdict.PLANNED, ExitCode.OK,
                                         "dry run: nothing was changed"))
    in_progress = read_run(state.deployment)
    if (str(target_image) == str(state.image) and in_progress is None
            and rollout_status(state.deployment).phase is Phase.SUCCESSFUL):
        return _finish(reporter, Outcome(Verdict.NOOP, ExitCode.OK,
                                         f"{app_name} already runs {target_image}; "
                                         "nothing to do", verified_version=state.version))
    current = next((r for r in state.revisions if r.number == state.revision), None)
    template_hash = None
    if current is not None:
        template_hash = ((current.template.get("metadata") or {}).get("labels") or {}).get(
            "pod-template-hash")
    record = RunRecord(strategy_name, app_name, str(state.image), str(target_image),
                       state.version, target.expected_version, state.revision, template_hash,
                       who=who, reason=reason)
    journal = Journal(gw, state.deployment_name, record)
    settings = RunSettings(deadline=started + g.timeout, progress_deadline=progress,
                           verify=VerifyOptions(http_mode="off" if no_version_check
                                                else options.get("http_mode", "proxy")))
    with _Signals():
        outcome = Runner(gw, reporter, settings).run(plan, journal)
    return _finish(reporter, outcome)


def _finish(reporter: Reporter, outcome: Outcome) -> int:
    reporter.result(outcome)
    return int(outcome.exit_code)


APP = typer.Option(..., "--app", help="The app: its Deployment and Service have this name.")
IMAGE = typer.Option(..., "--image", help="Full image reference, or a bare tag (v2) for the "
                                          "app's current repository.")
REASON = typer.Option(None, "--reason", help="Why: recorded as the change-cause.")
DRY_RUN = typer.Option(False, "--dry-run", help="Print the plan; change nothing.")
EXPECT = typer.Option(None, "--expect-version", help="What /version must answer (default: "
                                                      "from the tag, v2 -> 2.0.0).")
NO_VERSION = typer.Option(False, "--no-version-check", help="Skip the HTTP /version check.")
CONTAINER = typer.Option(None, "--container", help="Container to update (default: the only "
                                                   "one, or the one named like the app).")
PROGRESS = typer.Option(None, "--progress-deadline", help="How long new pods may take to be "
                                                          "healthy (default: the Deployment's "
                                                          "progressDeadlineSeconds).")


@app.command()
def rolling(
    ctx: typer.Context,
    app_name: str = APP,
    image: str = IMAGE,
    max_surge: str | None = typer.Option(None, "--max-surge", help="N or N%."),
    max_unavailable: str | None = typer.Option(None, "--max-unavailable", help="N or N%."),
    reason: str | None = REASON,
    dry_run: bool = DRY_RUN,
    expect_version: str | None = EXPECT,
    no_version_check: bool = NO_VERSION,
    container: str | None = CONTAINER,
    progress_deadline: str | None = PROGRESS,
) -> int:
    """Native rolling update, watched and verified; undone on failure."""
    from deployer.validation import check_surge_pair

    surge = parse_surge(max_surge, "--max-surge") if max_surge is not None else None
    unavailable = (parse_surge(max_unavailable, "--max-unavailable")
                   if max_unavailable is not None else None)
    if surge is not None and unavailable is not None:
        check_surge_pair(surge, unavailable)
    return _deploy(ctx, "rolling", app_name, image, reason, dry_run, expect_version,
                   no_version_check, container, progress_deadline,
                   {"max_surge": surge, "max_unavailable": unavailable})


@app.command()
def recreate(
    ctx: typer.Context,
    app_name: str = APP,
    image: str = IMAGE,
    reason: str | None = REASON,
    dry_run: bool = DRY_RUN,
    expect_version: str | None = EXPECT,
    no_version_check: bool = NO_VERSION,
    container: str | None = CONTAINER,
    progress_deadline: str | None = PROGRESS,
) -> int:
    """Stop every old pod, then start the new version; reports the downtime."""
    return _deploy(ctx, "recreate", app_name, image, reason, dry_run, expect_version,
                   no_version_check, container, progress_deadline, {})


@app.command()
def rollback(
    ctx: typer.Context,
    app_name: str = APP,
    to_revision: str | None = typer.Option(None, "--to-revision",
                                           help="Revision number (see history)."),
    reason: str | None = REASON,
    container: str | None = CONTAINER,
    progress_deadline: str | None = PROGRESS,
) -> int:
    """Return the app to its previous version (or --to-revision N) and verify it."""
    g = _globals(ctx)
    validate_app_name(app_name)
    revision = parse_revision(to_revision) if to_revision is not None else None
    if reason is not None:
        reason = validate_reason(reason)
    progress = parse_duration(progress_deadline, "--progress-deadline") \
        if progress_deadline else None
    started = time.monotonic()

    from deployer import rollback as rb
    from deployer.model import Outcome, Verdict
    from deployer.record import Journal, RunRecord, read_history, read_run, who_am_i
    from deployer.runner import Runner, RunSettings
    from deployer.snapshot import read_app

    gw = _connect(g)
    state = read_app(gw, app_name, container, measure_version=False)
    reporter = _reporter(g)
    reporter.fact(app=str(state.app), strategy="rollback", from_image=str(state.image))
    decision = rb.decide(state, read_run(state.deployment), read_history(state.deployment),
                         revision)
    if decision.revision is None:
        return _finish(reporter, Outcome(Verdict.NOOP, ExitCode.OK,
                                         f"nothing to roll back: {decision.why}"))
    who = who_am_i()
    cause = f"deployer rollback to revision {decision.revision.number} by {who}" + (
        f": {reason}" if reason else "")
    plan = rb.plan(state, decision.revision, cause)
    reporter.fact(to_image=decision.revision.image)
    record = RunRecord("rollback", app_name, str(state.image), decision.revision.image,
                       None, None, state.revision, None, who=who, reason=reason or decision.why)
    journal = Journal(gw, state.deployment_name, record)
    settings = RunSettings(deadline=started + g.timeout, progress_deadline=progress)
    with _Signals():
        outcome = Runner(gw, reporter, settings).run(plan, journal)
    if outcome.verdict is Verdict.PROMOTED:
        outcome = Outcome(Verdict.ROLLED_BACK, ExitCode.OK,
                          f"{app_name} rolled back to {decision.revision.image} ({decision.why})",
                          verified_version=outcome.verified_version)
    elif outcome.exit_code not in (ExitCode.INTERRUPTED,):
        outcome = Outcome(Verdict.UNSAFE, ExitCode.UNSAFE, f"rollback failed: {outcome.message}",
                          next_command=f"deployer status --app {app_name}")
    return _finish(reporter, outcome)


@app.command()
def status(ctx: typer.Context, app_name: str = APP) -> int:
    """What is running: images, versions answering, replicas, Service, run in progress."""
    from deployer.status import collect, render

    g = _globals(ctx)
    validate_app_name(app_name)
    data = collect(_connect(g), app_name)
    if g.output == "json":
        print(json.dumps(data, indent=2))
    else:
        print(render(data))
    return 0


@app.command()
def history(ctx: typer.Context, app_name: str = APP) -> int:
    """Releases deployer made (strategy, who, why, verdict) and the Deployment's revisions."""
    from deployer.status import collect_history, render_history

    g = _globals(ctx)
    validate_app_name(app_name)
    data = collect_history(_connect(g), app_name)
    if g.output == "json":
        print(json.dumps(data, indent=2))
    else:
        print(render_history(data))
    return 0


def _not_built(name: str) -> None:
    @app.command(name=name, help=f"{name}: not available in this version.",
                 context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def placeholder() -> int:
        raise InvalidInput(f"'deployer {name}' is not built yet in deployer {__version__}",
                           id="not-built")


for _name in ("canary", "blue-green", "promote", "abort"):
    _not_built(_name)


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    output_json = "json" in (argv if argv is not None else sys.argv[1:])
    try:
        result = app(args=argv, standalone_mode=False, prog_name="deployer")
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        print("interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        return int(ExitCode.INVALID)
    except DeployerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if output_json:
            print(json.dumps({"verdict": "error", "exitCode": int(exc.exit_code),
                              "error": exc.id, "message": exc.message, "hint": exc.hint}))
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    return int(result) if isinstance(result, int) else 0
