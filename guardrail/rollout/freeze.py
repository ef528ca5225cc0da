"""Change freezes during a rollout: before each wave deploys, the plan's deny windows are
read again at the rollout clock's time. A multi-wave rollout begun just before a freeze
halts before its first wave inside it, instead of deploying there.

A window that a person overrode (``rollout``/``resume --override-window "reason"``, a
``window.overridden`` event) does not stop the rollout again; another window does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from guardrail.language.model import Rollout
from guardrail.language.windows import frozen_by


@dataclass(frozen=True)
class Freeze:
    window: str
    reason: str


def freeze_before_wave(rollout: Rollout, rollout_id: str, wave: str, at: float,
                       overridden: Iterable[dict[str, Any]]) -> Freeze | None:
    """The freeze that stops ``wave`` from deploying at ``at``, or None.

    :param overridden: the rollout's ``window.overridden`` events so far.
    """
    window = frozen_by(rollout.windows.deny, rollout.windows.timezone, at)
    if window is None or window in {e.get("window") for e in overridden}:
        return None
    return Freeze(window, f"change freeze {window!r} ({rollout.windows.timezone}) is in force before wave {wave!r}: "
                          f"nothing more is deployed; `guardrail resume {rollout_id}` once it ends, or with "
                          f"--override-window \"reason\"")
