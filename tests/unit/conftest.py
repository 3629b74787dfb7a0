"""Shared fixtures of the unit tests."""

import pytest
import structlog

from deployer import logs
from tests.unit.fakes import FakeGateway, deployment, service


@pytest.fixture(autouse=True)
def fresh_logging(monkeypatch, tmp_path):
    """No test reaches a cluster, inherits CI from the machine running it (a test about CI
    sets it), or leaves logging pointed at its captured stderr."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    yield
    structlog.reset_defaults()
    logs.reset()


@pytest.fixture
def cli_cluster(monkeypatch) -> FakeGateway:
    """The CLI's gateway replaced by a fake holding hello v1 (3 replicas) and its Service:
    the real entry point runs against it in-process, outside CI."""
    from deployer import cli

    fake = FakeGateway(deployment("hello"))
    fake.services["hello"] = service("hello", {"app": "hello"})
    monkeypatch.setattr(cli, "_connect", lambda g, **kw: fake)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    return fake
