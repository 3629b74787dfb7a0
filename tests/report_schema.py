"""The JSON reports checked against schema/report.schema.json (unit and e2e tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema" / "report.schema.json"
SCHEMA = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA)


def problems(report: Any) -> list[str]:
    """What in the report the schema does not allow, each with where it is."""
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"[:300]
            for e in sorted(VALIDATOR.iter_errors(report), key=lambda e: list(e.path))]


def checked(report: Any) -> Any:
    """The report itself, once it is valid: an invalid one fails the test naming why."""
    found = problems(report)
    assert not found, "the report does not follow schema/report.schema.json:\n" + \
        "\n".join(found)
    return report
