"""The installed version of guardrail. A leaf: imports nothing of guardrail."""

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "guardrail-rollout"
"""The name guardrail is installed under (``pip install guardrail-rollout``): ``guardrail`` on the
public index is an unrelated project. The import package and the command stay ``guardrail``."""

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
