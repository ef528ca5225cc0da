"""The installed version of guardrail. A leaf: imports nothing of guardrail."""

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "guardrail"
"""The name guardrail is installed under (``pip install``)."""

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
