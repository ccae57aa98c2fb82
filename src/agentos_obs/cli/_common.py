"""Shared pieces of the ``agentos-obs`` command: errors, argument parsers, output helpers.

Argument parsers raise ``argparse.ArgumentTypeError`` so argparse reports them with exit
code 2; runtime problems raise :class:`CLIError` (exit code 1, one line, no traceback).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = [
    "FORMATS_LIST",
    "CLIError",
    "console",
    "parse_duration_ms",
    "parse_non_negative",
    "parse_non_negative_int",
    "parse_port",
    "parse_positive_int",
    "parse_time",
    "require_extra",
    "write_csv",
    "write_json",
]

FORMATS_LIST = ("table", "json", "csv")

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d|day|days|w|wk)\s*$", re.I)
_UNIT_SECONDS = {
    "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600,
    "d": 86400, "day": 86400, "days": 86400, "w": 604800, "wk": 604800,
}  # fmt: skip
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$", re.I)


class CLIError(Exception):
    """A problem to report in one line on stderr, ending the command with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# -- argument types (ArgumentTypeError -> argparse exits with 2) ------------------------------
def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """``30m``/``24h``/``7d``/``2w`` ago, ``today``, or an ISO date/time (UTC when naive)."""
    now = now or datetime.now(timezone.utc)
    value = text.strip()
    match = _RELATIVE.match(value)
    if match:
        amount = float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
        return now - timedelta(seconds=amount)
    if value.lower() == "today":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if value.lower() == "yesterday":
        return now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    try:
        parsed = datetime.fromisoformat(
            value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        )
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}: use e.g. 30m, 24h, 7d, 2w, today, 2025-01-31 or "
            "2025-01-31T12:00"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def parse_duration_ms(text: str) -> float:
    """``500ms``, ``2s``, ``1.5m``, ``1h`` or a bare number of milliseconds."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: use e.g. 500ms, 2s or 250")
    value = float(match.group(1))
    unit = (match.group(2) or "ms").lower()
    return value * {"ms": 1.0, "s": 1e3, "m": 6e4, "min": 6e4, "h": 3.6e6}[unit]


def parse_non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _int(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value


def parse_positive_int(text: str) -> int:
    return _int(text, 1)


def parse_non_negative_int(text: str) -> int:
    return _int(text, 0)


def parse_port(text: str) -> int:
    value = _int(text, 0)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {value}")
    return value


# -- optional extras ------------------------------------------------------------------------
def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent that fails to import; a None in sys.modules
        return False


def require_extra(what: str, extra: str, modules: Sequence[str]) -> None:
    """A CLIError (one line, exit 1) naming the extra when one of ``modules`` is missing."""
    missing = [module for module in modules if not _importable(module)]
    if missing:
        raise CLIError(f"{what} needs {' and '.join(missing)}: pip install 'agentos-obs[{extra}]'")


# -- output -----------------------------------------------------------------------------------
def console(*, stderr: bool = False) -> Any:
    """A rich Console, or a CLIError naming the extra to install."""
    try:
        from rich.console import Console
    except ImportError:
        raise CLIError(
            "this output needs the 'rich' package: pip install 'agentos-obs[cli]' "
            "(or use --format json)"
        ) from None
    stream = sys.stderr if stderr else sys.stdout
    # Piped or captured output has no terminal to fit: use a wide fixed width rather than
    # rich's 80 columns, so tables are not squeezed into folded cells.
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 160
    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=width)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def write_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=_jsonable, ensure_ascii=False) + "\n")


def write_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    sys.stdout.write(buffer.getvalue())
