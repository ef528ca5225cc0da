#!/bin/sh
# Remediation on failure: stop injecting new sends into a region while it recovers.
# A real one would call the mail platform's admin API; this one records what it did.
echo "$(date -u +%FT%TZ) paused send injection in $1" >> "${GUARDRAIL_DEMO_LOG:-/dev/null}"
echo "send injection paused in $1"
