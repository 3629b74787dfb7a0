"""deployer's log lines: structlog is imported only when a line passes the level."""

import json
import subprocess
import sys

from tests.unit.test_validation import REPO_ROOT

PREAMBLE = (
    "import sys\n"
    "import deployer.cli, deployer.cluster, deployer.lock\n"
    "from deployer import logs\n"
)


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PREAMBLE + code], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=True, timeout=60)


def test_a_run_that_logs_nothing_never_imports_structlog():
    result = run(
        "logs.configure(verbose=False)\n"
        "logs.get_logger('deployer.cluster').debug('api request', path='/api')\n"
        "print('structlog' in sys.modules)\n"
    )
    assert result.stdout.strip() == "False"
    assert result.stderr == ""


def test_a_warning_is_written_without_verbose():
    result = run(
        "logs.configure(verbose=False)\n"
        "logs.get_logger('deployer.lock').warning('could not renew the lock', error='gone')\n"
        "print('structlog' in sys.modules)\n"
    )
    assert result.stdout.strip() == "True"
    assert "could not renew the lock" in result.stderr and "error=gone" in result.stderr


def test_verbose_json_lines_carry_level_time_and_fields():
    result = run(
        "logs.configure(verbose=True, log_format='json')\n"
        "logs.get_logger('deployer.cluster').debug('api request', path='/api', status=200)\n"
    )
    line = json.loads(result.stderr.strip())
    assert line["event"] == "api request" and line["level"] == "debug"
    assert line["path"] == "/api" and line["status"] == 200 and "timestamp" in line


def test_configured_after_structlog_was_imported_it_is_configured_at_once():
    result = run(
        "import structlog\n"
        "logs.configure(verbose=False)\n"
        "structlog.get_logger('other').debug('dropped')\n"
        "structlog.get_logger('other').warning('kept')\n"
    )
    assert "kept" in result.stderr and "dropped" not in result.stderr
