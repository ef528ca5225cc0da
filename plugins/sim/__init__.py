"""``sim``: the simulated fleet, guardrail's embedded default source and deployer.

A scenario file (``kind: Scenario``, see ``scenario``) says how each metric behaves per
region and per version; the ``sim`` deployer records which version runs where in a
fleet log (``fleet``); the ``sim`` source answers PromQL (``promql``) from samples
generated for that timeline (``generator``); ``exposition`` serves the same samples on
``/metrics`` or writes them as OpenMetrics for ``promtool`` backfills.

Python users: ``load_scenario(path)``, ``open_store(scenario, fleet=..., start=...)``,
``evaluate(query, store, at)``.
"""

from __future__ import annotations

from typing import Any

from guardrail import Document, Problem, hookimpl

from .fleet import FleetLog, default_fleet_path
from .promql import PromQLError, StaticStore, evaluate
from .scenario import Scenario, load_scenario, validate_document
from .source import SimSource
from .deployer import SimDeployer


def open_store(*args: Any, **kwargs: Any):
    """See ``generator.open_store`` (imported on use: it needs numpy)."""
    from .generator import open_store as _open_store

    return _open_store(*args, **kwargs)


def validate_scenario(document: Document) -> list[Problem]:
    """Validate a parsed ``kind: Scenario`` document (for ``guardrail validate``)."""
    return validate_document(document)


@hookimpl(trylast=True)
def guardrail_register_sources(register):
    register("sim", SimSource)


@hookimpl(trylast=True)
def guardrail_register_deployers(register):
    register("sim", SimDeployer)


@hookimpl(trylast=True)
def guardrail_register_document_kinds(register):
    register("Scenario", validate_scenario, schema=Scenario)


__all__ = ["FleetLog", "PromQLError", "Scenario", "SimDeployer", "SimSource", "StaticStore", "default_fleet_path",
           "evaluate", "load_scenario", "open_store", "validate_scenario"]
