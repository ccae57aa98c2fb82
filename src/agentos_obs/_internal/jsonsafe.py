"""JSON-safe values and the one serialiser every sink uses.

Anything an app hands us (attribute values, log fields, captured content) is made safe to
write to SQLite, a JSON file, an OTLP payload or a web page:

* text is valid UTF-8: lone surrogates (what a file name read with ``surrogateescape``
  gives) become U+FFFD;
* integers fit in int64 (larger ones become their decimal text);
* NaN and infinities become ``"NaN"``, ``"Infinity"``, ``"-Infinity"``;
* datetimes become ISO-8601, bytes text, sets lists, exceptions ``"Type: message"``;
* cycles become ``"<circular>"``, nesting deeper than 12 levels ``"<too deep>"``; anything
  else becomes its (bounded) repr;
* with ``redact=True``, mapping values under credential-like keys and credential-shaped
  text are replaced (see :mod:`agentos_obs._internal.redact`).

:func:`dumps` never raises and always returns strict JSON (``allow_nan=False``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any
from uuid import UUID

from agentos_obs._internal.redact import REDACTED, is_secret_key, scrub

__all__ = ["INT64_MAX", "INT64_MIN", "dumps", "safe_text", "to_jsonable"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_MAX_DEPTH = 12
_MAX_REPR = 2000
_SURROGATE = re.compile("[\ud800-\udfff]")
_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}
_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def safe_text(text: str) -> str:
    """``text`` as valid UTF-8: lone surrogates replaced by U+FFFD (one for one)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def to_jsonable(value: Any, *, redact: bool = False) -> Any:
    """``value`` as something ``json.dumps(allow_nan=False)`` accepts (see module doc)."""
    return _jsonable(value, set(), 0, redact)


def dumps(value: Any, *, redact: bool = False) -> str:
    """Strict JSON text of ``value``, whatever it is, on one line; never raises.

    U+0085, U+2028 and U+2029 are escaped too: JSON allows them raw, but they end a line
    for ``str.splitlines`` and JavaScript, which would split a JSONL record in two.
    """
    try:
        text = _encode(_jsonable(value, set(), 0, redact))
    except Exception:  # pragma: no cover - _jsonable leaves nothing the encoder rejects
        text = _encode(_safe_repr(value))
    if not text.isascii():
        text = text.translate(_LINE_BREAKS)
    return text


def _jsonable(value: Any, seen: set[int], depth: int, redact: bool) -> Any:
    kind = type(value)
    if kind is str:
        text = safe_text(value)
        return scrub(text) if redact else text
    if kind is bool or value is None:
        return value
    if kind is int:
        return value if INT64_MIN <= value <= INT64_MAX else str(value)
    if kind is float:
        return value if math.isfinite(value) else _non_finite(value)
    if isinstance(value, Enum):
        return _jsonable(value.value, seen, depth, redact)
    if isinstance(value, (datetime, date, dt_time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _jsonable(bytes(value).decode("utf-8", "backslashreplace"), seen, depth, redact)
    if isinstance(value, (Decimal, UUID, PurePath)):
        return _jsonable(str(value), seen, depth, redact)
    if isinstance(value, BaseException):
        text = _safe_str(value)
        out = f"{type(value).__qualname__}: {text}" if text else type(value).__qualname__
        return _jsonable(out, seen, depth, redact)
    if type(value).__name__ in ("SecretStr", "SecretBytes"):
        return REDACTED
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return _jsonable(int(value), seen, depth, redact)
    if isinstance(value, float):
        return _jsonable(float(value), seen, depth, redact)
    if isinstance(value, str):
        return _jsonable(str(value), seen, depth, redact)
    if isinstance(value, (Mapping, list, tuple, set, frozenset)):
        if depth >= _MAX_DEPTH:
            return "<too deep>"
        marker = id(value)
        if marker in seen:
            return "<circular>"
        seen.add(marker)
        try:
            if isinstance(value, Mapping):
                out_map: dict[str, Any] = {}
                for k, v in list(value.items()):
                    key = _key(k)
                    out_map[key] = (
                        REDACTED
                        if redact and is_secret_key(key)
                        else _jsonable(v, seen, depth + 1, redact)
                    )
                return out_map
            items = list(value)
            if isinstance(value, (set, frozenset)):
                items = _sorted(items)
            return [_jsonable(item, seen, depth + 1, redact) for item in items]
        finally:
            seen.discard(marker)
    return _jsonable(_safe_repr(value), seen, depth, redact)


def _non_finite(value: float) -> str:
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _key(key: Any) -> str:
    if isinstance(key, str):
        return safe_text(str(key))
    if key is None or isinstance(key, (bool, int, float)):
        if isinstance(key, float) and not math.isfinite(key):
            return _non_finite(key)
        return json.dumps(key)
    converted = _jsonable(key, set(), 0, False)  # datetime, Enum, UUID... keys become text
    return converted if isinstance(converted, str) else _safe_repr(key)


def _sorted(items: list[Any]) -> list[Any]:
    try:
        return sorted(items)
    except Exception:  # mixed types: any stable order will do
        return sorted(items, key=_safe_repr)


def _safe_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__qualname__}>"
    text = safe_text(text)
    return text if len(text) <= _MAX_REPR else text[:_MAX_REPR] + "…"


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return _safe_repr(value)
