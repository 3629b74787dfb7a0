"""Shared fixtures of the unit tests."""

import pytest
import structlog


@pytest.fixture(autouse=True)
def fresh_logging(monkeypatch, tmp_path):
    """No test reaches a cluster or leaves logging pointed at its captured stderr."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    yield
    structlog.reset_defaults()
