"""guardrail: staged, region-by-region rollouts that bake, judge, roll back and explain."""

import pluggy

from guardrail.version import __version__

hookimpl = pluggy.HookimplMarker("guardrail")
"""Decorator for plugin hook implementations: ``@guardrail.hookimpl``."""

__all__ = ["hookimpl", "__version__"]
