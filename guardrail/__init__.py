"""guardrail: staged, region-by-region rollouts that bake, judge, roll back and explain."""

from importlib.metadata import PackageNotFoundError, version

import pluggy

hookimpl = pluggy.HookimplMarker("guardrail")
"""Decorator for plugin hook implementations: ``@guardrail.hookimpl``."""

try:
    __version__ = version("guardrail")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = ["hookimpl", "__version__"]
