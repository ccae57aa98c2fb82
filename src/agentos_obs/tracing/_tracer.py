"""The tracer: span and trace lifecycle, context propagation, processors and exporters.

The current trace and span live in one ``contextvars.ContextVar``: every asyncio task and
every thread (started with a copied context) keeps its own parent chain. Integrations never
touch that ambient context; they create spans with :meth:`Tracer.begin_span` and give the
parent explicitly (from the framework's own run ids).

A trace ends when its root is done *and* its last open span has ended, so a child that
finishes after its parent (an abandoned stream, a background task) keeps its data. Then the
trace is handed to every exporter; each exporter's failure is reported, never raised.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import agentos_obs.attributes as attr
from agentos_obs._internal.batching import QueuedExporter
from agentos_obs._internal.guard import report
from agentos_obs.errors import BudgetExceeded, ConfigurationError
from agentos_obs.tracing._ids import new_trace_id
from agentos_obs.tracing._kinds import SpanKind, SpanStatus
from agentos_obs.tracing._records import SpanRecord, TraceRecord
from agentos_obs.tracing._remote import remote_parent
from agentos_obs.tracing._seal import seal, seal_trace
from agentos_obs.tracing._spans import Span, SpanEvent, Trace

if TYPE_CHECKING:
    from agentos_obs.pricing._catalog import PriceCatalog
    from agentos_obs.pricing._usage import Usage

__all__ = [
    "NoopTracer",
    "SpanProcessor",
    "Tracer",
    "TracerConfig",
    "current_span",
    "current_trace",
    "use_span",
]

_perf_ns = time.perf_counter_ns

# (trace, span or None inside a start_trace block before any span). One ContextVar for both:
# one set/reset per span.
_ACTIVE: ContextVar[tuple[Trace, Span | None] | None] = ContextVar(
    "agentos_obs_active", default=None
)

_CANCEL_TYPES: tuple[type[BaseException], ...] = (GeneratorExit,)
try:  # asyncio.CancelledError is a BaseException subclass on 3.8+
    import asyncio

    _CANCEL_TYPES = (GeneratorExit, asyncio.CancelledError)
except ImportError:  # pragma: no cover
    pass


RemoteParent = tuple[str, str]  # (trace id, parent span id), W3C hex


# Consulted when a new trace starts without an explicit trace id: a remote parent to
# continue (W3C traceparent extracted from a request, the app's OpenTelemetry span), or None.
_remote_parent_provider: Callable[[], RemoteParent | None] | None = remote_parent


def set_remote_parent_provider(
    provider: Callable[[], RemoteParent | None] | None,
) -> Callable[[], RemoteParent | None] | None:
    """Install the function new traces ask for a remote parent; returns the previous one."""
    global _remote_parent_provider
    previous, _remote_parent_provider = _remote_parent_provider, provider
    return previous


def _status_for(exc: BaseException) -> SpanStatus:
    """An abandoned stream or a cancelled task is not a failure of the app."""
    return SpanStatus.CANCELLED if isinstance(exc, _CANCEL_TYPES) else SpanStatus.ERROR


def current_span() -> Span | None:
    """The innermost span active in this context (any tracer), or None."""
    active = _ACTIVE.get()
    return None if active is None else active[1]


def current_trace() -> Trace | None:
    active = _ACTIVE.get()
    return None if active is None else active[0]


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


def _default_capture() -> bool:
    for name in (
        "AGENTOS_OBS_CAPTURE_CONTENT",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
    ):
        flag = _env_flag(name)
        if flag is not None:
            return flag
    return False


@dataclass
class TracerConfig:
    """Settings the tracer and the integrations read."""

    service_name: str = "agentos"
    capture_content: bool = field(default_factory=_default_capture)
    max_content_length: int = 4000
    sampling_ratio: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.service_name, str) or not self.service_name:
            raise ConfigurationError("service_name must be a non-empty string")
        if not 0.0 <= float(self.sampling_ratio) <= 1.0:
            raise ConfigurationError(
                f"sampling_ratio must be between 0 and 1, got {self.sampling_ratio!r}"
            )
        if int(self.max_content_length) < 0:
            raise ConfigurationError("max_content_length must be >= 0")


@runtime_checkable
class SpanProcessor(Protocol):
    """Called synchronously when spans start and end (keep it cheap; batch elsewhere).

    ``on_start`` gets the live :class:`Span` (it may still change); ``on_end`` gets its
    sealed :class:`SpanRecord`, as OpenTelemetry processors get a ``ReadableSpan``.
    """

    def on_start(self, span: Span) -> None: ...

    def on_end(self, span: SpanRecord) -> None: ...


Exporter = Callable[[TraceRecord], Any]


def _never_blocks(exporter: object, fn: Callable[..., Any]) -> bool:
    """True when the exporter says ``queued = True``: its export only hands the trace on."""
    owner = getattr(fn, "__self__", None)  # dashboard.record_trace: ask the dashboard
    return bool(getattr(exporter, "queued", False) or getattr(owner, "queued", False))


def _component_name(obj: object) -> str:
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return str(name)


class _SpanScope:
    """Context manager of ``start_span``: a class, not a generator, to stay cheap."""

    __slots__ = ("_span", "_token", "_tracer")

    def __init__(self, tracer: Tracer, span: Span) -> None:
        self._tracer = tracer
        self._span = span
        self._token: Token[tuple[Trace, Span | None] | None] | None = None

    def __enter__(self) -> Span:
        span = self._span
        assert span._trace is not None
        self._token = _ACTIVE.set((span._trace, span))
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _reset(self._token, self._span)
        if exc is not None:
            self._span.record_exception(exc, _status_for(exc))
        self._tracer.end_span(self._span)
        # None: the same exception object propagates unchanged.


def _reset(token: Token[Any] | None, span: Span | None) -> None:
    if token is None:
        return
    try:
        _ACTIVE.reset(token)
    except ValueError:
        # Exited in another context (e.g. an async generator finalised elsewhere): restore
        # the parent rather than leaving this span current.
        parent = span._parent if span is not None else None
        if parent is not None and parent._trace is not None and not parent.ended:
            _ACTIVE.set((parent._trace, parent))
        else:
            _ACTIVE.set(None)


@contextmanager
def use_span(span: Span) -> Iterator[Span]:
    """Make ``span`` the current span in this context without ending it afterwards.

    Used to restore a producing span's context around work that runs later (a stream
    consumed after the call returned) so new spans nest under it.
    """
    if span._trace is None:
        raise ValueError("use_span needs a span created by a Tracer")
    token = _ACTIVE.set((span._trace, span))
    try:
        yield span
    finally:
        _reset(token, span)


class Tracer:
    """Creates spans and traces and hands finished traces to exporters.

    Usage::

        tracer = Tracer()
        with tracer.start_span("my_agent", SpanKind.AGENT) as span:
            span.set_attribute("user_id", "123")
    """

    def __init__(
        self,
        service_name: str = "agentos",
        *,
        config: TracerConfig | None = None,
        pricing: PriceCatalog | None = None,
    ) -> None:
        self.config = config if config is not None else TracerConfig(service_name=service_name)
        self._pricing = pricing
        self._exporters: list[Exporter] = []
        self._exporter_objects: list[object] = []
        self._exporter_runners: list[object] = []  # what flush/shutdown reach: a queue or it
        self._processors: list[object] = []
        self._on_start: list[Callable[[Span], None]] = []
        self._on_end: list[Callable[[SpanRecord], None]] = []
        self._lock = threading.Lock()
        self._trace_count = 0
        self._active_traces: dict[str, Trace] = {}
        self._sampler = random.Random()

    # -- configuration ---------------------------------------------------------------
    @property
    def service_name(self) -> str:
        return self.config.service_name

    @property
    def _service_name(self) -> str:  # prototype attribute name
        return self.config.service_name

    @property
    def pricing(self) -> PriceCatalog:
        if self._pricing is None:
            from agentos_obs.pricing._catalog import default_catalog

            self._pricing = default_catalog()
        return self._pricing

    @pricing.setter
    def pricing(self, catalog: PriceCatalog) -> None:
        self._pricing = catalog

    def add_exporter(self, exporter: Exporter | object, *, sync: bool = False) -> None:
        """Add ``fn(trace)`` (or an object with ``export(trace)``), called with the
        :class:`TraceRecord` of every trace that ends.

        An exporter that may block (your own function, a network call) runs on a background
        thread behind a bounded queue (:class:`~agentos_obs.exporters.QueuedExporter`), so a
        slow or hung one never holds up the app; traces it cannot keep up with are dropped
        and counted. Exporters that never block say so with ``queued = True`` (the store,
        OTLP, JSONL, the dashboard, the testing kit's ``InMemoryExporter``) and are called
        directly. ``sync=True`` calls any exporter on the thread that ended the trace (tests
        that read right after a run).
        """
        fn: Exporter
        if callable(exporter):
            fn = exporter
        elif callable(getattr(exporter, "export", None)):
            fn = exporter.export  # type: ignore[attr-defined]
        else:
            raise ConfigurationError(
                f"exporter must be callable as fn(trace) or have export(trace), got {exporter!r}"
            )
        runner: object = exporter
        if not sync and not _never_blocks(exporter, fn):
            queued = QueuedExporter(exporter, name=f"exporter:{_component_name(fn)}")
            fn, runner = queued.export, queued
        with self._lock:
            self._exporters = [*self._exporters, fn]
            self._exporter_objects = [*self._exporter_objects, exporter]
            self._exporter_runners = [*self._exporter_runners, runner]

    def remove_exporter(self, exporter: Exporter | object) -> None:
        with self._lock:
            kept = [
                (f, o, r)
                for f, o, r in zip(
                    self._exporters, self._exporter_objects, self._exporter_runners, strict=True
                )
                if o is not exporter and o != exporter
            ]
            removed = [
                r
                for _, o, r in zip(
                    self._exporters, self._exporter_objects, self._exporter_runners, strict=True
                )
                if o is exporter or o == exporter
            ]
            self._exporters = [f for f, _, _ in kept]
            self._exporter_objects = [o for _, o, _ in kept]
            self._exporter_runners = [r for _, _, r in kept]
        for runner in removed:
            if isinstance(runner, QueuedExporter):
                runner.close()

    @property
    def exporters(self) -> list[object]:
        return list(self._exporter_objects)

    def add_span_processor(self, processor: object) -> None:
        """Add an object with ``on_start(span)`` and/or ``on_end(span)``."""
        start = getattr(processor, "on_start", None)
        end = getattr(processor, "on_end", None)
        if not callable(start) and not callable(end):
            raise ConfigurationError(
                f"span processor needs on_start(span) or on_end(span), got {processor!r}"
            )
        with self._lock:
            if any(p is processor for p in self._processors):
                return
            self._processors = [*self._processors, processor]
            self._rebuild_hooks()

    def remove_span_processor(self, processor: object) -> None:
        with self._lock:
            self._processors = [p for p in self._processors if p is not processor]
            self._rebuild_hooks()

    def _rebuild_hooks(self) -> None:
        # Lists are replaced, never mutated: the hot path iterates without a lock.
        self._on_start = [
            p.on_start  # type: ignore[attr-defined]
            for p in self._processors
            if callable(getattr(p, "on_start", None))
        ]
        self._on_end = [
            p.on_end  # type: ignore[attr-defined]
            for p in self._processors
            if callable(getattr(p, "on_end", None))
        ]

    @property
    def span_processors(self) -> list[object]:
        return list(self._processors)

    # -- context ---------------------------------------------------------------------
    def current_span(self) -> Span | None:
        """The current span if it belongs to this tracer."""
        active = _ACTIVE.get()
        if active is None or active[0]._tracer is not self:
            return None
        return active[1]

    def current_trace(self) -> Trace | None:
        active = _ACTIVE.get()
        if active is None or active[0]._tracer is not self:
            return None
        return active[0]

    @property
    def trace_count(self) -> int:
        """Traces finished (and handed to exporters when sampled)."""
        return self._trace_count

    @property
    def active_trace_count(self) -> int:
        return len(self._active_traces)

    def active_traces(self) -> list[Trace]:
        with self._lock:
            return list(self._active_traces.values())

    # -- traces ----------------------------------------------------------------------
    def _new_trace(
        self, name: str, trace_id: str | None = None, parent_id: str | None = None
    ) -> Trace:
        if trace_id is None and _remote_parent_provider is not None:
            try:
                remote = _remote_parent_provider()
            except Exception as exc:
                report("propagation.remote_parent", exc)
                remote = None
            if remote is not None:
                trace_id, parent_id = remote
        trace = Trace(trace_id or new_trace_id(), name=name)
        trace.remote_parent_id = parent_id
        trace._tracer = self
        ratio = self.config.sampling_ratio
        if ratio < 1.0:
            # Decided from the trace id (like OpenTelemetry's TraceIdRatioBased) so every
            # process that sees the same trace id takes the same decision.
            trace.sampled = int(trace.trace_id[16:], 16) < ratio * (1 << 64)
        with self._lock:
            self._active_traces[trace.trace_id] = trace
        return trace

    @contextmanager
    def start_trace(
        self, name: str = "", attributes: Mapping[str, Any] | None = None
    ) -> Iterator[Trace]:
        """A trace block: spans started inside belong to it; exported when it ends."""
        trace = self._new_trace(name)
        trace._block = True
        if attributes:
            trace.attributes.update(attributes)
        token = _ACTIVE.set((trace, None))
        try:
            yield trace
        finally:
            _reset(token, None)
            trace._end_mono = _perf_ns()
            if trace.root_span is None and trace.spans:
                trace.root_span = trace.spans[0]
            with self._lock:
                trace._root_done = True
                done = trace._open == 0 and not trace._exported
                if done:
                    trace._exported = True
            if done:
                self._finish_trace(trace)

    # -- spans -----------------------------------------------------------------------
    def start_span(
        self,
        name: str,
        kind: SpanKind = SpanKind.AGENT,
        attributes: dict[str, Any] | None = None,
    ) -> _SpanScope:
        """Context manager: a span, child of the current one (or a new trace's root)."""
        active = _ACTIVE.get()
        if active is not None and active[0]._tracer is self and not active[0]._exported:
            trace, parent = active
        else:
            trace, parent = None, None
        span = self._begin(name, kind, trace, parent, attributes, None)
        return _SpanScope(self, span)

    def begin_span(
        self,
        name: str,
        kind: SpanKind = SpanKind.CHAIN,
        *,
        parent: Span | None = None,
        use_context: bool = True,
        attributes: dict[str, Any] | None = None,
        start_time: int | None = None,
        trace_id: str | None = None,
        parent_id: str | None = None,
    ) -> Span:
        """Start a span without making it current (for integrations).

        ``parent`` given: a child of it, in its trace. Otherwise, with ``use_context``, a
        child of the span active in the caller's context; else the root of a new trace
        (with ``trace_id``/``parent_id`` when continuing a remote trace). End it with
        :meth:`end_span`.
        """
        trace: Trace | None = None
        if parent is not None:
            trace = parent._trace
            if trace is None or trace._tracer is not self:
                trace, parent = None, None
        elif use_context:
            active = _ACTIVE.get()
            if active is not None and active[0]._tracer is self and not active[0]._exported:
                trace, parent = active
        if trace is None and trace_id is not None:
            trace = self._new_trace(name, trace_id, parent_id)
        span = self._begin(name, kind, trace, parent, attributes, start_time)
        if parent is None and parent_id is not None:
            span.parent_id = parent_id
        return span

    def _begin(
        self,
        name: str,
        kind: SpanKind,
        trace: Trace | None,
        parent: Span | None,
        attributes: dict[str, Any] | None,
        start_time: int | None,
    ) -> Span:
        if trace is None:
            trace = self._new_trace(name)
        span = Span(
            name,
            kind,
            parent_id=parent.span_id if parent is not None else trace.remote_parent_id,
            trace_id=trace.trace_id,
            attributes=dict(attributes) if attributes else {},
            start_time=start_time,
        )
        span._trace = trace
        span._tracer = self
        span._parent = parent
        if parent is not None:
            parent.children.append(span)
            if span._agent is None:
                span._agent = parent._agent
        with self._lock:
            trace.spans.append(span)
            trace._open += 1
            if trace.root_span is None:
                trace.root_span = span
        for hook in self._on_start:
            try:
                hook(span)
            except BudgetExceeded as exc:
                self.end_span(span, error=exc)  # the refused span says where and why
                raise
            except Exception as exc:
                report(f"span_processor.on_start:{_component_name(hook)}", exc)
        return span

    def end_span(
        self,
        span: Span,
        *,
        status: SpanStatus | None = None,
        error: BaseException | None = None,
        end_time: int | None = None,
    ) -> bool:
        """End ``span`` (idempotent: a second call changes nothing and returns False)."""
        if span._end_mono is not None:
            return False
        if error is not None:
            span.record_exception(
                error,
                status if status is not None else _status_for(error),
            )
        elif status is not None:
            span.status = status
        end_mono = None
        if end_time is not None:
            end_mono = span._start_mono + max(0, end_time - span.start_time)
        if not span._mark_ended(end_mono):
            return False
        assert span._end_mono is not None and span.end_time is not None
        try:
            record = seal(span, (span._end_mono - span._start_mono) / 1e6, span.end_time)
        except Exception as exc:  # a bug in the seal must not lose the trace's other spans
            report("tracer.seal", exc)
            record = _fallback_record(span)
        span._record = record
        for hook in self._on_end:
            try:
                hook(record)
            except Exception as exc:
                report(f"span_processor.on_end:{_component_name(hook)}", exc)
        trace = span._trace
        if trace is None:
            return True
        with self._lock:
            trace._open -= 1
            if trace.root_span is span and not trace._block:
                # An implicit trace (no start_trace block) is done when its root span ends.
                trace._root_done = True
                trace._end_mono = span._end_mono
            done = trace._root_done and trace._open <= 0 and not trace._exported
            if done:
                trace._exported = True
        if done:
            self._finish_trace(trace)
        return True

    def _finish_trace(self, trace: Trace) -> None:
        with self._lock:
            self._active_traces.pop(trace.trace_id, None)
            self._trace_count += 1
        records = [s._record for s in trace.spans if s._record is not None]
        try:
            record = seal_trace(trace, records, self.service_name)
        except Exception as exc:
            report("tracer.seal_trace", exc)
            record = TraceRecord(trace_id=trace.trace_id, spans=records, name=str(trace.name))
        trace._record = record
        if not trace.sampled:
            return
        for exporter in self._exporters:
            try:
                exporter(record)
            except Exception as exc:
                report(f"exporter:{_component_name(exporter)}", exc)

    def sweep(self, max_age_s: float, status: SpanStatus = SpanStatus.TIMEOUT) -> int:
        """End spans still open after ``max_age_s`` seconds (never-ended runs).

        Returns how many spans were ended. Their traces are then exported as usual.
        """
        cutoff = _perf_ns() - int(max_age_s * 1e9)
        stale: list[Span] = []
        with self._lock:
            for trace in self._active_traces.values():
                stale.extend(
                    s for s in trace.spans if s._end_mono is None and s._start_mono < cutoff
                )
        # Innermost first so parents end after their children.
        stale.sort(key=lambda s: s._start_mono, reverse=True)
        for span in stale:
            span.attributes.setdefault("agentos.swept", True)
            self.end_span(span, status=status)
        return len(stale)

    # -- usage -----------------------------------------------------------------------
    def record_usage(
        self,
        span: Span,
        *,
        model: str | None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost_usd: float | None = None,
        provider: str | None = None,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> None:
        """Put one LLM call's usage on ``span`` and price it (None when no price is known).

        ``input_tokens`` includes cache reads and writes (OpenTelemetry GenAI convention).
        """
        if model:
            span.model_name = model
        if provider:
            span.provider = provider
        span.input_tokens = max(0, int(input_tokens or 0))
        span.output_tokens = max(0, int(output_tokens or 0))
        span.cache_read_tokens = max(0, int(cache_read_tokens or 0))
        span.cache_write_tokens = max(0, int(cache_write_tokens or 0))
        span.reasoning_tokens = max(0, int(reasoning_tokens or 0))
        if cost_usd is None:
            cost_usd = self._price(span)
        span.cost_usd = None if cost_usd is None else float(cost_usd)
        if span.cost_usd is None:
            span.attributes[attr.LLM_UNPRICED] = True
        else:
            span.attributes.pop(attr.LLM_UNPRICED, None)
        span.usage_recorded = True
        span.mark_usage_below()

    def record_usage_from(
        self, span: Span, usage: Usage, *, model: str | None, provider: str | None = None
    ) -> None:
        self.record_usage(
            span,
            model=model,
            provider=provider,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
        )

    def _price(self, span: Span) -> float | None:
        if not span.model_name:
            return None
        from agentos_obs.pricing._usage import Usage

        try:
            cost: float | None = self.pricing.cost(
                span.model_name,
                Usage(
                    input_tokens=span.input_tokens,
                    output_tokens=span.output_tokens,
                    cache_read_tokens=span.cache_read_tokens,
                    cache_write_tokens=span.cache_write_tokens,
                    reasoning_tokens=span.reasoning_tokens,
                ),
                provider=span.provider,
            )
        except Exception as exc:
            report("pricing", exc)
            return None
        return cost

    def record_llm_call(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cost_usd: float | None = None,
        duration_ms: float | None = None,
        *,
        provider: str | None = None,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> Span:
        """Record an LLM call's usage on the current span.

        With no current span, a finished LLM span of ``duration_ms`` is recorded as its own
        trace, so the call is never lost. Returns the span that holds the usage.
        """
        span = self.current_span()
        standalone = span is None
        if span is None:
            start_time = None
            if duration_ms is not None:
                start_time = time.time_ns() - int(duration_ms * 1e6)
            span = self.begin_span(model, SpanKind.LLM, use_context=False, start_time=start_time)
        if duration_ms is not None:
            span.attributes[attr.LLM_LATENCY_MS] = float(duration_ms)
        self.record_usage(
            span,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd,
            provider=provider,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
            reasoning_tokens=reasoning_tokens,
        )
        if standalone:
            end_time = None if duration_ms is None else span.start_time + int(duration_ms * 1e6)
            self.end_span(span, end_time=end_time)
        return span

    def record_tool_call(
        self, tool_name: str, success: bool, duration_ms: float
    ) -> SpanEvent | None:
        """Record a tool call as an event on the current span (and in the tool metrics)."""
        span = self.current_span()
        attributes = {
            "tool_name": tool_name,
            "success": bool(success),
            "duration_ms": float(duration_ms),
        }
        if span is None:
            start_time = time.time_ns() - int(duration_ms * 1e6)
            span = self.begin_span(
                tool_name,
                SpanKind.TOOL,
                use_context=False,
                start_time=start_time,
                attributes={attr.TOOL_NAME: tool_name},
            )
            event = span.add_event("tool_call", attributes)
            self.end_span(
                span,
                status=SpanStatus.OK if success else SpanStatus.ERROR,
                end_time=span.start_time + int(duration_ms * 1e6),
            )
            return event
        return span.add_event("tool_call", attributes)

    # -- lifecycle -------------------------------------------------------------------
    def force_flush(self) -> None:
        """Ask exporters and processors that batch (``flush()`` / ``force_flush()``) to
        write now."""
        self._call_each(("flush", "force_flush"), "flush")

    def shutdown(self) -> None:
        """Flush, then close exporters and processors that can be closed."""
        self.force_flush()
        self._call_each(("shutdown", "close"), "shutdown")

    def _call_each(self, method_names: tuple[str, ...], label: str) -> None:
        """Call the first of ``method_names`` each exporter/processor has; never raise."""
        for obj in list(self._exporter_runners) + list(self._processors):
            target = obj.__self__ if hasattr(obj, "__self__") else obj  # bound fn(trace)
            method = next(
                (m for name in method_names if callable(m := getattr(target, name, None))),
                None,
            )
            if method is not None:
                try:
                    method()
                except Exception as exc:
                    report(f"{label}:{_component_name(target)}", exc)


def _fallback_record(span: Span) -> SpanRecord:
    """A bare record (ids, name, kind, status, times) when sealing failed."""
    end = span.end_time if span.end_time is not None else span.start_time
    return SpanRecord(
        span_id=span.span_id,
        trace_id=span.trace_id,
        parent_id=span.parent_id,
        name=str(span.name),
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=end,
        attributes={"agentos.seal_failed": True},
    )


class _NoopScope:
    __slots__ = ("_span",)

    def __init__(self, span: Span) -> None:
        self._span = span

    def __enter__(self) -> Span:
        return self._span

    def __exit__(self, *exc: object) -> None:
        return None


class NoopTracer(Tracer):
    """Same interface as :class:`Tracer`; context managers work; nothing is recorded."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

    def start_span(
        self,
        name: str,
        kind: SpanKind = SpanKind.AGENT,
        attributes: dict[str, Any] | None = None,
    ) -> _SpanScope:
        span = Span(name, kind, attributes=dict(attributes) if attributes else {})
        return _NoopScope(span)  # type: ignore[return-value]

    @contextmanager
    def start_trace(
        self, name: str = "", attributes: Mapping[str, Any] | None = None
    ) -> Iterator[Trace]:
        yield Trace(name=name)

    def begin_span(self, name: str, kind: SpanKind = SpanKind.CHAIN, **kwargs: Any) -> Span:
        return Span(name, kind)

    def end_span(self, span: Span, **kwargs: Any) -> bool:
        return span._mark_ended()

    def record_usage(self, span: Span, **kwargs: Any) -> None:
        return None

    def record_llm_call(self, *args: Any, **kwargs: Any) -> Span:  # type: ignore[override]
        return Span(str(args[0]) if args else "noop", SpanKind.LLM)

    def record_tool_call(self, *args: Any, **kwargs: Any) -> SpanEvent | None:
        return None

    def mark_complete(self, span_id: str = "") -> None:
        return None
