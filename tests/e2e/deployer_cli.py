"""Run the real ``deployer`` command the way a user or a CI step does: a new process."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def report(self) -> dict[str, Any]:
        """The JSON report, checked against schema/report.schema.json: every report a test
        reads from the lab (deploys, rejections, gates, dry runs, rollbacks, status,
        history, errors) is held to the documented schema."""
        from tests.report_schema import checked

        return checked(json.loads(self.stdout))  # type: ignore[no-any-return]

    def __str__(self) -> str:
        return f"exit {self.code} after {self.seconds:.1f}s\n--- stdout\n{self.stdout}\n" \
               f"--- stderr\n{self.stderr}"

    __repr__ = __str__  # so that a failed assertion shows the whole output


def deployer_command() -> list[str]:
    exe = shutil.which("deployer", path=os.path.dirname(sys.executable)) or \
        shutil.which("deployer")
    return [exe] if exe else [sys.executable, "-m", "deployer"]


def environment(extra: dict[str, str] | None) -> dict[str, str]:
    """The test process's environment without CI (a test that means CI says so), plus extra."""
    return {**{k: v for k, v in os.environ.items() if k != "CI"}, **(extra or {})}


def deployer(namespace: str, *args: str, timeout: float = 300,
             env: dict[str, str] | None = None) -> CliResult:
    cmd = [*deployer_command(), "-n", namespace, *args]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=environment(env), stdin=subprocess.DEVNULL)
    return CliResult(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def run_printed(command: str, *, timeout: float = 300, ci: bool = True) -> CliResult:
    """Run a command exactly as deployer printed it (a report's next:, a hint), the way an
    engineer pastes it; in a CI step by default (CI=true: --context is required)."""
    import shlex

    argv = shlex.split(command)
    assert argv[0] == "deployer", f"not a deployer command: {command!r}"
    started = time.monotonic()
    proc = subprocess.run([*deployer_command(), *argv[1:]], capture_output=True, text=True,
                          timeout=timeout, env=environment({"CI": "true"} if ci else None),
                          stdin=subprocess.DEVNULL)
    return CliResult(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


class Background:
    """A deployer run in the background, to interrupt, kill or race against."""

    def __init__(self, namespace: str, *args: str, env: dict[str, str] | None = None):
        cmd = [*deployer_command(), "-n", namespace, *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True,
                                     env=environment(env))
        self.started = time.monotonic()
        self._err = ""  # stderr read before the end, by said()

    def said(self, text: str, timeout: float) -> str:
        """Wait until a line of stderr holds ``text``; returns that line."""
        deadline = time.monotonic() + timeout
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()  # unbuffered: communicate() reads the fd itself
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([fd], [], [], left)[0]:
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break  # the process ended
            self._err += chunk.decode("utf-8", "replace")
            for line in self._err.splitlines():
                if text in line:
                    return line
        raise AssertionError(f"no line with {text!r} on stderr within {timeout} s: "
                             f"{self._err!r}")

    def wait(self, timeout: float = 300) -> CliResult:
        out, err = self.proc.communicate(timeout=timeout)
        return CliResult(self.proc.returncode, out, self._err + err,
                         time.monotonic() - self.started)

    def kill(self) -> CliResult:
        if self.proc.poll() is None:
            self.proc.kill()
        return self.wait(30)
