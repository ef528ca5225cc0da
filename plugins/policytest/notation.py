"""The compact series notation of policy tests (``promtool test rules``'s, on purpose).

Why promtool's: policy authors who write Prometheus alerting rules already read it,
and a test's inputs stay one line per series however long the bake is.

========  =================================================================
``7``     one sample
``_``     one missing sample (a scrape gap)
``a+bxn`` n+1 samples a, a+b, a+2b, ..., a+nb (``a-bxn`` counts down)
``axn``   n+1 samples of a (as ``a+0xn``)
``_xn``   n missing samples
========  =================================================================

Numbers may be signed, decimal, in exponent form, ``Inf`` or ``NaN``. Samples are
``step`` apart from t = 0. ``stale`` (promtool's staleness marker) is not supported:
the sim's evaluator has no staleness markers, so a gap is what a missing scrape is.
"""

from __future__ import annotations

import re

MAX_SAMPLES = 200_000
"""Per series: a typo like ``0x9999999999`` must be an error, not a frozen machine."""

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?Inf|NaN"
_UNSIGNED = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_TOKEN = re.compile(
    rf"^(?:(?P<gap>_)(?:x(?P<gaps>\d+))?"
    rf"|(?P<start>{_NUMBER})(?:(?P<op>[+-])(?P<delta>{_UNSIGNED}))?x(?P<times>\d+)"
    rf"|(?P<one>{_NUMBER}))$"
)


def expand(text: str | int | float) -> list[float | None]:
    """The samples a notation stands for; ``None`` is a missing sample.

    Raises ``ValueError`` naming the token that cannot be read."""
    if isinstance(text, bool):
        raise ValueError(f"expected series notation like \"0+1x30\" or \"5x20 _x3 5x10\", got {text!r}")
    if isinstance(text, (int, float)):
        return [float(text)]
    out: list[float | None] = []
    tokens = str(text).split()
    if not tokens:
        raise ValueError("empty series: write at least one sample, e.g. \"0x30\"")
    for position, token in enumerate(tokens, start=1):
        match = _TOKEN.match(token)
        if match is None:
            hint = ("staleness markers are not supported; write _ for a missing sample" if token == "stale"
                    else "expected a number, _, a+bxn, a-bxn, axn or _xn")
            raise ValueError(f"token {position} {token!r}: {hint}")
        if match["gap"]:
            count = int(match["gaps"]) if match["gaps"] is not None else 1
            _room(out, count, token)
            out.extend([None] * count)
        elif match["one"] is not None:
            _room(out, 1, token)
            out.append(float(match["one"]))
        else:
            start, times = float(match["start"]), int(match["times"])
            delta = float(match["delta"] or 0.0) * (-1 if match["op"] == "-" else 1)
            _room(out, times + 1, token)
            out.extend(start + i * delta for i in range(times + 1))
    return out


def _room(out: list, count: int, token: str) -> None:
    if len(out) + count > MAX_SAMPLES:
        raise ValueError(f"{token!r} makes the series longer than {MAX_SAMPLES} samples")


def compact(values: list[float | None]) -> str:
    """The shortest notation of ``values`` built from runs (for messages)."""
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        value = values[i]
        text = "_" if value is None else f"{value:g}"
        count = j - i + 1
        if value is None:
            parts.append("_" if count == 1 else f"_x{count}")
        else:
            parts.append(text if count == 1 else f"{text}x{count - 1}")
        i = j + 1
    return " ".join(parts)
