"""A deploy program for the shell-metacharacter test (run by the ``command`` deployer).

Appends one JSON line per call to ``$ARGV_LOG``: its argv exactly as received, the
action and the idempotency key. Refuses (exit 3) to deploy the region named in
``$FAIL_REGION``, so the rollback argv is recorded too.
"""

import json
import os
import sys

with open(os.environ["ARGV_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps({"argv": sys.argv[1:], "action": os.environ.get("GUARDRAIL_ACTION"),
                          "key": os.environ.get("GUARDRAIL_IDEMPOTENCY_KEY"), "cwd": os.getcwd()}) + "\n")
if os.environ.get("GUARDRAIL_ACTION") == "deploy" and sys.argv[1] == os.environ.get("FAIL_REGION"):
    print(f"refusing to deploy {sys.argv[1]}", file=sys.stderr)
    sys.exit(3)
