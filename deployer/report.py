"""What the person (or the CI log) reads, and the JSON report.

Human output is written like a good CI log: phase headings, one line per step
with its time, "still waiting for ..." only when the reason changes, and a final
Result block with the verdict and the evidence (failed pods with their events and
last log lines). In JSON mode the same words go to stderr and one JSON document
goes to stdout at the end.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from deployer.ci_outputs import write_all
from deployer.model import Measurement, Outcome, PodFailure, Step, StepRecord, camel

# The JSON reports' schema (schema/report.schema.json): its version goes up when a field
# changes meaning or goes away; a new field does not change it.
REPORT_SCHEMA_VERSION = 1


class Reporter:
    def __init__(self, *, output: str = "text", out: IO[str] | None = None,
                 err: IO[str] | None = None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        self.output = output
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.clock = clock
        self.wall = wall  # the steps' start and end times in the JSON report
        self.started = clock()
        self.steps: list[StepRecord] = []
        self.checks: dict[str, Measurement] = {}
        self.failures: list[PodFailure] = []
        self.analyses: list[dict[str, Any]] = []  # each analysed step, every measurement
        self.facts: dict[str, Any] = {}
        self.notes: list[str] = []
        self.warnings: list[str] = []
        self.plan: dict[str, Any] | None = None  # the whole plan, for a dry run's JSON
        self.where = ""  # the options that point a printed command at this app: -n, --context
        # the API requests sent so far (the gateway's count), for the JSON report
        self.api_requests: Callable[[], dict[str, int]] | None = None
        self.report_file: str | None = None  # --report
        self.junit_file: str | None = None  # --junit
        self._last_wait: str | None = None

    # ---------------------------------------------------------------- live lines

    def _print(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    def heading(self, text: str) -> None:
        self._last_wait = None
        self._print(f"==> {text}")

    def line(self, text: str) -> None:
        self._print(f"    {text}")

    def note(self, text: str) -> None:
        """A line that also belongs in the final report."""
        self.notes.append(text)
        self.line(text)

    def warn(self, text: str) -> None:
        """Something the run cannot do as asked: said now, in the Result and in the JSON."""
        self.warnings.append(text)
        self.line(f"warning: {text}")

    def waiting(self, text: str) -> None:
        if text != self._last_wait:
            self._last_wait = text
            self._print(f"    ... still waiting: {text}")

    def fact(self, **values: Any) -> None:
        self.facts.update({k: v for k, v in values.items() if v is not None})

    def step_started(self, step: Step) -> StepRecord:
        record = StepRecord(step.describe(), step.kind, self.clock(), started_at=self.wall())
        self.steps.append(record)
        self._last_wait = None
        self._print(f"--> {record.description}")
        return record

    def step_finished(self, record: StepRecord, result: str, note: str | None = None) -> None:
        record.seconds = self.clock() - record.started
        record.result = result
        record.note = note
        suffix = f": {note}" if note else ""
        self._print(f"    {result} in {record.seconds:.1f}s{suffix}")

    def measured(self, measurements: tuple[Measurement, ...] | list[Measurement]) -> None:
        for m in measurements:
            self.checks[m.check] = m

    def analysed(self, record: dict[str, Any]) -> None:
        """One step's analyses, with every measurement (deployer.engine.analysing)."""
        self.analyses.append(record)

    def failed_pods(self, failures: tuple[PodFailure, ...] | list[PodFailure]) -> None:
        known = {(f.pod, f.container) for f in self.failures}
        self.failures += [f for f in failures if (f.pod, f.container) not in known]

    # ----------------------------------------------------------------- the result

    def result(self, outcome: Outcome) -> None:
        elapsed = self.clock() - self.started
        lines = ["", "Result", "------",
                 f"verdict:          {outcome.verdict.value} (exit {outcome.exit_code})",
                 f"message:          {outcome.message}"]
        for key in ("app", "strategy", "from_image", "to_image", "from_version",
                    "expected_version"):
            if self.facts.get(key) is not None:
                lines.append(f"{key.replace('_', ' ') + ':':<18}{self.facts[key]}")
        if outcome.verified_version:
            lines.append(f"verified:         every pod answers {outcome.verified_version}")
        elif outcome.exit_code == 0 and outcome.verdict.value in SUCCESS_VERDICTS:
            lines.append("verified:         not verified"
                         + (" (the version check is off)"
                            if self.facts.get("expected_version") is None else ""))
        if outcome.downtime_seconds is not None:
            lines.append(f"downtime:         {outcome.downtime_seconds:.1f}s with no available pod")
        lines.append(f"took:             {elapsed:.1f}s")
        if self.steps:
            lines.append("steps:")
            lines += [f"  - {s.description}: {s.result}"
                      + (f" ({s.seconds:.1f}s)" if s.seconds is not None else "")
                      for s in self.steps]
        lines += analysis_lines(self.analyses)
        for failure in self.failures:
            lines.append(f"failed pod {failure.pod}"
                         + (f" container {failure.container}" if failure.container else "")
                         + f": {failure.reason}: {failure.message}")
            if failure.image:
                lines.append(f"  image: {failure.image}")
            lines += [f"  event: {_without(e, failure.message)}" for e in failure.events]
            lines += [f"  log:   {line}" for line in failure.logs]
        lines += [f"warning:          {w}" for w in self.warnings]
        if outcome.next_command:
            lines.append(f"next:             {self.command(outcome.next_command)}")
        lines += [f"or:               {self.command(c)}" for c in outcome.other_commands]
        machine = self.output in ("json", "yaml")
        stream = self.err if machine else self.out
        print("\n".join(lines), file=stream, flush=True)
        report = self.to_json(outcome)
        if machine:
            print(dumps(report, self.output), file=self.out, flush=True)
        # a report file, JUnit XML, GitHub's step summary and outputs, as asked or set
        write_all(report, report_file=self.report_file, junit_file=self.junit_file)

    def command(self, text: str) -> str:
        """A deployer command as printed: with -n/--context, so it works pasted as is."""
        if not text.startswith("deployer ") or not self.where:
            return text
        return f"{text} {self.where}"

    def to_json(self, outcome: Outcome) -> dict[str, Any]:
        return {
            "schemaVersion": REPORT_SCHEMA_VERSION,
            "kind": "result",
            **{camel(k): v for k, v in self.facts.items()},
            "verdict": outcome.verdict.value,
            "exitCode": outcome.exit_code,
            "message": outcome.message,
            "verifiedVersion": outcome.verified_version,
            "downtimeSeconds": outcome.downtime_seconds,
            "seconds": round(self.clock() - self.started, 2),
            "steps": [s.to_json() for s in self.steps],
            "checks": [m.to_json() for m in self.checks.values()],
            "failedPods": [f.to_json() for f in self.failures],
            "analyses": self.analyses,
            "notes": self.notes,
            "warnings": self.warnings,
            **({"plan": self.plan} if self.plan is not None else {}),
            "next": self.command(outcome.next_command) if outcome.next_command else None,
            "otherCommands": [self.command(c) for c in outcome.other_commands],
            **({"apiRequests": self.api_requests()} if self.api_requests else {}),
        }


SUCCESS_VERDICTS = ("promoted", "no-op", "rolled-back")


def _without(event: str, message: str) -> str:
    """An event that repeats the failure's message says so instead of printing it again."""
    if len(message) > 20 and message in event:
        return event.replace(message, "(the message above)")
    return event


def analysis_lines(analyses: list[dict[str, Any]]) -> list[str]:
    """Each analysed step's result, then every measurement, in the Result block."""
    lines: list[str] = []
    for a in analyses:
        lines.append(f"analysis:         {a['result']}"
                     + (f": {a['message']}" if a.get("message") else ""))
        lines.append(f"  during: {a['step']}")
        for m in a.get("metrics") or []:
            lines.append(f"  metric {m['name']} ({m['provider']}): {m['result']}: {m['message']}")
            asked = None
            for x in m["measurements"]:
                if x.get("asked") and x["asked"] != asked:
                    asked = x["asked"]
                    lines.append(f"    asked: {asked}")
                lines.append(f"    {x['at']} {x['result']}: {x['message']}")
        probe = a.get("probe")
        if probe:
            lines.append(f"  probe {probe['path']}: {probe['result']}: {probe['message']}")
        for c in a.get("comparisons") or []:
            lines.append(f"  compare {c['query']}: {c['result']}: {c['message']}")
    return lines


def dumps(report: dict[str, Any], output: str) -> str:
    """A report as ``-o json`` or ``-o yaml`` prints it (the same fields either way)."""
    if output == "yaml":
        import yaml

        return str(yaml.safe_dump(report, sort_keys=False, allow_unicode=True)).rstrip("\n")
    return json.dumps(report, indent=2)
