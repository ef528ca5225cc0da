"""Keep secrets out of everything guardrail writes.

Values resolved from ``${env:NAME}`` are collected by the loader; the ``Redactor``
replaces them wherever they would be stored, logged or sent in a message body.

A secret rarely travels as itself only. A template fills it into a URL
percent-encoded (``%2F``, or ``%252F`` once a GitHub annotation encodes it again), a
JSON document escapes its quotes and non-ASCII letters, an HTML page its ``&``, and
HTTP basic auth sends ``user:secret`` in base64, which a server may echo back in an
error body. The redactor knows each of these forms:

- each character of a secret may appear as itself, percent-encoded (once or twice, in
  either case, ``+`` for a space), JSON-escaped (``\\"``, ``\\u00e9``) or as an HTML
  entity, in any mixture: one pattern per secret matches them all;
- base64: the part of ``base64(anything + secret + anything)`` that only the secret
  determines, at each of the three alignments, standard and URL-safe alphabets;
- ``Basic <base64>`` credentials are decoded, and masked whole when they hold a secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

MASK = "***"
MIN_LENGTH = 4
"""Very short values would mask ordinary words; they are not secrets worth the name."""
_MIN_BASE64_CORE = 8
"""A shorter run of base64 characters could occur by chance in other base64 text."""
_ENCODED_HINT = re.compile(r"[%\\&+]")
_BASIC = re.compile(r"\b(basic)(\s+)([A-Za-z0-9+/_-]{4,}={0,2})", re.IGNORECASE)
_HTML = {"&": ("&amp;", "&#38;", "&#x26;"), "<": ("&lt;", "&#60;", "&#x3c;"), ">": ("&gt;", "&#62;", "&#x3e;"),
         '"': ("&quot;", "&#34;", "&#x22;"), "'": ("&#x27;", "&#39;", "&apos;")}
_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _hex(text: str) -> str:
    """A pattern for hex digits in either case."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in text)


def _char(c: str) -> str:
    """Every form one character of a secret takes in the encodings above."""
    forms = [re.escape(c), "".join(f"%(?:25)?{_hex(f'{b:02X}')}" for b in c.encode())]
    if c == " ":
        forms.append(r"\+")
    if c in _JSON_SHORT:
        forms.append(re.escape(_JSON_SHORT[c]))
    if ord(c) < 0x10000:
        forms.append(r"\\u" + _hex(f"{ord(c):04X}"))
    else:  # a surrogate pair in JSON
        high, low = divmod(ord(c) - 0x10000, 0x400)
        forms.append(r"\\u" + _hex(f"{0xD800 + high:04X}") + r"\\u" + _hex(f"{0xDC00 + low:04X}"))
    forms += [re.escape(entity) for entity in _HTML.get(c, ())]
    return "(?:" + "|".join(forms) + ")"


def encoded_pattern(secret: str) -> str:
    """A regular expression matching ``secret`` in any mixture of the encodings above."""
    return "".join(_char(c) for c in secret)


def base64_cores(secret: str) -> set[str]:
    """The base64 text that only ``secret`` determines, wherever it sits in an encoded
    value (each of the 3 byte alignments), in the standard and URL-safe alphabets."""
    data = secret.encode()
    cores = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data + b"\0\0").decode()
        start = -(-8 * offset // 6)  # the first character made of the secret's bits only
        end = 8 * (offset + len(data)) // 6
        core = encoded[start:end]
        if len(core) >= _MIN_BASE64_CORE:
            cores.add(core)
            cores.add(core.replace("+", "-").replace("/", "_"))
    return cores


class Redactor:
    def __init__(self, secrets: set[str] | None = None):
        self._secrets: list[str] = []
        self._literals: list[str] = []
        self._encoded: re.Pattern[str] | None = None
        self.add(set(secrets or ()))

    def add(self, secrets: set[str]) -> None:
        merged = set(self._secrets) | {s for s in secrets if len(s) >= MIN_LENGTH}
        self._secrets = sorted(merged, key=len, reverse=True)
        literals = set(merged)
        for secret in merged:
            literals |= base64_cores(secret)
            literals.add(json.dumps(secret)[1:-1])  # the common escapes, without a regex
            literals.add(repr(secret)[1:-1])  # what a message built with {value!r} holds
        self._literals = sorted(literals, key=len, reverse=True)
        self._encoded = re.compile("|".join(encoded_pattern(s) for s in self._secrets)) if merged else None

    @property
    def active(self) -> bool:
        """Whether there is anything to redact."""
        return bool(self._secrets)

    def redact(self, value: Any) -> Any:
        if not self._secrets or value is None:
            return value
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, dict):
            return {k: self.redact(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.redact(v) for v in value]
        return value

    def _text(self, value: str) -> str:
        if "asic" in value or "ASIC" in value:  # cheap test before the regex: "Basic", any case
            value = _BASIC.sub(self._basic, value)
        for literal in self._literals:
            if literal in value:
                value = value.replace(literal, MASK)
        if self._encoded is not None and _ENCODED_HINT.search(value):
            value = self._encoded.sub(MASK, value)
        return value

    def _basic(self, match: re.Match[str]) -> str:
        """``Basic dXNlcjpzZWNyZXQ=``: masked whole when the decoded credentials hold a secret."""
        token = match.group(3)
        try:
            decoded = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_" if "-" in token or "_" in token
                                       else None).decode("utf-8", errors="replace")
        except (binascii.Error, ValueError):
            return match.group()
        if any(secret in decoded for secret in self._secrets):
            return f"{match.group(1)}{match.group(2)}{MASK}"
        return match.group()
