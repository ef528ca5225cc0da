"""``{{name}}`` templates: the names a text uses, and filling them with each value
escaped for where it lands (a PromQL string, an argv element, a URL). Plugins that
render templates of their own use these, as the engine does."""

from __future__ import annotations

import inspect
import re
from typing import Any, Callable
from urllib.parse import quote

_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_BROKEN_TEMPLATE = re.compile(r"\{\{(?!\s*[A-Za-z_][A-Za-z0-9_]*\s*\}\})")
BUILTIN_TEMPLATE_NAMES = frozenset({"region", "version", "previous", "service", "idempotency_key", "rollout_id"})


def template_names(text: str) -> list[str]:
    """The ``{{name}}`` placeholders in ``text``, in order."""
    return _TEMPLATE.findall(text)


def check_template(text: str) -> str:
    """Reject ``{{ bad name`` and friends early, where the author can see them."""
    if _BROKEN_TEMPLATE.search(text):
        raise ValueError(f"malformed template in {text!r}: placeholders look like {{{{region}}}}")
    return text


def _verbatim(value: str) -> str:
    return value


def _takes_before(escape: Callable[..., str]) -> bool:
    """Whether ``escape`` declares a ``before`` parameter (matched by name, as pluggy
    matches hook arguments): it then learns where each value lands."""
    try:
        return "before" in inspect.signature(escape).parameters
    except (TypeError, ValueError):  # a callable without a readable signature takes the value only
        return False


def render(text: str, variables: dict[str, Any], escape: Callable[..., str] = _verbatim) -> str:
    """Fill ``{{name}}`` placeholders; each value goes through ``escape`` for where it lands.

    ``escape(value)`` gets the value as text, a list's items joined with commas. An escape
    that declares a ``before`` parameter is called ``escape(value, before=...)`` with the
    template text preceding the placeholder, so it can tell one place from another (a
    PromQL regex matcher from a plain string), and gets a list as a list of strings, to
    join in the way that place reads it."""
    contextual = _takes_before(escape)

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise KeyError(name)
        value = variables[name]
        if contextual:
            items = [str(v) for v in value] if isinstance(value, (list, tuple)) else str(value)
            return escape(items, before=text[:match.start()])
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        return escape(str(value))

    return _TEMPLATE.sub(fill, text)



_HOST = re.compile(r"^[A-Za-z0-9._-]*$")


def url_segment(value: str) -> str:
    """``value`` as one piece of a URL path or query: every character that means something
    in a URL (``/ ? & = # % +``, spaces...) percent-encoded, and a value of only dots
    (``..``) too, so that it cannot climb out of its folder."""
    if value and not value.strip("."):
        return value.replace(".", "%2E")
    return quote(value, safe="")


def escape_url(value: str | list[str], before: str = "") -> str:
    """A template value escaped for where it lands in a URL (``before`` is the template
    text preceding it): in the path a path segment, in the query a query value, in the
    fragment a fragment, each percent-encoded so that it cannot add a segment, a
    parameter or a fragment; a list is its items so encoded, joined by commas. In the host
    name only letters, digits, ``.``, ``-`` and ``_`` are accepted (ValueError otherwise):
    no encoding makes another character part of a host."""
    if isinstance(value, (list, tuple)):
        return ",".join(escape_url(str(v), before) for v in value)
    scheme = before.find("://")
    if scheme >= 0 and not re.search(r"[/?#]", before[scheme + 3:]):  # still in the host (or port)
        if not _HOST.match(value):
            raise ValueError(f"{value!r} cannot be filled into the host name of a URL")
        return value
    return url_segment(value)


def render_value(value: Any, variables: dict[str, Any], escape: Callable[..., str] = _verbatim) -> Any:
    """Render templates inside strings, lists and mappings. A string that is exactly one
    placeholder takes the variable's own value, so ``targets: "{{smtp_hosts}}"`` is a list
    (each item escaped on its own, as a value with nothing before it)."""
    if isinstance(value, str):
        whole = _TEMPLATE.fullmatch(value.strip())
        if whole and whole.group(1) in variables and isinstance(variables[whole.group(1)], (list, tuple)):
            one = (lambda v: escape(v, before="")) if _takes_before(escape) else escape
            return [one(str(v)) for v in variables[whole.group(1)]]
        return render(value, variables, escape)
    if isinstance(value, list):
        return [render_value(v, variables, escape) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, variables, escape) for k, v in value.items()}
    return value
