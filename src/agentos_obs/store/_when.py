"""Time bounds of read queries: the ``since``/``until`` words the CLI and the dashboard both
take, and the range a stored time can have (epoch nanoseconds in a signed 64-bit integer)."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

from agentos_obs.store._errors import InvalidQuery

__all__ = ["EARLIEST", "LATEST", "clamp_time", "parse_when"]

# The times an int64 of epoch nanoseconds can hold (1677-09-21 to 2262-04-11), one day in.
EARLIEST = datetime(1677, 9, 22, tzinfo=timezone.utc)
LATEST = datetime(2262, 4, 10, tzinfo=timezone.utc)

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d|day|days|w|wk)\s*$", re.I)
_UNIT_SECONDS = {
    "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600,
    "d": 86400, "day": 86400, "days": 86400, "w": 604800, "wk": 604800,
}  # fmt: skip
_HELP = "use e.g. 30m, 24h, 7d, 2w, today, 2025-01-31 or 2025-01-31T12:00"


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """``30m``/``24h``/``7d``/``2w`` ago, ``today``, ``yesterday``, or an ISO date/time
    (UTC when it has no zone). Raises :class:`InvalidQuery` with a one-line reason."""
    now = now or datetime.now(timezone.utc)
    value = text.strip()
    match = _RELATIVE.match(value)
    if match:
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
        limit = (now - EARLIEST).total_seconds()
        if not math.isfinite(seconds) or seconds > limit:
            raise InvalidQuery(
                f"invalid time {text!r}: reaches back before {EARLIEST:%Y-%m-%d}, the earliest "
                f"time the store can hold (at most {int(limit // 86400):,} days)"
            )
        return now - timedelta(seconds=seconds)
    if value.lower() in ("today", "yesterday"):
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return day if value.lower() == "today" else day - timedelta(days=1)
    try:
        parsed = datetime.fromisoformat(
            value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        )
    except ValueError:
        raise InvalidQuery(f"invalid time {text!r}: {_HELP}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def clamp_time(moment: datetime | None) -> datetime | None:
    """``moment`` moved into the range a stored time can have: a bound before the first
    possible time (or after the last) selects the same rows as that time does."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if moment < EARLIEST:
        return EARLIEST
    if moment > LATEST:
        return LATEST
    return moment
