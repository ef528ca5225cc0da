"""A Temporal worker process for the spike: ``python tests/support/temporal_worker.py
ADDRESS NAMESPACE IDENTITY [TASK_QUEUE]``.

Polls the task queue for ``SpikeRollout`` and ``guardrail.bake`` until it is killed;
prints ``ready`` once the worker has started polling. Heartbeats reach the server at
most every 0.3 s (the SDK's throttle is otherwise 80% of the heartbeat timeout), so a
retry resumes from a recent step. A workflow task waits 2 s (``TEMPORAL_SPIKE_STICKY_TIMEOUT``;
the SDK's default is 10 s) on the sticky queue of a worker that died before another
worker takes it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import Client  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from support.temporal_spike import TASK_QUEUE, WORKER_ENV, SpikeRollout, bake  # noqa: E402


STICKY_TIMEOUT = float(os.environ.get("TEMPORAL_SPIKE_STICKY_TIMEOUT", "2"))


async def main(address: str, namespace: str, identity: str, task_queue: str) -> None:
    os.environ[WORKER_ENV] = identity
    client = await Client.connect(address, namespace=namespace, identity=identity)
    worker = Worker(client, task_queue=task_queue, workflows=[SpikeRollout], activities=[bake],
                    identity=identity, max_heartbeat_throttle_interval=timedelta(milliseconds=300),
                    sticky_queue_schedule_to_start_timeout=timedelta(seconds=STICKY_TIMEOUT),
                    graceful_shutdown_timeout=timedelta(seconds=1))
    async with worker:
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    address, namespace, identity = sys.argv[1:4]
    task_queue = sys.argv[4] if len(sys.argv) > 4 else TASK_QUEUE
    try:
        asyncio.run(main(address, namespace, identity, task_queue))
    except KeyboardInterrupt:
        pass
