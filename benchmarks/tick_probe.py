"""A plugin for benchmarks/temporal_workers.py: records when each bake tick was done.

Loaded with ``GUARDRAIL_PLUGINS=tick_probe`` (``benchmarks/`` on ``PYTHONPATH``); appends
``{"rollout_id", "wave", "remaining", "wall"}`` to ``$BENCH_TICK_LOG`` for every
``bake.tick`` (one ``write`` per line on an ``O_APPEND`` file: lines from many threads
and processes do not interleave).
"""

import json
import os
import time

from guardrail import hookimpl


@hookimpl
def guardrail_on_event(event):
    if event.get("kind") != "bake.tick":
        return
    line = json.dumps({"rollout_id": event["rollout_id"], "wave": event["wave"], "remaining": event["remaining"],
                       "wall": time.time()}) + "\n"
    fd = os.open(os.environ["BENCH_TICK_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
