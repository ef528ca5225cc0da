#!/bin/sh
# Remediation after recovery: find the sends that stalled while the sender restarted and
# resume them (in the real incident this took people three hours by hand).
echo "$(date -u +%FT%TZ) resumed stalled sends in $1" >> "${GUARDRAIL_DEMO_LOG:-/dev/null}"
echo "stalled sends resumed in $1"
