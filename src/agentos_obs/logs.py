"""Structured JSON logs that carry the current trace and span ids.

Two ways in:

* :class:`StructuredLogger` — the prototype's API (``logger.info("msg", key=value)``): each
  entry is a JSON-safe dict handed to handlers (``JSONLinesHandler`` writes JSON lines).
* The stdlib bridge — :func:`correlate_logging` installs, on any ``logging.Logger``, a
  handler with :class:`TraceContextFilter` (``record.trace_id`` / ``record.span_id``) and
  :class:`JSONFormatter`, so the app's existing ``logging`` calls join their traces.

Ids come from the ambient context (``contextvars``), so they are right per asyncio task and
per thread started with a copied context. Neither path ever raises into the app: a failing
handler is reported through ``_guard`` (counted, logged once) and the others still run;
values that JSON cannot encode are converted, never rejected.

Neither path lets a secret through: fields whose name is a credential (``api_key=``,
``authorization=``, ``password=``…) are replaced by ``[REDACTED]``, and credential-shaped
text (``sk-…`` keys, ``Bearer …`` tokens, ``?key=…`` in URLs, ``secret=…`` pairs) is
replaced in messages, field values and tracebacks — by the one redactor every sink uses.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from enum import Enum
from typing import IO, TYPE_CHECKING, Any

import agentos_obs._internal.guard as _guard
from agentos_obs._internal.jsonsafe import INT64_MAX, INT64_MIN, dumps, safe_text, to_jsonable
from agentos_obs._internal.redact import REDACTED, is_secret_key, scrub
from agentos_obs.errors import ConfigurationError
from agentos_obs.tracing._tracer import current_span, current_trace

if TYPE_CHECKING:
    from agentos_obs.tracing._tracer import Tracer

__all__ = [
    "CorrelatedStreamHandler",
    "JSONFormatter",
    "JSONLinesHandler",
    "LogHandler",
    "LogLevel",
    "RedactingFormatter",
    "StructuredLogger",
    "TraceContextFilter",
    "correlate_logging",
    "entry_to_json",
    "to_jsonable",
]

LogHandler = Callable[[dict[str, Any]], Any]


class LogLevel(str, Enum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def severity(self) -> int:
        """The stdlib ``logging`` number (DEBUG 10 ... CRITICAL 50): the filtering order."""
        return _SEVERITY[self]

    @classmethod
    def coerce(cls, level: LogLevel | str | int) -> LogLevel:
        """A LogLevel from itself, a name ("warning", "WARN", "fatal") or a stdlib number."""
        if isinstance(level, LogLevel):
            return level
        if isinstance(level, str):
            found = _BY_NAME.get(level.strip().lower())
            if found is not None:
                return found
        elif isinstance(level, int) and not isinstance(level, bool):
            # The highest level at or below the number: logging.WARNING + 5 is a warning.
            at_or_below = [lv for lv in cls if lv.severity <= level]
            return at_or_below[-1] if at_or_below else cls.DEBUG
        raise ConfigurationError(
            f"unknown log level {level!r}: use one of {[lv.value for lv in cls]} or a "
            "logging level number"
        )


_SEVERITY = {
    LogLevel.DEBUG: logging.DEBUG,
    LogLevel.INFO: logging.INFO,
    LogLevel.WARNING: logging.WARNING,
    LogLevel.ERROR: logging.ERROR,
    LogLevel.CRITICAL: logging.CRITICAL,
}
_BY_NAME = {lv.value: lv for lv in LogLevel} | {
    "warn": LogLevel.WARNING,
    "fatal": LogLevel.CRITICAL,
}


# -- JSON safety and redaction ----------------------------------------------------------
#
# Both paths build entries the same way: values made JSON-safe by the one serialiser
# (agentos_obs._internal.jsonsafe), secrets replaced by the one redactor
# (agentos_obs._internal.redact) — by key name (a field named ``api_key``, ``authorization``,
# ``password``…) and by shape inside any text (``sk-…`` keys, ``Bearer …``, ``?key=…`` in
# URLs, ``password=…`` pairs), in the message, the fields and the exception text.


# Field names repeat from call to call: remember the redactor's verdict (bounded).
_secret_names: dict[str, bool] = {}
_MAX_REMEMBERED = 4096


def _is_secret_name(key: str) -> bool:
    verdict = _secret_names.get(key)
    if verdict is None:
        verdict = is_secret_key(key)
        if len(_secret_names) < _MAX_REMEMBERED:
            _secret_names[key] = verdict
    return verdict


def _field(key: str, value: Any) -> Any:
    """A field value for an entry: redacted when its key names a credential, else JSON-safe
    with credential-shaped text scrubbed."""
    if value is not None and _is_secret_name(key):
        return REDACTED
    kind = type(value)
    if kind is str:
        return _clean(value)
    if kind is bool or value is None or (kind is int and INT64_MIN <= value <= INT64_MAX):
        return value
    return to_jsonable(value, redact=True)


def entry_to_json(entry: Mapping[str, Any]) -> str:
    """One log entry as one line of strict JSON (odd values converted, see to_jsonable).

    Never raises. Entries built by :class:`StructuredLogger` and :class:`JSONFormatter` are
    already redacted; this only serialises.
    """
    return dumps(entry)


def _utc_iso(epoch_s: float | None = None) -> str:
    moment = (
        datetime.now(timezone.utc)
        if epoch_s is None
        else datetime.fromtimestamp(epoch_s, timezone.utc)
    )
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _context_ids(tracer: Tracer | None) -> tuple[str, str]:
    """(trace_id, span_id) of the current context: the tracer's own span first."""
    span = tracer.current_span() if tracer is not None else None
    if span is None:
        span = current_span()
    if span is not None:
        return span.trace_id, span.span_id
    trace = current_trace()  # inside start_trace before any span
    return (trace.trace_id, "") if trace is not None else ("", "")


# -- StructuredLogger -------------------------------------------------------------------

# Keys the logger sets itself; a keyword argument of the same name is kept as "<key>_".
_ENTRY_KEYS = frozenset(
    {"timestamp", "level", "message", "logger", "service", "trace_id", "span_id", "exception"}
)


class StructuredLogger:
    """JSON-ready structured logger; every entry carries the current trace and span ids.

    Usage::

        logger = StructuredLogger(tracer)
        logger.add_handler(JSONLinesHandler(sys.stdout))
        logger.info("Agent started", agent_name="ToolAgent", user_id="123")

    Entries: ``timestamp`` (ISO-8601 UTC), ``level``, ``message``, ``logger``, ``service``,
    ``trace_id``, ``span_id`` ("" outside any span), then the keyword arguments (made
    JSON-safe; secrets redacted by key name and by shape, as in the message).
    ``exc_info=True`` (or an exception) adds an ``exception`` traceback, scrubbed too.
    """

    def __init__(
        self,
        tracer: Tracer | None = None,
        *,
        name: str | None = None,
        service_name: str | None = None,
        level: LogLevel | str | int = LogLevel.INFO,
    ) -> None:
        tracer_service = getattr(tracer, "service_name", None) if tracer is not None else None
        self._tracer = tracer
        self.service_name = str(service_name or tracer_service or "agentos")
        self.name = str(name or self.service_name)
        self._level = LogLevel.coerce(level)
        self._threshold = self._level.severity
        self._handlers: list[LogHandler] = []
        self._lock = threading.Lock()

    # -- configuration ---------------------------------------------------------------
    @property
    def level(self) -> LogLevel:
        return self._level

    def set_level(self, level: LogLevel | str | int) -> None:
        """Drop entries below ``level`` (debug < info < warning < error < critical)."""
        self._level = LogLevel.coerce(level)
        self._threshold = self._level.severity

    def is_enabled_for(self, level: LogLevel | str | int) -> bool:
        return LogLevel.coerce(level).severity >= self._threshold

    def add_handler(self, handler: LogHandler) -> None:
        """Add ``handler(entry)``; its failures are counted and logged once, never raised."""
        if not callable(handler):
            raise ConfigurationError(f"log handler must be callable, got {handler!r}")
        with self._lock:
            self._handlers = [*self._handlers, handler]  # replaced, never mutated

    def remove_handler(self, handler: LogHandler) -> None:
        with self._lock:
            self._handlers = [h for h in self._handlers if h is not handler]

    @property
    def handlers(self) -> list[LogHandler]:
        return list(self._handlers)

    # -- logging ---------------------------------------------------------------------
    def log(self, level: LogLevel | str | int, message: object, /, **fields: Any) -> None:
        level = LogLevel.coerce(level)
        if _SEVERITY[level] >= self._threshold:
            self._emit(self.make_entry(level, message, fields))

    def make_entry(
        self, level: LogLevel, message: object, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The JSON-safe entry ``log`` hands to handlers (without emitting it)."""
        trace_id, span_id = _context_ids(self._tracer)
        entry: dict[str, Any] = {
            "timestamp": _utc_iso(),
            "level": level.value,
            "message": _message_text(message),
            "logger": self.name,
            "service": self.service_name,
            "trace_id": trace_id,
            "span_id": span_id,
        }
        exc_info = fields.get("exc_info")
        for key, value in fields.items():
            if key == "exc_info":
                continue
            entry[f"{key}_" if key in _ENTRY_KEYS else key] = _field(key, value)
        if exc_info:
            text = _format_exception(exc_info)
            if text:
                entry["exception"] = _clean(text)
        return entry

    def _emit(self, entry: dict[str, Any]) -> None:
        first_failure: Exception | None = None
        for handler in self._handlers:
            try:
                handler(entry)
            except Exception as exc:
                # Count and log every failure; in strict mode raise only after every
                # handler had its turn, so one broken handler never starves the others.
                _guard.report(f"log_handler:{_name_of(handler)}", exc, reraise_in_strict=False)
                first_failure = first_failure or exc
        if first_failure is not None and _guard.is_strict():
            raise first_failure

    # The level methods compare plain ints first: a filtered-out call costs ~0.1 µs.
    def debug(self, message: object, /, **fields: Any) -> None:
        if self._threshold <= logging.DEBUG:
            self._emit(self.make_entry(LogLevel.DEBUG, message, fields))

    def info(self, message: object, /, **fields: Any) -> None:
        if self._threshold <= logging.INFO:
            self._emit(self.make_entry(LogLevel.INFO, message, fields))

    def warning(self, message: object, /, **fields: Any) -> None:
        if self._threshold <= logging.WARNING:
            self._emit(self.make_entry(LogLevel.WARNING, message, fields))

    def error(self, message: object, /, **fields: Any) -> None:
        if self._threshold <= logging.ERROR:
            self._emit(self.make_entry(LogLevel.ERROR, message, fields))

    def critical(self, message: object, /, **fields: Any) -> None:
        if self._threshold <= logging.CRITICAL:
            self._emit(self.make_entry(LogLevel.CRITICAL, message, fields))


def _clean(text: str) -> str:
    return scrub(safe_text(text))


def _message_text(message: object) -> str:
    if type(message) is str:
        return _clean(message)
    converted = to_jsonable(message, redact=True)
    return converted if isinstance(converted, str) else _clean(_safe_str(message))


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return _safe_repr(value)


def _safe_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__qualname__}>"
    return text if len(text) <= 2000 else text[:2000] + "…"


def _format_exception(exc_info: Any) -> str:
    if isinstance(exc_info, BaseException):
        parts = traceback.format_exception(type(exc_info), exc_info, exc_info.__traceback__)
    elif isinstance(exc_info, tuple) and len(exc_info) == 3 and exc_info[0] is not None:
        parts = traceback.format_exception(*exc_info)
    else:
        current = sys.exc_info()
        if current[0] is None:
            return ""
        parts = traceback.format_exception(*current)
    return "".join(parts).rstrip()


def _name_of(handler: object) -> str:
    return str(getattr(handler, "__qualname__", None) or type(handler).__qualname__)


class JSONLinesHandler:
    """A StructuredLogger handler writing one JSON object per line to ``stream``.

    ``stream`` defaults to ``sys.stdout`` at each write (so pytest's capture and
    redirections are honoured). Lines are written whole under a lock.
    """

    def __init__(self, stream: IO[str] | None = None, *, flush: bool = True) -> None:
        self.stream = stream
        self.flush = flush
        self._lock = threading.Lock()

    def __call__(self, entry: Mapping[str, Any]) -> None:
        line = entry_to_json(entry) + "\n"
        stream = self.stream if self.stream is not None else sys.stdout
        with self._lock:
            stream.write(line)
            if self.flush:
                stream.flush()


# -- stdlib logging bridge --------------------------------------------------------------

_RECORD_ATTRS = frozenset(logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "trace_id",
    "span_id",
}


class TraceContextFilter(logging.Filter):
    """Sets ``record.trace_id`` and ``record.span_id`` ("" outside any span).

    Attach it to a handler (filters on a logger miss records propagated from its
    children). With ``tracer``, that tracer's current span wins over another tracer's.
    Ids already on the record (``extra={"trace_id": ...}``) are kept.
    """

    def __init__(self, tracer: Tracer | None = None, name: str = "") -> None:
        super().__init__(name)
        self._tracer = tracer

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "trace_id", None):
            record.trace_id, record.span_id = _context_ids(self._tracer)
        elif not hasattr(record, "span_id"):
            record.span_id = ""
        return True


class JSONFormatter(logging.Formatter):
    """Renders a record as one JSON object: timestamp (ISO-8601 UTC), level, logger,
    message, trace_id, span_id, service (when given), exception / stack text, and every
    ``extra=`` field (made JSON-safe). Never raises: a record that cannot be rendered
    becomes a minimal entry saying so."""

    def __init__(self, *, service_name: str | None = None, tracer: Tracer | None = None) -> None:
        super().__init__()
        self.service_name = service_name
        self._tracer = tracer

    def format(self, record: logging.LogRecord) -> str:
        try:
            return entry_to_json(self.to_entry(record))
        except Exception as exc:
            _guard.report("logs.json_formatter", exc, reraise_in_strict=False)
            return entry_to_json({
                "timestamp": _utc_iso(getattr(record, "created", None)),
                "level": str(getattr(record, "levelname", "")).lower(),
                "logger": str(getattr(record, "name", "")),
                "message": _clean(f"<unformattable log record: {type(exc).__name__}: {exc}>"),
                "trace_id": "",
                "span_id": "",
            })  # fmt: skip

    def to_entry(self, record: logging.LogRecord) -> dict[str, Any]:
        trace_id = getattr(record, "trace_id", None)
        span_id = getattr(record, "span_id", None)
        if trace_id is None:  # no TraceContextFilter on the way: read the context here
            trace_id, span_id = _context_ids(self._tracer)
        entry: dict[str, Any] = {
            "timestamp": _utc_iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _clean(_record_message(record)),
            "trace_id": _safe_str(trace_id),
            "span_id": _safe_str(span_id or ""),
        }
        if self.service_name:
            entry["service"] = self.service_name
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = _clean(record.exc_text)
        if record.stack_info:
            entry["stack"] = _clean(self.formatStack(record.stack_info))
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_ATTRS:
                entry[f"{key}_" if key in entry else key] = _field(key, value)
        return entry


def _record_message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # "%d" with a str argument, a broken __str__...
        return f"{_safe_str(record.msg)} % {_safe_repr(record.args)}"


_TEXT_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s [trace_id=%(trace_id)s span_id=%(span_id)s] %(message)s"
)
_correlate_lock = threading.Lock()


class RedactingFormatter(logging.Formatter):
    """A plain-text ``logging.Formatter`` whose lines are scrubbed by the one redactor
    (what :func:`correlate_logging` installs with ``json=False``)."""

    def format(self, record: logging.LogRecord) -> str:
        return _clean(super().format(record))


class CorrelatedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`correlate_logging` installs (its type marks it as ours)."""


def correlate_logging(
    logger: logging.Logger | str | None = None,
    *,
    json: bool = True,
    stream: IO[str] | None = None,
    tracer: Tracer | None = None,
    service_name: str | None = None,
    level: int | str | None = None,
) -> logging.Handler:
    """Make ``logger`` (a Logger, a name, or None for the root logger) write records with
    trace and span ids: JSON lines by default, or text with ``json=False``.

    Installs one ``StreamHandler(stream)`` (stderr by default) carrying
    :class:`TraceContextFilter` and :class:`JSONFormatter` (or, for text,
    :class:`RedactingFormatter`); both scrub secrets from what they write. Returns the
    handler. Idempotent:
    calling again returns the handler already installed. ``level`` also sets the logger's
    level (left alone by default).
    """
    if logger is None or isinstance(logger, str):
        target = logging.getLogger(logger)
    elif isinstance(logger, logging.Logger):
        target = logger
    else:
        raise ConfigurationError(f"expected a logging.Logger, a name or None, got {logger!r}")
    with _correlate_lock:
        for existing in target.handlers:
            if isinstance(existing, CorrelatedStreamHandler):
                return existing
        handler = CorrelatedStreamHandler(stream)
        handler.addFilter(TraceContextFilter(tracer))
        formatter: logging.Formatter = (
            JSONFormatter(service_name=service_name, tracer=tracer)
            if json
            else RedactingFormatter(_TEXT_FORMAT)
        )
        handler.setFormatter(formatter)
        target.addHandler(handler)
        if level is not None:
            target.setLevel(level)
        return handler
