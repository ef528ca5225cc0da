"""The YAML language as pydantic models (``Rollout``, ``Policy``) and its value types."""

from guardrail.language.policy import BaselineSpec, Check, Policy
from guardrail.language.rollout import Change, OnFailure, PluginRef, Region, Rollout, VerifyRecovery, Wave, Windows
from guardrail.language.types import Comparison, Duration, format_duration, parse_comparison, parse_duration, render, template_names

__all__ = [
    "BaselineSpec", "Change", "Check", "Comparison", "Duration", "OnFailure", "PluginRef", "Policy", "Region",
    "Rollout", "VerifyRecovery", "Wave", "Windows", "format_duration", "parse_comparison", "parse_duration",
    "render", "template_names",
]
