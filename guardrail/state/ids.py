"""Rollout ids: the UTC second a rollout started, and six random hex digits so two
started in the same second on different machines do not collide."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone


def new_rollout_id(now: float) -> str:
    stamp = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"
