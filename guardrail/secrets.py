"""Keep secrets out of everything guardrail writes.

Values resolved from ``${env:NAME}`` are collected by the loader; the ``Redactor``
replaces them wherever they would be stored, logged or sent in a message body.
"""

from __future__ import annotations

from typing import Any

MASK = "***"


class Redactor:
    def __init__(self, secrets: set[str] | None = None):
        # Very short values would mask ordinary words; they are not secrets worth the name.
        self._secrets = sorted((s for s in (secrets or set()) if len(s) >= 4), key=len, reverse=True)

    def add(self, secrets: set[str]) -> None:
        self._secrets = sorted(set(self._secrets) | {s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    @property
    def active(self) -> bool:
        """Whether there is anything to redact."""
        return bool(self._secrets)

    def redact(self, value: Any) -> Any:
        if not self._secrets or value is None:
            return value
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, MASK)
            return value
        if isinstance(value, dict):
            return {k: self.redact(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.redact(v) for v in value]
        return value
