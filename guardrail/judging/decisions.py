"""What a bake decides when it does not pass: plain records the procedure acts on and
the incident and reports read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Failure:
    """Roll back: a check failed (``findings`` holds its evidence), a deploy failed, or a
    person aborted. ``waves`` are the waves the failure concerns (for ``rollback:
    failing-wave``)."""

    reason: str
    findings: list[dict[str, Any]] = field(default_factory=list)
    waves: list[str] = field(default_factory=list)
    aborted: bool = False


@dataclass
class Halt:
    """Stop without deploying more or rolling back: a person must resume or abort."""

    reason: str
