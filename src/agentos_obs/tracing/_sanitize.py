"""Sanitising for the seal: every name and attribute value made JSON-safe, credentials
scrubbed, by one set of rules (valid UTF-8, int64, no NaN; anything else becomes JSON text
through the one serialiser)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Any

from agentos_obs._internal.guard import count_drop
from agentos_obs._internal.jsonsafe import INT64_MAX, INT64_MIN, dumps, safe_text
from agentos_obs._internal.redact import REDACTED, is_secret_key, scrub

__all__ = ["EMPTY", "AttributeValue", "clean_text", "sanitize_attributes", "sanitize_value"]

AttributeValue = str | bool | int | float | tuple[str, ...] | tuple[int, ...] | tuple[float, ...]
EMPTY: Mapping[str, Any] = MappingProxyType({})
_SCALARS = frozenset({str, bool, int, float})


def clean_text(value: Any) -> str:
    """``value`` as valid UTF-8 text with credentials scrubbed."""
    text = value if type(value) is str else str(value)
    if len(text) < 8 and text.isascii():  # too short for any credential shape
        return text
    return scrub(safe_text(text))


def sanitize_value(key: str, value: Any) -> AttributeValue | None:
    """One attribute value as a JSON-safe scalar or homogeneous tuple, credentials scrubbed.

    None for None (dropped). Mappings, mixed lists and objects become JSON text.
    """
    kind = type(value)
    if kind is str:
        return clean_text(value)
    if kind is bool:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return value if INT64_MIN <= value <= INT64_MAX else str(value)  # type: ignore[no-any-return]
    if kind is float:
        return value if math.isfinite(value) else dumps(value).strip('"')  # type: ignore[no-any-return]
    if value is None:
        return None
    if isinstance(value, Enum):
        return sanitize_value(key, value.value)
    if isinstance(value, (list, tuple)):
        if not value:
            return ()
        if all(type(v) in _SCALARS for v in value):  # nested containers go to JSON below
            items = [sanitize_value(key, v) for v in value]
            kinds = {type(i) for i in items}
            if len(kinds) == 1 and kinds != {type(None)}:
                return tuple(items)  # type: ignore[return-value]
            if kinds <= {int, float}:
                return tuple(float(i) for i in items)  # type: ignore[arg-type]
    if isinstance(value, bool):  # subclasses of the scalar types (not Enum, handled above)
        return bool(value)
    if isinstance(value, int):
        return sanitize_value(key, int(value))
    if isinstance(value, float):
        return sanitize_value(key, float(value))
    if isinstance(value, str):
        return clean_text(str(value))
    return dumps(value, redact=True)


def sanitize_attributes(attributes: Mapping[str, Any]) -> Mapping[str, AttributeValue]:
    """A read-only, sanitised copy: keys as text, values by :func:`sanitize_value`, the
    values of credential-named keys replaced."""
    out: dict[str, AttributeValue] = {}
    try:
        items = list(attributes.items())
    except Exception:  # a mapping whose items() fails: keep nothing rather than raise
        count_drop("seal.attributes", reason="attributes could not be read")
        return EMPTY
    for key, value in items:
        name = key if type(key) is str else str(key)
        name = safe_text(name)
        if is_secret_key(name) and value is not None:
            out[name] = REDACTED
            continue
        clean = sanitize_value(name, value)
        if clean is not None:
            out[name] = clean
    return MappingProxyType(out)
