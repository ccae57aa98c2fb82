"""Query parameters of the JSON API: parsed strictly, a bad one is a 400 with its reason.

Bounds (documented in docs/limits.md): integers are decimal digits within the stated range;
``since``/``until`` take what the CLI's ``--since`` takes, back to 1677-09-22 (the range of
the store's int64 nanosecond times; later or earlier ISO times select what the bound would).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime

from starlette.requests import Request

from agentos_obs.store import InvalidQuery, parse_when

__all__ = ["BadRequest", "choice_param", "int_param", "number_param", "text_param", "time_param"]

_INTEGER = re.compile(r"^\s*\d{1,20}\s*$")
_MAX_TEXT = 1000  # characters of a filter value (a search string, a model name)


class BadRequest(ValueError):
    """A query parameter the API cannot use: answered with 400 ``{"error": ...}``."""


def time_param(request: Request, name: str) -> datetime | None:
    value = request.query_params.get(name)
    if not value:
        return None
    try:
        return parse_when(value)
    except InvalidQuery as exc:
        raise BadRequest(f"{name}: {exc}") from None


def number_param(request: Request, name: str, *, minimum: float = 0.0) -> float | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise BadRequest(f"{name} must be a number, got {value[:40]!r}") from None
    if not math.isfinite(number) or number < minimum:
        raise BadRequest(f"{name} must be a finite number >= {minimum:g}")
    return number


def int_param(request: Request, name: str, default: int, minimum: int, maximum: int) -> int:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    if not _INTEGER.match(value) or not minimum <= int(value) <= maximum:
        raise BadRequest(f"{name} must be an integer from {minimum:,} to {maximum:,}")
    return int(value)


def choice_param(
    request: Request, name: str, choices: Sequence[str], default: str | None
) -> str | None:
    value = request.query_params.get(name) or default
    if value is not None and value not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(choices)}")
    return value


def text_param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and len(value) > _MAX_TEXT:
        raise BadRequest(f"{name} must be at most {_MAX_TEXT:,} characters")
    return value
