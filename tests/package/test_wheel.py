"""deployer as users install it: the sdist and wheel built (python -m build), the wheel
installed into a fresh virtual environment as pipx would, and its `deployer` command run,
so a missing package file or entry point cannot ship. Needs the package index (for the
wheel's dependencies); `make test-package` runs it, `make test` too."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIST_NAME = "kube_deployer"  # the distribution: "deployer" on PyPI is another project


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out),
                    str(ROOT)], check=True, capture_output=True, text=True, timeout=300)
    return out


def test_the_sdist_and_wheel_hold_every_module_and_the_entry_points(built):
    (wheel,) = built.glob(f"{DIST_NAME}-*.whl")
    (sdist,) = built.glob(f"{DIST_NAME}-*.tar.gz")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = next(z.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    sources = {str(p.relative_to(ROOT)) for d in ("deployer", "strategies")
               for p in (ROOT / d).rglob("*.py")}
    assert sources <= names, sources - names
    assert "deployer = deployer.cli:main" in entry_points
    for strategy in ("rolling", "recreate", "canary", "blue-green", "restart"):
        assert f"{strategy} = strategies." in entry_points
    with tarfile.open(sdist) as t:
        assert any(n.endswith("/pyproject.toml") for n in t.getnames())


def test_the_wheel_installed_alone_runs_deployer(built, tmp_path):
    (wheel,) = built.glob(f"{DIST_NAME}-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True,
                   capture_output=True, text=True, timeout=600)
    deployer = str(venv / "bin" / "deployer")
    version = subprocess.run([deployer, "--version"], capture_output=True, text=True,
                             timeout=60, cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip().endswith("0.1.0"), version
    listed = subprocess.run([deployer, "-o", "json", "strategies"], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    strategies = {s["name"]: s for s in json.loads(listed.stdout)["strategies"]}
    assert set(strategies) == {"rolling", "recreate", "canary", "blue-green", "restart"}
    assert all(s["problem"] is None and s["package"] == "kube-deployer"
               for s in strategies.values())
