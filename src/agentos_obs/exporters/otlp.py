"""Export traces to any OpenTelemetry backend over OTLP/HTTP (protobuf). Extra: ``otel``.

``OTLPExporter`` is a tracer exporter: the caller's cost is one append to a bounded queue.
A background thread turns each batch of traces into OpenTelemetry ``ReadableSpan`` objects
(same trace and span ids, parents, times, status, events) and sends them with the
OpenTelemetry SDK's ``OTLPSpanExporter`` (retries with backoff on 429/502/503/504 and
connection errors, within ``timeout_s``). A full queue, an unreachable collector, a slow or
failing one: the traces are counted as dropped (``_guard.dropped_counts()["otlp"]``) and the
app never waits.

Configuration follows the OpenTelemetry environment variables when arguments are not
given: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (full URL), ``OTEL_EXPORTER_OTLP_ENDPOINT``
(base URL, ``/v1/traces`` appended), ``OTEL_EXPORTER_OTLP_HEADERS`` (``k=v,k2=v2``),
``OTEL_EXPORTER_OTLP_TIMEOUT``, ``OTEL_EXPORTER_OTLP_COMPRESSION``, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``. Attributes carry both the GenAI conventions and OpenInference
(see :mod:`agentos_obs.exporters._semconv`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import unquote, urlsplit

try:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, TraceFlags
    from opentelemetry.trace import SpanKind as OtelSpanKind
    from opentelemetry.trace.status import Status, StatusCode
except ImportError as exc:  # pragma: no cover - depends on the extra
    raise ImportError(
        "agentos_obs.exporters.otlp needs the OpenTelemetry SDK and OTLP exporter: "
        "pip install 'agentos-obs[otel]'"
    ) from exc

import agentos_obs._internal.guard as _guard
from agentos_obs._internal.batching import BatchWorker
from agentos_obs.errors import ConfigurationError
from agentos_obs.exporters._semconv import otel_attributes, otel_span_name, to_attribute_value
from agentos_obs.tracing._spans import Span, SpanKind, SpanStatus, Trace

__all__ = ["OTLPExporter", "parse_headers", "to_readable_spans"]


def _package_version() -> str:
    try:
        return version("agentos-obs")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


_SCOPE = InstrumentationScope("agentos_obs", _package_version())
_CLIENT_KINDS = frozenset({SpanKind.LLM, SpanKind.EMBEDDING})  # calls to a model service
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_COMPRESSIONS = {"none": Compression.NoCompression, "gzip": Compression.Gzip}
if hasattr(Compression, "Deflate"):
    _COMPRESSIONS["deflate"] = Compression.Deflate


def parse_headers(headers: Mapping[str, str] | str | None) -> dict[str, str] | None:
    """Headers as a dict, from a mapping or the ``k=v,k2=v2`` form of the OTel env vars."""
    if headers is None:
        return None
    if isinstance(headers, str):
        parsed: dict[str, str] = {}
        for item in headers.split(","):
            if not item.strip():
                continue
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ConfigurationError(
                    "headers must look like 'key=value,key2=value2' (value may be URL-encoded)"
                )
            parsed[unquote(key.strip())] = unquote(value.strip())
        return parsed
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ConfigurationError("headers must map str to str")
        return dict(headers)
    raise ConfigurationError(f"headers must be a mapping or 'k=v,...' text, got {headers!r}")


def _traces_endpoint(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"OTLP endpoint must be an http(s) URL like http://localhost:4318, got {endpoint!r}"
        )
    if parts.path in ("", "/"):
        # A base URL, like OTEL_EXPORTER_OTLP_ENDPOINT: the traces path is implied.
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


def _hex_id(value: str | None, length: int) -> int | None:
    if not value or len(value) != length:
        return None
    try:
        number = int(value, 16)
    except ValueError:
        return None
    return number or None


def _status(span: Span) -> Status:
    if span.status is SpanStatus.ERROR or span.status is SpanStatus.TIMEOUT:
        message = span.attributes.get("error.message") or span.attributes.get("error")
        description = str(message) if message else span.status.value
        return Status(StatusCode.ERROR, description)
    # OK and CANCELLED: instrumentation leaves the status unset (OpenTelemetry spec); our
    # own status is kept in the agentos.span.status attribute.
    return Status(StatusCode.UNSET)


def _events(span: Span) -> list[Event]:
    events = []
    for event in span.events:
        attributes = {}
        for key, value in event.attributes.items():
            converted = to_attribute_value(value)
            if converted is not None:
                attributes[str(key)] = converted
        events.append(Event(event.name, attributes, timestamp=event.timestamp))
    return events


def to_readable_spans(
    trace: Trace, resource: Resource | None = None
) -> tuple[list[ReadableSpan], int]:
    """OpenTelemetry spans of ``trace`` with its exact ids; and how many spans were skipped
    because their ids are not W3C ids (spans built by hand with made-up ids)."""
    resource = resource if resource is not None else Resource.create({})
    spans: list[ReadableSpan] = []
    skipped = 0
    for span in list(trace.spans):
        trace_id = _hex_id(span.trace_id, 32)
        span_id = _hex_id(span.span_id, 16)
        if trace_id is None or span_id is None:
            skipped += 1
            continue
        parent = None
        parent_id = _hex_id(span.parent_id, 16)
        if parent_id is not None:
            # A parent outside this process (propagation.extract, an OpenTelemetry span of
            # the app) is a remote parent.
            parent = SpanContext(
                trace_id, parent_id, is_remote=span.parent is None, trace_flags=_SAMPLED
            )
        end_time = span.end_time if span.end_time is not None else span.start_time
        spans.append(
            ReadableSpan(
                name=otel_span_name(span),
                context=SpanContext(trace_id, span_id, is_remote=False, trace_flags=_SAMPLED),
                parent=parent,
                resource=resource,
                attributes=otel_attributes(span, trace),
                events=_events(span),
                kind=OtelSpanKind.CLIENT if span.kind in _CLIENT_KINDS else OtelSpanKind.INTERNAL,
                status=_status(span),
                start_time=span.start_time,
                end_time=end_time,
                instrumentation_scope=_SCOPE,
            )
        )
    return spans, skipped


class OTLPExporter:
    """Send finished traces to an OTLP/HTTP endpoint, batched off the caller's thread.

    Args:
        endpoint: ``http(s)://host:4318`` (``/v1/traces`` is appended to a bare host) or the
            full traces URL. Default: the ``OTEL_EXPORTER_OTLP_*`` variables, else
            ``http://localhost:4318/v1/traces``.
        headers: extra HTTP headers (dict, or ``"k=v,k2=v2"``), e.g. an ``Authorization``.
            Merged over ``OTEL_EXPORTER_OTLP_HEADERS``. Never logged.
        timeout_s: time allowed per export, retries included (default 10 s or
            ``OTEL_EXPORTER_OTLP_TIMEOUT``).
        service_name: ``service.name`` of the resource; default ``OTEL_SERVICE_NAME``, else
            the tracer's service name.
        resource_attributes: more resource attributes (``deployment.environment``...).
        compression: ``"gzip"``, ``"deflate"`` or ``"none"`` (default: env, else none).
        batch_size: traces per export request at most.
        flush_interval_s: longest a trace waits before being sent.
        max_queue: traces waiting at most; more are dropped and counted.
        span_exporter: any OpenTelemetry ``SpanExporter`` to use instead (e.g. the gRPC
            ``OTLPSpanExporter``); endpoint, headers, timeout and compression are then unused.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        headers: Mapping[str, str] | str | None = None,
        *,
        timeout_s: float | None = None,
        service_name: str | None = None,
        resource_attributes: Mapping[str, Any] | None = None,
        compression: str | None = None,
        batch_size: int = 64,
        flush_interval_s: float = 1.0,
        max_queue: int = 2048,
        span_exporter: SpanExporter | None = None,
    ) -> None:
        if timeout_s is not None and timeout_s <= 0:
            raise ConfigurationError(f"timeout_s must be > 0, got {timeout_s!r}")
        if service_name is not None and (not isinstance(service_name, str) or not service_name):
            raise ConfigurationError("service_name must be a non-empty string")
        self.endpoint: str | None = None
        # Kept to rebuild the HTTP exporter in a forked child (its connection pool would
        # share the parent's sockets); None when the caller gave their own exporter.
        self._exporter_kwargs: dict[str, Any] | None = None
        self._rebuild = False
        if span_exporter is None:
            kwargs: dict[str, Any] = {}
            if endpoint is not None:
                kwargs["endpoint"] = self.endpoint = _traces_endpoint(endpoint)
            parsed_headers = parse_headers(headers)
            if parsed_headers is not None:
                kwargs["headers"] = parsed_headers
            if timeout_s is not None:
                kwargs["timeout"] = float(timeout_s)
            if compression is not None:
                choice = _COMPRESSIONS.get(str(compression).lower())
                if choice is None:
                    raise ConfigurationError(
                        f"compression must be one of {sorted(_COMPRESSIONS)}, got {compression!r}"
                    )
                kwargs["compression"] = choice
            try:
                span_exporter = OTLPSpanExporter(**kwargs)
            except ValueError as exc:
                raise ConfigurationError(f"invalid OTLP exporter settings: {exc}") from exc
            self.endpoint = getattr(span_exporter, "_endpoint", self.endpoint)
            self._exporter_kwargs = kwargs
        self._exporter = span_exporter
        self._service_name = service_name or os.environ.get("OTEL_SERVICE_NAME") or None
        self._resource_attributes = {
            str(k): to_attribute_value(v) for k, v in (resource_attributes or {}).items()
        }
        self._resources: dict[str, Resource] = {}
        self._resources_lock = threading.Lock()
        self._worker: BatchWorker[Trace] = BatchWorker(
            "otlp",
            self._send,
            batch_size=batch_size,
            flush_interval_s=flush_interval_s,
            max_queue=max_queue,
            # The SDK returns FAILURE for transport errors; what else it raises (a
            # serialisation bug...) is ours and surfaces in strict mode.
            expected_errors=(OSError,),
            on_reset_after_fork=self._after_fork,
        )
        self._shut_down = False

    # -- caller side -----------------------------------------------------------------
    def export(self, trace: Trace) -> None:
        """Queue a finished trace (the tracer calls this; never blocks)."""
        self._worker.put(trace)

    __call__ = export

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Send everything queued so far; False if not done within ``timeout_s``."""
        return self._worker.flush(timeout_s)

    force_flush = flush

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Flush, stop the thread and close the HTTP session (idempotent)."""
        if self._shut_down:
            return
        self._shut_down = True
        try:
            self._worker.close(timeout_s)
        finally:
            self._exporter.shutdown()

    close = shutdown

    @property
    def dropped(self) -> int:
        """Traces lost so far (full queue, failed or refused exports)."""
        return self._worker.dropped

    # -- worker side -----------------------------------------------------------------
    def _after_fork(self) -> None:
        self._rebuild = True  # a fresh HTTP session on first use in the child
        self._resources_lock = threading.Lock()

    def _resource_for(self, trace: Trace) -> Resource:
        tracer = trace._tracer
        name = self._service_name or (tracer.service_name if tracer is not None else "agentos")
        resource = self._resources.get(name)
        if resource is None:
            with self._resources_lock:
                resource = self._resources.get(name)
                if resource is None:
                    attributes: dict[str, Any] = dict(self._resource_attributes)
                    attributes["service.name"] = name
                    resource = Resource.create(
                        {k: v for k, v in attributes.items() if v is not None}
                    )
                    self._resources[name] = resource
        return resource

    def _send(self, traces: Sequence[Trace]) -> None:
        spans: list[ReadableSpan] = []
        for trace in traces:
            converted, skipped = to_readable_spans(trace, self._resource_for(trace))
            if skipped:
                _guard.count_drop("otlp.invalid_ids", skipped, "spans whose ids are not W3C ids")
            spans.extend(converted)
        if not spans:
            return
        if self._rebuild and self._exporter_kwargs is not None:
            self._exporter = OTLPSpanExporter(**self._exporter_kwargs)
            self._rebuild = False
        result = self._exporter.export(spans)
        if result is not SpanExportResult.SUCCESS:
            self._worker.record_loss(len(traces), "export to the OTLP endpoint failed")

    def __repr__(self) -> str:
        return f"OTLPExporter(endpoint={self.endpoint!r})"
