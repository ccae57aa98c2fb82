"""Structured logs: trace correlation under concurrency, real level filtering, JSON safety,
handler failures, and the stdlib logging bridge."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
import math
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from agentos_obs import testing
from agentos_obs.errors import ConfigurationError
from agentos_obs.logs import (
    CorrelatedStreamHandler,
    JSONFormatter,
    JSONLinesHandler,
    LogLevel,
    StructuredLogger,
    TraceContextFilter,
    correlate_logging,
    entry_to_json,
    to_jsonable,
)
from agentos_obs.tracing import SpanKind, Tracer


@pytest.fixture
def entries(tracer: Tracer) -> tuple[StructuredLogger, list[dict[str, Any]]]:
    logger = StructuredLogger(tracer)
    seen: list[dict[str, Any]] = []
    logger.add_handler(seen.append)
    return logger, seen


def strict_json(entry: dict[str, Any]) -> str:
    return json.dumps(entry, allow_nan=False)  # raises on anything JSON cannot carry


# -- entries --------------------------------------------------------------------------


def test_entry_fields(tracer: Tracer, entries: tuple[StructuredLogger, list[Any]]) -> None:
    logger, seen = entries
    logger.info("outside")
    with tracer.start_span("agent", SpanKind.AGENT) as span:
        logger.warning("inside", agent_name="ToolAgent", user_id="123")
    outside, inside = seen
    assert (outside["trace_id"], outside["span_id"]) == ("", "")
    assert (inside["trace_id"], inside["span_id"]) == (span.trace_id, span.span_id)
    assert inside["level"] == "warning"
    assert inside["message"] == "inside"
    assert inside["logger"] == "svc" and inside["service"] == "svc"
    assert inside["agent_name"] == "ToolAgent" and inside["user_id"] == "123"
    stamp = datetime.fromisoformat(inside["timestamp"].replace("Z", "+00:00"))
    assert stamp.utcoffset() == timedelta(0)
    assert abs((datetime.now(timezone.utc) - stamp).total_seconds()) < 3600


def test_trace_id_inside_a_trace_block_before_any_span(
    tracer: Tracer, entries: tuple[StructuredLogger, list[Any]]
) -> None:
    logger, seen = entries
    with tracer.start_trace("job") as trace:
        logger.info("starting")
    assert (seen[0]["trace_id"], seen[0]["span_id"]) == (trace.trace_id, "")


def test_spans_of_another_tracer_are_correlated_too(
    entries: tuple[StructuredLogger, list[Any]],
) -> None:
    logger, seen = entries
    other = Tracer("other")
    with other.start_span("x") as span:
        logger.info("from the other tracer's span")
    assert seen[0]["span_id"] == span.span_id


def test_reserved_keys_are_not_overwritten(
    tracer: Tracer, entries: tuple[StructuredLogger, list[Any]]
) -> None:
    logger, seen = entries
    with tracer.start_span("a") as span:
        logger.info("real", message="fake", level="fake", trace_id="fake")
    entry = seen[0]
    assert (entry["message"], entry["level"], entry["trace_id"]) == ("real", "info", span.trace_id)
    assert (entry["message_"], entry["level_"], entry["trace_id_"]) == ("fake", "fake", "fake")


def test_exc_info_adds_the_traceback(entries: tuple[StructuredLogger, list[Any]]) -> None:
    logger, seen = entries
    try:
        raise RuntimeError("kaput")
    except RuntimeError as exc:
        logger.error("failed", exc_info=True)
        logger.error("failed again", exc_info=exc)
    assert "RuntimeError: kaput" in seen[0]["exception"]
    assert "Traceback" in seen[1]["exception"]
    assert "exc_info" not in seen[0]


# -- levels ---------------------------------------------------------------------------


def test_set_level_really_filters(entries: tuple[StructuredLogger, list[Any]]) -> None:
    logger, seen = entries
    logger.debug("hidden by the default info level")
    logger.set_level(LogLevel.ERROR)
    logger.info("no")
    logger.warning("no")
    logger.error("yes")
    logger.critical("yes")
    logger.set_level("debug")
    logger.debug("yes")
    logger.set_level(logging.WARNING)
    logger.info("no")
    logger.log("WARN", "yes")
    assert [e["level"] for e in seen] == ["error", "critical", "debug", "warning"]
    assert logger.level is LogLevel.WARNING
    assert logger.is_enabled_for("error") and not logger.is_enabled_for(LogLevel.INFO)


@pytest.mark.parametrize("bad", ["verbose", "", None, 3.5, True])
def test_bad_levels_are_configuration_errors(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="unknown log level"):
        StructuredLogger().set_level(bad)  # type: ignore[arg-type]


def test_level_order() -> None:
    order = [LogLevel.DEBUG, LogLevel.INFO, LogLevel.WARNING, LogLevel.ERROR, LogLevel.CRITICAL]
    assert sorted(order, key=lambda level: level.severity) == order
    assert LogLevel.coerce(logging.WARNING + 5) is LogLevel.WARNING
    assert LogLevel.coerce(0) is LogLevel.DEBUG
    assert LogLevel.coerce("FATAL") is LogLevel.CRITICAL


# -- JSON safety ----------------------------------------------------------------------


class Colour(Enum):
    RED = "red"


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class Plain:
    def __repr__(self) -> str:
        return "<Plain>"


def test_odd_values_serialise(entries: tuple[StructuredLogger, list[Any]]) -> None:
    logger, seen = entries
    loop: dict[str, Any] = {"name": "loop"}
    loop["self"] = loop
    items: list[Any] = [1]
    items.append(items)
    shared = {"a": 1}
    logger.info(
        "odd",
        when=datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        day=date(2025, 1, 2),
        took=timedelta(milliseconds=1500),
        raw=b"\xff\xfeok",
        tags={"b", "a"},
        frozen=frozenset({3}),
        price=Decimal("0.000001"),
        ident=uuid.UUID(int=1),
        path=Path("/tmp/x"),
        colour=Colour.RED,
        nan=float("nan"),
        inf=-math.inf,
        error=ValueError("bad"),
        thing=Plain(),
        broken=BadRepr(),
        loop=loop,
        items=items,
        twice=[shared, shared],  # shared, not circular
        keys={(1, 2): "tuple key", None: "none key", 3: "int key"},
        deep=_nested(40),
    )
    entry = seen[0]
    decoded = json.loads(strict_json(entry))
    assert decoded["when"] == "2025-01-02T03:04:05+00:00"
    assert decoded["day"] == "2025-01-02"
    assert decoded["took"] == 1.5
    assert decoded["raw"] == "\\xff\\xfeok"
    assert decoded["tags"] == ["a", "b"]
    assert decoded["price"] == "0.000001"
    assert decoded["ident"] == "00000000-0000-0000-0000-000000000001"
    assert decoded["path"] == "/tmp/x"
    assert decoded["colour"] == "red"
    assert (decoded["nan"], decoded["inf"]) == ("NaN", "-Infinity")
    assert decoded["error"] == "ValueError: bad"
    assert decoded["thing"] == "<Plain>"
    assert decoded["broken"] == "<unrepresentable BadRepr>"
    assert decoded["loop"] == {"name": "loop", "self": "<circular>"}
    assert decoded["items"] == [1, "<circular>"]
    assert decoded["twice"] == [{"a": 1}, {"a": 1}]
    assert decoded["keys"] == {"(1, 2)": "tuple key", "null": "none key", "3": "int key"}
    assert "<too deep>" in json.dumps(decoded["deep"])


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"down": value}
    return value


def test_non_string_message(entries: tuple[StructuredLogger, list[Any]]) -> None:
    logger, seen = entries
    logger.info({"event": "dict message"})  # type: ignore[arg-type]
    logger.info(BadRepr())  # type: ignore[arg-type]
    assert isinstance(seen[0]["message"], str) and "dict message" in seen[0]["message"]
    assert seen[1]["message"] == "<unrepresentable BadRepr>"


def test_entry_to_json_handles_unsanitised_dicts() -> None:
    line = entry_to_json({"nan": float("nan"), "set": {1}, "obj": Plain(), "ok": "é"})
    assert json.loads(line) == {"nan": "NaN", "set": [1], "obj": "<Plain>", "ok": "é"}
    assert "\n" not in line
    assert to_jsonable({1: {2}}) == {"1": [2]}


def test_the_serialiser_is_the_one_every_sink_uses() -> None:
    from agentos_obs._internal import jsonsafe

    assert to_jsonable is jsonsafe.to_jsonable  # kept importable here, not a copy
    line = entry_to_json({"name": "file-\udcff.txt", "big": 2**70})
    assert json.loads(line) == {"name": "file-\ufffd.txt", "big": str(2**70)}
    line.encode("utf-8")  # strict UTF-8: a lone surrogate would raise here


# -- secrets ----------------------------------------------------------------------------

OPENAI_KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 2
BEARER = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlMTIzNDU2"
SECRETS = (OPENAI_KEY, "hunter2-very-secret", "eyJhbGciOiJIUzI1NiJ9", "AKIAIOSFODNN7EXAMPLE")


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked: {text}"


def test_structured_logger_redacts_secret_fields_and_shapes(
    entries: tuple[StructuredLogger, list[Any]],
) -> None:
    logger, seen = entries
    logger.info(
        f"calling the provider with {OPENAI_KEY}",
        api_key=OPENAI_KEY,
        authorization=BEARER,
        password="hunter2-very-secret",
        max_tokens=256,  # a count, not a credential
        config={"client_secret": "hunter2-very-secret", "region": "eu"},
        url="https://api.example.com/v1?key=hunter2-very-secret&page=2",
        headers=[("x-api-key", "AKIAIOSFODNN7EXAMPLE")],
        note=f"retry with {BEARER}",
    )
    entry = seen[0]
    assert_no_secret(strict_json(entry))
    assert entry["api_key"] == entry["authorization"] == entry["password"] == "[REDACTED]"
    assert entry["message"] == "calling the provider with [REDACTED]"
    assert entry["config"] == {"client_secret": "[REDACTED]", "region": "eu"}
    assert entry["url"] == "https://api.example.com/v1?key=[REDACTED]&page=2"
    assert entry["note"] == "retry with Bearer [REDACTED]"
    assert entry["max_tokens"] == 256


def test_structured_logger_scrubs_the_exception_text(
    entries: tuple[StructuredLogger, list[Any]],
) -> None:
    logger, seen = entries
    try:
        raise PermissionError(f"401 for api_key={OPENAI_KEY}")
    except PermissionError:
        logger.error("provider refused", exc_info=True)
    assert "PermissionError" in seen[0]["exception"]
    assert_no_secret(seen[0]["exception"])


def test_correlate_logging_scrubs_secrets_in_json_lines(std_logger: logging.Logger) -> None:
    stream = io.StringIO()
    correlate_logging(std_logger, stream=stream)
    std_logger.warning(
        "using key %s for %s", OPENAI_KEY, "https://u:hunter2-very-secret@db.example.com/x",
        extra={"api_key": OPENAI_KEY, "auth_header": BEARER, "attempt": 2},
    )  # fmt: skip
    try:
        raise ConnectionError(f"refused: Authorization: {BEARER}")
    except ConnectionError:
        std_logger.exception("gave up with password=hunter2-very-secret")
    text = stream.getvalue()
    assert_no_secret(text)
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["message"] == "using key [REDACTED] for https://[REDACTED]@db.example.com/x"
    assert first["api_key"] == "[REDACTED]" and first["attempt"] == 2
    assert "ConnectionError" in second["exception"]


def test_correlate_logging_scrubs_secrets_in_text_lines(std_logger: logging.Logger) -> None:
    stream = io.StringIO()
    correlate_logging(std_logger, json=False, stream=stream)
    std_logger.info("token: %s", OPENAI_KEY)
    try:
        raise ValueError(f"bad key {OPENAI_KEY}")
    except ValueError:
        std_logger.exception("failed")
    text = stream.getvalue()
    assert_no_secret(text)
    assert "token: [REDACTED]" in text and "ValueError: bad key [REDACTED]" in text


# -- handlers -------------------------------------------------------------------------


def test_failing_handler_is_counted_and_others_still_run(lenient: None) -> None:
    logger = StructuredLogger()
    before: list[str] = []
    after: list[str] = []

    def broken(entry: dict[str, Any]) -> None:
        raise OSError("disk full")

    logger.add_handler(lambda e: before.append(e["message"]))
    logger.add_handler(broken)
    logger.add_handler(lambda e: after.append(e["message"]))
    logger.info("one")
    logger.info("two")
    assert before == after == ["one", "two"]
    counts = testing.failure_counts()
    assert counts[next(k for k in counts if k.startswith("log_handler:") and "broken" in k)] == 2


def test_failing_handler_raises_in_strict_mode_after_the_others_ran() -> None:
    logger = StructuredLogger()
    after: list[str] = []

    def broken(entry: dict[str, Any]) -> None:
        raise OSError("disk full")

    logger.add_handler(broken)
    logger.add_handler(lambda e: after.append(e["message"]))
    with pytest.raises(OSError, match="disk full"):
        logger.info("x")
    assert after == ["x"]


def test_handlers_are_validated_and_removable() -> None:
    logger = StructuredLogger()
    with pytest.raises(ConfigurationError):
        logger.add_handler("not callable")  # type: ignore[arg-type]
    seen: list[Any] = []
    logger.add_handler(seen.append)
    logger.remove_handler(seen.append)  # a new bound method: not the same object
    logger.info("kept")
    handler = logger.handlers[0]
    logger.remove_handler(handler)
    logger.info("gone")
    assert [e["message"] for e in seen] == ["kept"]


def test_json_lines_handler(tracer: Tracer) -> None:
    stream = io.StringIO()
    logger = StructuredLogger(tracer, name="app")
    logger.add_handler(JSONLinesHandler(stream))
    with tracer.start_span("a") as span:
        logger.info("hello", value=float("inf"))
        logger.error("bye")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert (first["message"], first["value"], first["span_id"]) == (
        "hello",
        "Infinity",
        span.span_id,
    )
    assert first["logger"] == "app"


# -- concurrency ----------------------------------------------------------------------


async def test_trace_ids_under_asyncio_gather(
    tracer: Tracer, entries: tuple[StructuredLogger, list[Any]]
) -> None:
    logger, seen = entries
    expected: dict[int, tuple[str, str]] = {}

    async def task(index: int) -> None:
        with tracer.start_span(f"task-{index}", SpanKind.AGENT) as span:
            expected[index] = (span.trace_id, span.span_id)
            for step in range(3):
                await asyncio.sleep(0)  # interleave with every other task
                logger.info("step", index=index, step=step)

    await asyncio.gather(*(task(i) for i in range(50)))
    assert len(seen) == 150
    assert len({ids[0] for ids in expected.values()}) == 50  # 50 separate traces
    for entry in seen:
        assert (entry["trace_id"], entry["span_id"]) == expected[entry["index"]]


def test_trace_ids_in_threads_with_copied_context(
    tracer: Tracer, entries: tuple[StructuredLogger, list[Any]]
) -> None:
    logger, seen = entries
    expected: dict[int, tuple[str, str]] = {}

    def work(index: int) -> None:
        with tracer.start_span(f"worker-{index}", SpanKind.CHAIN) as span:
            expected[index] = (span.trace_id, span.span_id)
            for _ in range(20):
                logger.info("tick", index=index)

    with tracer.start_span("parent") as parent:
        with ThreadPoolExecutor(16) as pool:
            futures = [
                pool.submit(contextvars.copy_context().run, work, index) for index in range(16)
            ]
            for future in futures:
                future.result()
    assert len(seen) == 16 * 20
    for entry in seen:
        assert (entry["trace_id"], entry["span_id"]) == expected[entry["index"]]
        assert entry["trace_id"] == parent.trace_id  # children of the copied parent
    assert len({e["span_id"] for e in seen}) == 16


# -- stdlib bridge --------------------------------------------------------------------


@pytest.fixture
def std_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger(f"agentos_obs_test.{uuid.uuid4().hex}")
    logger.setLevel(logging.DEBUG)
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)


def test_correlate_logging_json(tracer: Tracer, std_logger: logging.Logger) -> None:
    stream = io.StringIO()
    handler = correlate_logging(std_logger, stream=stream, service_name="svc")
    assert correlate_logging(std_logger, stream=io.StringIO()) is handler  # idempotent
    ours = [h for h in std_logger.handlers if isinstance(h, CorrelatedStreamHandler)]
    assert ours == [handler]
    std_logger.info("outside")
    with tracer.start_span("agent", SpanKind.AGENT) as span:
        std_logger.warning("user %s did %d things", "ann", 3, extra={"order": 7, "odd": {1}})
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            std_logger.exception("failed")
    outside, inside, failed = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (outside["trace_id"], outside["span_id"]) == ("", "")
    assert (inside["trace_id"], inside["span_id"]) == (span.trace_id, span.span_id)
    assert inside["message"] == "user ann did 3 things"
    assert (inside["level"], inside["logger"], inside["service"]) == (
        "warning",
        std_logger.name,
        "svc",
    )
    assert (inside["order"], inside["odd"]) == (7, [1])
    assert datetime.fromisoformat(inside["timestamp"].replace("Z", "+00:00")).tzinfo
    assert "ZeroDivisionError" in failed["exception"] and failed["level"] == "error"


def test_correlate_logging_text_and_child_loggers(
    tracer: Tracer, std_logger: logging.Logger
) -> None:
    stream = io.StringIO()
    correlate_logging(std_logger.name, json=False, stream=stream)
    child = logging.getLogger(std_logger.name + ".child")  # propagates to our handler
    with tracer.start_span("a") as span:
        child.info("from the child")
    line = stream.getvalue().strip()
    assert f"trace_id={span.trace_id} span_id={span.span_id}" in line
    assert line.endswith("from the child")


def test_correlate_logging_rejects_non_loggers() -> None:
    with pytest.raises(ConfigurationError):
        correlate_logging(42)  # type: ignore[arg-type]


def test_json_formatter_never_raises_on_odd_records(std_logger: logging.Logger) -> None:
    stream = io.StringIO()
    handler = correlate_logging(std_logger, stream=stream)

    def record(msg: object, args: Any = None, **extra: Any) -> logging.LogRecord:
        made = std_logger.makeRecord(std_logger.name, logging.INFO, __file__, 1, msg, args, None)
        made.__dict__.update(extra)
        return made

    # Emitted through our handler only: pytest's own capture handler would choke on these.
    handler.handle(record("%d items", ("not a number",)))
    handler.handle(record("odd extra", thing=BadRepr(), nan=float("nan"), message_=1))
    handler.handle(record(BadRepr()))
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert "%d items" in first["message"] and "not a number" in first["message"]
    assert (second["thing"], second["nan"]) == ("<unrepresentable BadRepr>", "NaN")
    assert third["message"]  # something readable, and no exception reached the app


def test_filter_with_caplog(tracer: Tracer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.handler.addFilter(TraceContextFilter(tracer))
    logger = logging.getLogger("agentos_obs_test.caplog")
    with caplog.at_level(logging.INFO, logger="agentos_obs_test.caplog"):
        with tracer.start_span("a") as span:
            logger.info("inside")
        logger.info("outside")
    inside, outside = caplog.records
    assert (inside.trace_id, inside.span_id) == (span.trace_id, span.span_id)  # type: ignore[attr-defined]
    assert (outside.trace_id, outside.span_id) == ("", "")  # type: ignore[attr-defined]
    formatted = json.loads(JSONFormatter().format(inside))
    assert formatted["span_id"] == span.span_id and formatted["message"] == "inside"


def test_formatter_without_filter_reads_the_context(tracer: Tracer) -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "msg", None, None)
    with tracer.start_span("a") as span:
        entry = JSONFormatter().to_entry(record)
    assert entry["trace_id"] == span.trace_id
