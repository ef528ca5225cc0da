"""Fixtures shared by many test modules. Keep this file small: a fixture used by one
module belongs in that module."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"


@pytest.fixture(scope="session")
def registry():
    """What the installed plugins registered (built from a fresh plugin manager)."""
    from guardrail.plugin_manager import get_plugin_manager

    return get_plugin_manager().registry


@pytest.fixture
def cli(monkeypatch):
    """``cli("validate", "x.yaml")``: run the command line in-process from the repository
    root (so messages name files as ``tests/data/...``) and return click's Result."""
    from guardrail.cli import create_app

    monkeypatch.chdir(REPO)
    runner = CliRunner()
    app = create_app()

    def invoke(*args: str, env: dict[str, str | None] | None = None):
        return runner.invoke(app, list(args), env=env)

    return invoke
