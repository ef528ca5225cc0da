"""A deploy program that fails and prints its arguments (one of them a secret from
``${env:...}``) to stderr, which guardrail keeps as the step's detail: the redaction
test checks that the secret never reaches the state file, the journal or the output."""

import sys

print(f"deploy failed with arguments {sys.argv[1:]}", file=sys.stderr)
sys.exit(1)
