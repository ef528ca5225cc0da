"""A deploy program for real-clock tests (locks, pause, kill -9): takes DEPLOY_SECONDS
(default 0) and appends ``action region version key`` to ``$DEPLOY_LOG``.

With ``DEPLOY_GATE=<file>`` a deploy also waits until that file exists (at most ten
minutes): a test holds a rollout in its deploy, and so holds its lock, for exactly as
long as it needs, however slow the machine is."""

import os
import sys
import time

time.sleep(float(os.environ.get("DEPLOY_SECONDS", "0")))
gate = os.environ.get("DEPLOY_GATE")
if gate and sys.argv[1] == "deploy":
    deadline = time.monotonic() + 600
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            sys.exit(f"the gate {gate} never opened")
        time.sleep(0.05)
with open(os.environ["DEPLOY_LOG"], "a", encoding="utf-8") as log:
    log.write(" ".join([sys.argv[1], sys.argv[2], sys.argv[3], os.environ.get("GUARDRAIL_IDEMPOTENCY_KEY", "")]) + "\n")
