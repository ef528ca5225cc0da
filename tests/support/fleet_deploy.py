#!/usr/bin/env python3
"""A deploy script for tests, used through the ``command`` deployer and action.

    fleet_deploy.py LOG deploy|rollback|action REGION VERSION

It keeps its own log (one JSON line per call, with the idempotency key and whether
the call was a repeat) and, for deploys and rollbacks, tells the simulated fleet what
now runs where. Like a real deploy tool it is idempotent per key. With
``KILL_PARENT_ON=<action>:<region>`` it SIGKILLs guardrail (its parent) right after
doing that work: a crash *during* a side effect, after it took effect.
"""

import json
import os
import signal
import sys
import time

log, action, region, version = sys.argv[1:5]
key = os.environ.get("GUARDRAIL_IDEMPOTENCY_KEY", "")
seen = set()
if os.path.exists(log):
    with open(log) as f:
        seen = {json.loads(line)["key"] for line in f if line.strip()}
entry = {"action": action, "region": region, "version": version, "key": key, "repeat": key in seen,
         "at": time.time()}
if action in ("deploy", "rollback") and key not in seen and os.environ.get("SIM_FLEET"):
    from guardrail_plugins.sim.fleet import FleetLog

    # The key is ROLLOUT_ID:ACTION:REGION: the change belongs to that rollout's own fleet,
    # as the sim deployer's records do (guardrail_plugins.sim.fleet).
    FleetLog(os.environ["SIM_FLEET"], run=key.split(":", 1)[0] or None).record(
        region=region, version=version, action=action, key=key, at=float(os.environ["GUARDRAIL_CLOCK_NOW"]))
with open(log, "a") as f:
    f.write(json.dumps(entry) + "\n")
if os.environ.get("KILL_PARENT_ON") == f"{action}:{region}" and not entry["repeat"]:
    os.kill(os.getppid(), signal.SIGKILL)
