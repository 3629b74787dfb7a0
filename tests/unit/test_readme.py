"""The README is part of the interface: its tables must match the code and the tests."""

import re
from pathlib import Path

from deployer.exitcodes import ExitCode

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_exit_code_table_matches_the_enum():
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", README, re.M))
    assert {int(k): v for k, v in rows.items()} == {int(c): c.meaning for c in ExitCode}


def test_every_test_named_in_the_fault_table_exists():
    section = README.split("## When things go wrong", 1)[1].split("\n## ", 1)[0]
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    names = re.findall(r"`(?:[\w/.]+::)?(test_\w+)(?:…|`)", section)
    files = re.findall(r"`((?:tests/[\w/]+|test_\w+)\.py)", section)
    assert len(names) >= 30, names
    for name in names:
        assert re.search(rf"def {name}", sources), f"README names a missing test: {name}"
    for file in files:
        path = ROOT / file if file.startswith("tests/") else next(ROOT.rglob(file), None)
        assert path is not None and path.exists(), f"README names a missing file: {file}"
