#!/usr/bin/env bash
# A plain CI shell step: roll out with guardrail, keep the report and the JUnit XML as
# artifacts, and exit with guardrail's code (the contract every CI system understands).
#
#   examples/ci/rollout.sh deploy/rollout.yaml
#
# Environment:
#   ARTIFACTS        folder for report.html, junit.xml and result.json (default: guardrail-report)
#   ARTIFACT_URL     optional: upload each file there with an HTTP PUT (an artifact store,
#                    a bucket's pre-signed prefix...): $ARTIFACT_URL/<rollout id>/<file>
#   GUARDRAIL_STATE  the state file; keep it between runs for `guardrail resume`
# Jenkins: archiveArtifacts 'guardrail-report/**' and junit 'guardrail-report/junit.xml';
# Buildkite: artifact_paths: "guardrail-report/*".
set -uo pipefail

plan="${1:?usage: rollout.sh PLAN}"
artifacts="${ARTIFACTS:-guardrail-report}"
mkdir -p "$artifacts"

guardrail rollout "$plan" --output json --report "$artifacts/report.html" --junit "$artifacts/junit.xml" \
  > "$artifacts/result.json"
code=$?
id=$(python3 -c 'import json, sys; print(json.load(sys.stdin).get("rollout_id") or "")' \
     < "$artifacts/result.json" 2>/dev/null || true)

case $code in
  0) echo "guardrail: promoted ($id)" ;;
  1) echo "guardrail: rolled back and recovered ($id); see $artifacts/report.html" ;;
  2) echo "guardrail: invalid plan, policy or arguments; nothing was deployed" ;;
  3) echo "guardrail: halted; a person must run: guardrail resume $id  (or: guardrail abort $id)" ;;
  4) echo "guardrail: ROLLBACK FAILED or recovery not achieved ($id): page the on-call now" ;;
  5) echo "guardrail: locked by another rollout of this service; retry later" ;;
  *) echo "guardrail: unexpected exit code $code" ;;
esac

if [ -n "${ARTIFACT_URL:-}" ]; then
  for file in "$artifacts"/*; do
    [ -f "$file" ] || continue
    curl --fail --silent --show-error --upload-file "$file" "$ARTIFACT_URL/${id:-no-rollout}/$(basename "$file")" \
      || echo "guardrail: could not upload $file" >&2
  done
fi
exit $code
