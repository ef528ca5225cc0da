"""Where a rollout runs: in the calling process (the default, ``guardrail.api``), or on
Temporal workers (``guardrail worker --temporal HOST:PORT``; ``guardrail rollout PLAN
--temporal HOST:PORT``).

The procedure is written once, in ``guardrail.rollout.engine``; a runtime only decides
which process runs it and who starts it again when that process dies:

- ``jobs``: what a submitted rollout carries (plain data, no Temporal);
- ``attempt``: one attempt at running a rollout through ``guardrail.api``, as a new
  rollout or as a takeover of one whose runner is gone (no Temporal);
- ``follow``: watching a rollout through the shared store, as a local run prints it;
- ``workflow``: the Temporal workflow (its lifecycle, signals, visibility);
- ``temporal``: the activity, the worker and the client helpers.

``temporalio`` is imported only by the last two, and only when ``--temporal`` is used:
``require_temporal`` turns a missing extra into an error that says what to install.
"""

from __future__ import annotations

from guardrail.errors import UsageError
from guardrail.version import DISTRIBUTION


def require_temporal() -> None:
    """Raise ``UsageError`` (exit 2) naming the extra to install when ``temporalio`` is missing."""
    try:
        import temporalio  # noqa: F401
    except ImportError:
        raise UsageError(f"running rollouts on Temporal needs the Temporal SDK: "
                         f"pip install '{DISTRIBUTION}[temporal]'") from None
