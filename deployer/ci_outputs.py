"""What a CI job keeps of a run besides its log: the JSON report as a file (``--report``),
JUnit XML (``--junit``), a step summary and step outputs on GitHub Actions.

Every one is made from the JSON report (:mod:`deployer.report`), so they cannot say
different things. JUnit XML is written with junitparser: one test case per step, per
check and per analysed metric, and one for the release itself, whose failure carries the
verdict's message and the failed pods' reasons; GitLab's and Jenkins' JUnit readers show
each. ``GITHUB_STEP_SUMMARY`` (a Markdown file) gets the verdict, the versions, the steps
and the failed pods appended; ``GITHUB_OUTPUT`` gets ``verdict``, ``exit-code`` and
``version``. A file that cannot be written is a warning on stderr: the run's exit code
stays the verdict's.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from deployer.errors import InvalidInput

SUITE = "deployer"


def check_path(path: str | None, flag: str) -> str | None:
    """A file to write at the end: its folder must exist now (said before any change)."""
    if path is None:
        return None
    folder = Path(path).expanduser().resolve().parent
    if not folder.is_dir():
        raise InvalidInput(f"{flag} {path}: the folder {folder} does not exist",
                           id="invalid-output-file")
    if Path(path).is_dir():
        raise InvalidInput(f"{flag} {path} is a folder; give a file name", id="invalid-output-file")
    return path


def write_all(report: dict[str, Any], *, report_file: str | None = None,
              junit_file: str | None = None, env: dict[str, str] | None = None) -> None:
    env = dict(os.environ if env is None else env)
    jobs: list[tuple[str | None, str, bool]] = [
        (report_file, json.dumps(report, indent=2) + "\n", False),
        (junit_file, junit_xml(report) if junit_file else "", False),
        (env.get("GITHUB_STEP_SUMMARY"), step_summary(report), True),
        (env.get("GITHUB_OUTPUT"), step_outputs(report), True),
    ]
    for path, text, append in jobs:
        if not path:
            continue
        try:
            with open(path, "a" if append else "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            print(f"warning: could not write {path}: {exc.strerror}", file=sys.stderr,
                  flush=True)


# --------------------------------------------------------------------------- JUnit


def junit_xml(report: dict[str, Any]) -> str:
    from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite

    name = " ".join(str(report[k]) for k in ("strategy", "app") if report.get(k)) or \
        str(report.get("kind", "run"))
    suite = TestSuite(f"{SUITE} {name}")
    seconds = report.get("seconds")
    release = TestCase("release", classname=SUITE, time=float(seconds or 0.0))
    verdict = str(report.get("verdict"))
    if report.get("exitCode") not in (0, None):
        pods = [f"{p['pod']}: {p['reason']}: {p['message']}" for p in
                report.get("failedPods") or []]
        text = "\n".join([str(report.get("message")), *pods])
        result = (Skipped if report.get("exitCode") == 5 else
                  Failure if verdict in ("rejected", "timeout") else Error)(
            f"{verdict} (exit {report.get('exitCode')}): {report.get('message')}")
        result.text = text
        release.result = [result]
    release.system_out = "\n".join(
        f"{k}: {report[k]}" for k in ("fromImage", "toImage", "expectedVersion",
                                      "verifiedVersion", "next") if report.get(k))
    suite.add_testcase(release)
    for step in report.get("steps") or []:
        case = TestCase(step["step"], classname=f"{SUITE}.steps",
                        time=float(step.get("seconds") or 0.0))
        if step["result"] == "failed":
            case.result = [Failure(step.get("note") or "failed")]
        elif step["result"] in ("error", "interrupted"):
            case.result = [Error(f"{step['result']}: {step.get('note') or ''}")]
        elif step["result"] == "inconclusive":
            case.result = [Skipped(step.get("note") or "inconclusive")]
        suite.add_testcase(case)
    for check in report.get("checks") or []:
        suite.add_testcase(_judged(TestCase(check["check"], classname=f"{SUITE}.checks"),
                                   check["phase"], check["message"]))
    for analysis in report.get("analyses") or []:
        for metric in analysis.get("metrics") or []:
            case = TestCase(metric["name"], classname=f"{SUITE}.analysis")
            case.system_out = "\n".join(f"{m['at']} {m['result']}: {m['asked']}: {m['message']}"
                                        for m in metric["measurements"])
            suite.add_testcase(_judged(case, metric["result"], metric["message"]))
        if analysis.get("probe"):
            probe = analysis["probe"]
            suite.add_testcase(_judged(TestCase(f"probe {probe['path']}",
                                                classname=f"{SUITE}.analysis"),
                                       probe["result"], probe["message"]))
        for c in analysis.get("comparisons") or []:
            suite.add_testcase(_judged(TestCase(f"compare {c['query']}",
                                                classname=f"{SUITE}.analysis"),
                                       c["result"], c["message"]))
    xml = JUnitXml()
    xml.add_testsuite(suite)
    return str(xml.tostring().decode("utf-8")) + "\n"


def _judged(case: Any, phase: str, message: str) -> Any:
    from junitparser import Error, Failure, Skipped

    if phase == "Failed":
        case.result = [Failure(message)]
    elif phase == "Error":
        case.result = [Error(message)]
    elif phase in ("Inconclusive", "Pending", "Running"):
        case.result = [Skipped(f"{phase}: {message}")]
    return case


# ----------------------------------------------------------------- GitHub Actions


def step_summary(report: dict[str, Any]) -> str:
    """Markdown for ``$GITHUB_STEP_SUMMARY``."""
    ok = report.get("exitCode") == 0
    title = " ".join(str(report[k]) for k in ("strategy", "app") if report.get(k))
    lines = [f"### {'✅' if ok else '❌'} deployer {title}: {report.get('verdict')} "
             f"(exit {report.get('exitCode')})", "", str(report.get("message") or ""), ""]
    facts = [("from", report.get("fromImage")), ("to", report.get("toImage")),
             ("expected version", report.get("expectedVersion")),
             ("verified", report.get("verifiedVersion") or "not verified")]
    if report.get("fromImage") or report.get("toImage"):
        lines += ["| | |", "|---|---|"] + [f"| {k} | `{v}` |" for k, v in facts if v] + [""]
    steps = report.get("steps") or []
    if steps:
        lines += ["| step | result | seconds |", "|---|---|---:|"]
        lines += [f"| {_cell(s['step'])} | {s['result']} | {s.get('seconds') or ''} |"
                  for s in steps]
        lines.append("")
    for pod in report.get("failedPods") or []:
        lines.append(f"- failed pod `{pod['pod']}`: {pod['reason']}: {_cell(pod['message'])}")
    for analysis in report.get("analyses") or []:
        lines.append(f"- analysis {analysis['result']}: {_cell(analysis['message'])}")
    if report.get("next"):
        lines += ["", f"next: `{report['next']}`"]
    return "\n".join(lines) + "\n\n"


def step_outputs(report: dict[str, Any]) -> str:
    """``name=value`` lines for ``$GITHUB_OUTPUT``."""
    version = report.get("verifiedVersion") or report.get("expectedVersion") or ""
    return (f"verdict={report.get('verdict')}\nexit-code={report.get('exitCode')}\n"
            f"version={version}\n")


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")
