"""The value types a plugin's ``Settings`` model uses, as the language does: a
``Duration`` (``"30s"`` in YAML, seconds in Python) and a ``Template`` (text whose
``{{placeholders}}`` are checked when the plan is validated)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from guardrail.plugin.templates import check_template
from guardrail.text import DURATION_PATTERN, format_duration, parse_duration

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["30s", "5m", "2h", "1d"]}),
]

Template = Annotated[str, BeforeValidator(lambda v: check_template(v) if isinstance(v, str) else v)]
