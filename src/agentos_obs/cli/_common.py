"""Shared pieces of the ``agentos-obs`` command: errors, argument parsers, output helpers.

Argument parsers raise ``argparse.ArgumentTypeError`` so argparse reports them with exit
code 2 (in one line, see ``OneLineParser``); runtime problems raise :class:`CLIError` (exit
code 1 unless it says otherwise, one line, no traceback).

Everything printed passes through :func:`terminal_safe` (tables, trees, CSV, error lines)
or is JSON with every control character escaped (:func:`write_json`): recorded data (a span
name, an error message) can never set a window title, clear the screen or reorder text.
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
from datetime import datetime
from typing import Any, NoReturn

__all__ = [
    "FORMATS_LIST",
    "MAX_LIMIT",
    "MAX_OFFSET",
    "CLIError",
    "OneLineParser",
    "console",
    "json_text",
    "parse_count",
    "parse_duration_ms",
    "parse_limit",
    "parse_non_negative",
    "parse_offset",
    "parse_port",
    "parse_time",
    "require_extra",
    "terminal_safe",
    "write_csv",
    "write_json",
]

FORMATS_LIST = ("table", "json", "csv")
MAX_LIMIT = 10_000  # rows one command prints
MAX_OFFSET = 1_000_000_000

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$", re.I)
# C0 and C1 controls, DEL, and the invisible marks that reorder text (bidi overrides,
# isolates, line/paragraph separators): what a terminal or a viewer would act on.
_MARKS = "\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f{_MARKS}]")
# In JSON text, json.dumps has escaped C0 inside strings (outside them C0 is layout).
_JSON_UNSAFE = re.compile(f"[{_MARKS}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


class CLIError(Exception):
    """A problem to report in one line on stderr, ending the command with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit code 2), not the usage
    text first: the line says what was wrong and where the help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {terminal_safe(message)} (see {self.prog} --help)\n")


def terminal_safe(text: str) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``, ``\\n``,
    ``\\u202e``), so printing it cannot drive the terminal."""
    if text.isprintable():
        return text
    return _UNSAFE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# -- argument types (ArgumentTypeError -> argparse exits with 2) ------------------------------
def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """``30m``/``24h``/``7d``/``2w`` ago, ``today``, or an ISO date/time (UTC when naive)."""
    # Imported here: `agentos-obs --help` should not load the store.
    from agentos_obs.store import InvalidQuery, parse_when

    try:
        return parse_when(text, now=now)
    except InvalidQuery as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_duration_ms(text: str) -> float:
    """``500ms``, ``2s``, ``1.5m``, ``1h`` or a bare number of milliseconds."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: use e.g. 500ms, 2s or 250")
    value = float(match.group(1))
    unit = (match.group(2) or "ms").lower()
    result = value * {"ms": 1.0, "s": 1e3, "m": 6e4, "min": 6e4, "h": 3.6e6}[unit]
    if not math.isfinite(result):
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: too large")
    return result


def parse_non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _int(text: str, minimum: int, maximum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not minimum <= value <= maximum:
        raise argparse.ArgumentTypeError(f"must be {minimum:,} to {maximum:,}, got {text}")
    return value


def parse_limit(text: str) -> int:
    """A row count: 1 to :data:`MAX_LIMIT`."""
    return _int(text, 1, MAX_LIMIT)


def parse_count(text: str) -> int:
    """A number of traces to export: 1 to :data:`MAX_OFFSET`."""
    return _int(text, 1, MAX_OFFSET)


def parse_offset(text: str) -> int:
    """Rows to skip: 0 to :data:`MAX_OFFSET`."""
    return _int(text, 0, MAX_OFFSET)


def parse_port(text: str) -> int:
    return _int(text, 0, 65535)


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


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def json_text(data: Any, *, indent: int | None = None) -> str:
    """JSON of ``data`` for a terminal or a pipe: non-ASCII text kept, but every control
    character escaped (json escapes C0 only; DEL, C1 and bidi marks are escaped here, which
    is the same JSON value)."""
    separators = None if indent else (",", ":")
    text = json.dumps(
        data, indent=indent, default=_jsonable, ensure_ascii=False, separators=separators
    )
    return _JSON_UNSAFE.sub(_json_escape, text)


def write_json(data: Any) -> None:
    sys.stdout.write(json_text(data, indent=2) + "\n")


def write_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})
    sys.stdout.write(buffer.getvalue())


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    return terminal_safe(value) if isinstance(value, str) else value
