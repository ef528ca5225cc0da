"""Following a rollout that another process runs, through the shared store.

The runner records every transition in the store before it acts; a follower reads the
new events every ``interval`` and shows each one as a local run shows it (the same
progress plugin, the same sentences), until the runner's end is known. What the store
does not keep (the live per-tick table of a terminal) is not shown.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, TypeVar

T = TypeVar("T")


class Follower:
    """Shows the events of one rollout that it has not shown yet."""

    def __init__(self, store: Any, rollout_id: str, show: Callable[[dict[str, Any]], None]):
        self.store, self.rollout_id, self.show = store, rollout_id, show
        self.seen = 0

    def poll(self) -> int:
        """Show the new events; return how many."""
        new = [e for e in self.store.events(self.rollout_id) if e["seq"] > self.seen]
        for event in new:
            self.seen = event["seq"]
            self.show({"rollout_id": self.rollout_id, **event})
        return len(new)


async def follow(follower: Follower, end: Awaitable[T], *, interval: float = 0.25) -> T:
    """Show the rollout's events until ``end`` (the runner's result) is known; return it."""
    task = asyncio.ensure_future(end)
    try:
        while not task.done():
            follower.poll()
            await asyncio.wait([task], timeout=interval)
        follower.poll()
        return task.result()
    finally:
        if not task.done():
            task.cancel()
