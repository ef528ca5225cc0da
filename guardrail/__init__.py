"""guardrail: staged, region-by-region rollouts that bake, judge, roll back and explain.

This package is also the one public place a plugin imports from::

    import guardrail
    from guardrail import Probe, Reading, Source, hookimpl

    class MySource(Source): ...

    @hookimpl
    def guardrail_register_sources(register):
        register("mine", MySource)

Names are loaded on first use, so ``import guardrail`` stays cheap for the command line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import pluggy

from guardrail.version import __version__

hookimpl = pluggy.HookimplMarker("guardrail")
"""Decorator for plugin hook implementations: ``@guardrail.hookimpl``."""

# The plugin kit: name -> the module that defines it.
_KIT = {
    # what a plugin implements, receives and returns (guardrail.plugin.interfaces)
    **dict.fromkeys(["Source", "Deployer", "Action", "IncidentSink", "SinkError", "PluginContext", "Target",
                     "Outcome", "ActionRun", "NoSettings", "AnyParams", "Probe", "Reading", "RangeReading",
                     "Series", "Readiness", "QueryProblem"], "guardrail.plugin.interfaces"),
    # value types for a plugin's Settings and Params, and template filling
    **dict.fromkeys(["Duration", "Template"], "guardrail.plugin.types"),
    **dict.fromkeys(["render", "render_value", "template_names"], "guardrail.plugin.templates"),
    **dict.fromkeys(["format_duration", "parse_duration", "iso"], "guardrail.text"),
    # helpers for plugins that talk HTTP or run programs
    **dict.fromkeys(["HttpSink", "HttpSettings", "clip"], "guardrail.plugin.sink_http"),
    **dict.fromkeys(["post_json"], "guardrail.plugin.http"),
    # the incident as text: a headline, a sentence per status, one line per check, Markdown
    **dict.fromkeys(["headline", "status_sentence", "check_line", "observed_values", "action_line", "plain_text",
                     "markdown", "update_markdown", "public_text"], "guardrail.plugin.incident_text"),
    **dict.fromkeys(["run_argv", "program_problem"], "guardrail.plugin.process"),
    # errors and YAML documents, for plugins that add a document kind
    **dict.fromkeys(["Problem", "ConfigError", "UsageError", "GuardrailError", "ExitCode"], "guardrail.errors"),
    **dict.fromkeys(["Document"], "guardrail.language.yamldoc"),
    # for a plugin's own tests: a fresh manager with the plugin loaded, and validation
    **dict.fromkeys(["get_plugin_manager"], "guardrail.plugin.manager"),
    **dict.fromkeys(["validate_paths"], "guardrail.language.loader"),
}
_MODULES = {
    "documents": "guardrail.language.documents",  # read a YAML file, validate it against a pydantic model
}

__all__ = ["__version__", "hookimpl", *_KIT, *_MODULES]


def __getattr__(name: str) -> Any:
    if name in _KIT:
        value = getattr(importlib.import_module(_KIT[name]), name)
    elif name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    else:
        raise AttributeError(f"module 'guardrail' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for editors and type checkers: the same names, imported eagerly
    from guardrail.errors import ConfigError, ExitCode, GuardrailError, Problem, UsageError
    from guardrail.language import documents
    from guardrail.language.loader import validate_paths
    from guardrail.language.yamldoc import Document
    from guardrail.plugin.manager import get_plugin_manager
    from guardrail.plugin.incident_text import (action_line, check_line, headline, markdown, observed_values,
                                                plain_text, public_text, status_sentence, update_markdown)
    from guardrail.plugin.http import post_json
    from guardrail.plugin.interfaces import (Action, ActionRun, AnyParams, Deployer, IncidentSink, NoSettings,
                                             Outcome, PluginContext, Probe, QueryProblem, RangeReading, Readiness,
                                             Reading, Series, SinkError, Source, Target)
    from guardrail.plugin.process import program_problem, run_argv
    from guardrail.plugin.sink_http import HttpSettings, HttpSink, clip
    from guardrail.plugin.templates import render, render_value, template_names
    from guardrail.plugin.types import Duration, Template
    from guardrail.text import format_duration, iso, parse_duration
