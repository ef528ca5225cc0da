"""A deploy program for real-clock tests (locks, pause, kill -9): takes DEPLOY_SECONDS
(default 0) and appends ``action region version key`` to ``$DEPLOY_LOG``."""

import os
import sys
import time

time.sleep(float(os.environ.get("DEPLOY_SECONDS", "0")))
with open(os.environ["DEPLOY_LOG"], "a", encoding="utf-8") as log:
    log.write(" ".join([sys.argv[1], sys.argv[2], sys.argv[3], os.environ.get("GUARDRAIL_IDEMPOTENCY_KEY", "")]) + "\n")
