"""One-shot uses of the same pieces as a rollout: guardrail check, backtest, live validation and policy unit tests. Imports the procedure and everything below it."""
