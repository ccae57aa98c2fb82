"""Export traces to any OpenTelemetry backend over OTLP/HTTP (protobuf). Extra: ``otel``.

``OTLPExporter`` is a tracer exporter: the caller's cost is one append to a bounded queue.
A background thread turns each batch of traces into OpenTelemetry ``ReadableSpan`` objects
(same trace and span ids, parents, times, status, events) and sends them with the
OpenTelemetry SDK's ``OTLPSpanExporter`` (retries with backoff on 429/502/503/504 and
connection errors, within ``timeout_s``). A full queue, an unreachable collector, a slow or
failing one: the traces are counted as dropped (``_guard.dropped_counts()["otlp"]``) and the
app never waits.

Everything is read from the sealed :class:`~agentos_obs.tracing.TraceRecord` (the service
name too, unless given here). A trace that cannot be converted or encoded (a record built by
hand with a value the seal would have repaired) is dropped alone and counted under
``"otlp.unencodable"`` with one log line naming the reason; the rest of its batch is sent.

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
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
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
import agentos_obs.attributes as attr
from agentos_obs._internal.batching import BatchWorker
from agentos_obs.errors import ConfigurationError
from agentos_obs.exporters._input import finished_record, unencodable
from agentos_obs.exporters._semconv import (
    CLIENT_OPERATIONS,
    genai_operation,
    otel_attributes,
    otel_span_name,
    to_attribute_value,
)
from agentos_obs.tracing import SpanRecord, Trace, TraceRecord

__all__ = ["OTLPExporter", "encoding_problem", "parse_headers", "to_readable_spans"]


def _package_version() -> str:
    try:
        return version("agentos-obs")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


_SCOPE = InstrumentationScope("agentos_obs", _package_version())
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


def encoding_problem(spans: Sequence[ReadableSpan]) -> Exception | None:
    """Why ``spans`` cannot be encoded as an OTLP request, or None when they can."""
    try:
        encode_spans(spans).SerializePartialToString()
    except Exception as exc:
        return exc
    return None


def _status(record: SpanRecord) -> Status:
    if record.failed:
        message = record.attributes.get(attr.ERROR_MESSAGE) or record.attributes.get("error")
        description = str(message) if message else record.status.value
        return Status(StatusCode.ERROR, description)
    # OK and CANCELLED: instrumentation leaves the status unset (OpenTelemetry spec); our
    # own status is kept in the agentos.span.status attribute.
    return Status(StatusCode.UNSET)


def _events(record: SpanRecord) -> list[Event]:
    events = []
    for event in record.events:
        attributes = {}
        for key, value in event.attributes.items():
            converted = to_attribute_value(value)
            if converted is not None:
                attributes[key] = converted
        events.append(Event(event.name, attributes, timestamp=event.timestamp))
    return events


def to_readable_spans(
    trace: TraceRecord, resource: Resource | None = None
) -> tuple[list[ReadableSpan], int]:
    """OpenTelemetry spans of ``trace`` with its exact ids; and how many spans were skipped
    because their ids are not W3C ids (records built by hand with made-up ids)."""
    resource = resource if resource is not None else Resource.create({})
    local_ids = {record.span_id for record in trace.spans}
    spans: list[ReadableSpan] = []
    skipped = 0
    for record in trace.spans:
        trace_id = _hex_id(record.trace_id, 32)
        span_id = _hex_id(record.span_id, 16)
        if trace_id is None or span_id is None:
            skipped += 1
            continue
        parent = None
        parent_id = _hex_id(record.parent_id, 16)
        if parent_id is not None:
            # A parent outside this trace's spans (propagation.extract, an OpenTelemetry
            # span of the app) is a remote parent.
            parent = SpanContext(
                trace_id,
                parent_id,
                is_remote=record.parent_id not in local_ids,
                trace_flags=_SAMPLED,
            )
        operation = genai_operation(record)
        client = operation in CLIENT_OPERATIONS
        spans.append(
            ReadableSpan(
                name=otel_span_name(record, operation),
                context=SpanContext(trace_id, span_id, is_remote=False, trace_flags=_SAMPLED),
                parent=parent,
                resource=resource,
                attributes=otel_attributes(record, trace, operation),
                events=_events(record),
                kind=OtelSpanKind.CLIENT if client else OtelSpanKind.INTERNAL,
                status=_status(record),
                start_time=record.start_time,
                end_time=record.end_time,
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
        resource_values = {
            str(k): to_attribute_value(v) for k, v in (resource_attributes or {}).items()
        }
        # Built now, on the caller's thread: Resource.create runs the resource detectors on
        # a thread pool, which cannot start once the interpreter is exiting, and the first
        # export may well happen at exit (a short script).
        self._base_resource = Resource.create(
            {k: v for k, v in resource_values.items() if v is not None}
        )
        self._resources: dict[str, Resource] = {}
        self._resources_lock = threading.Lock()
        self._worker: BatchWorker[TraceRecord] = BatchWorker(
            "otlp",
            self._send,
            batch_size=batch_size,
            flush_interval_s=flush_interval_s,
            max_queue=max_queue,
            # Export failures are caught in _send; what else escapes is a bug of ours and
            # surfaces in strict mode.
            on_reset_after_fork=self._after_fork,
        )
        self._shut_down = False

    queued = True  # export() never blocks: a tracer need not wrap it in a QueuedExporter

    # -- caller side -----------------------------------------------------------------
    def export(self, trace: TraceRecord | Trace) -> None:
        """Queue a finished trace (the tracer calls this with its record; never blocks).

        A live ``Trace`` is exported through its sealed record; anything else (a trace not
        finished by a tracer) is dropped and counted under ``otlp.unencodable``."""
        record = finished_record(trace, "otlp")
        if record is not None:
            self._worker.put(record)

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
        """Traces lost so far (full queue, unencodable, failed or refused exports)."""
        return self._worker.dropped

    # -- worker side -----------------------------------------------------------------
    def _after_fork(self) -> None:
        self._rebuild = True  # a fresh HTTP session on first use in the child
        self._resources_lock = threading.Lock()

    def _resource_for(self, trace: TraceRecord) -> Resource:
        name = self._service_name or trace.service_name or "agentos"
        resource = self._resources.get(name)
        if resource is None:
            with self._resources_lock:
                resource = self._resources.get(name)
                if resource is None:
                    # A merge, not Resource.create: no detectors, no threads (see __init__).
                    resource = self._base_resource.merge(Resource({"service.name": name}))
                    self._resources[name] = resource
        return resource

    def _send(self, traces: Sequence[TraceRecord]) -> None:
        # Each trace is converted on its own: one that cannot be is dropped alone.
        groups: list[list[ReadableSpan]] = []
        for trace in traces:
            try:
                converted, skipped = to_readable_spans(trace, self._resource_for(trace))
            except Exception as exc:
                self._worker.record_loss(1, unencodable(exc), component="otlp.unencodable")
                continue
            if skipped:
                _guard.count_drop("otlp.invalid_ids", skipped, "spans whose ids are not W3C ids")
            if converted:
                groups.append(converted)
        if not groups:
            return
        if self._rebuild and self._exporter_kwargs is not None:
            self._exporter = OTLPSpanExporter(**self._exporter_kwargs)
            self._rebuild = False
        failure = self._export(groups)
        if failure is None:
            return
        # The request failed. The SDK reports a value it cannot encode the same way as an
        # unreachable endpoint, so find the traces that cannot be encoded (only now: the
        # check costs as much as the encoding) and send the others again.
        good = []
        for group in groups:
            problem = encoding_problem(group)
            if problem is None:
                good.append(group)
            else:
                self._worker.record_loss(1, unencodable(problem), component="otlp.unencodable")
        if good and len(good) < len(groups):
            failure = self._export(good)
            if failure is None:
                return
        if good:
            self._worker.record_loss(len(good), "export to the OTLP endpoint failed")
        if isinstance(failure, BaseException):
            _guard.report("otlp", failure, reraise_in_strict=False)

    def _export(self, groups: list[list[ReadableSpan]]) -> BaseException | bool | None:
        """None when sent; else the exception raised, or False for a refused export."""
        spans = [span for group in groups for span in group]
        try:
            result = self._exporter.export(spans)
        except Exception as exc:  # a custom SpanExporter that raises instead of failing
            return exc
        return None if result is SpanExportResult.SUCCESS else False

    def __repr__(self) -> str:
        return f"OTLPExporter(endpoint={self.endpoint!r})"
