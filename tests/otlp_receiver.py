"""A real OTLP/HTTP trace receiver on 127.0.0.1 for end-to-end tests.

It decodes ``ExportTraceServiceRequest`` protobuf bodies with ``opentelemetry-proto`` (the
schema every collector uses), so a test sees exactly what a backend would receive. It can
answer with an error status or hold requests until released (a slow backend).
"""

from __future__ import annotations

import gzip
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

__all__ = ["OTLPReceiver", "ReceivedSpan", "decode_value"]


def decode_value(value: AnyValue) -> Any:
    """An OTLP AnyValue as the Python value it encodes."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [decode_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: decode_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which)


def _attributes(items: Any) -> dict[str, Any]:
    return {kv.key: decode_value(kv.value) for kv in items}


@dataclass
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_time: int
    end_time: int
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    status_code: int
    status_message: str
    resource: dict[str, Any]
    scope: str
    flags: int = 0
    links: list[Any] = field(default_factory=list)


class OTLPReceiver:
    """``with OTLPReceiver() as receiver: ... receiver.endpoint ... receiver.spans``."""

    def __init__(self) -> None:
        self.status_code = 200
        self.gate: threading.Event | None = None  # when set: hold each request until it is set
        self.requests: list[ExportTraceServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        self.spans: list[ReceivedSpan] = []
        self.attempts = 0  # requests seen, accepted or not
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._cond:
                    receiver.attempts += 1
                    receiver._cond.notify_all()
                gate = receiver.gate
                if gate is not None:
                    gate.wait(30)
                status = receiver.status_code
                if self.path != "/v1/traces":
                    status = 404
                if status == 200:
                    encoding = (self.headers.get("Content-Encoding") or "").lower()
                    if encoding == "gzip":
                        body = gzip.decompress(body)
                    elif encoding == "deflate":
                        body = zlib.decompress(body)
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    receiver._record(request, dict(self.headers.items()))
                    payload = ExportTraceServiceResponse().SerializeToString()
                else:
                    payload = b"unavailable"
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.endpoint = f"http://127.0.0.1:{self.port}/v1/traces"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _record(self, request: ExportTraceServiceRequest, headers: dict[str, str]) -> None:
        received: list[ReceivedSpan] = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            start_time=span.start_time_unix_nano,
                            end_time=span.end_time_unix_nano,
                            attributes=_attributes(span.attributes),
                            events=[
                                {
                                    "name": e.name,
                                    "timestamp": e.time_unix_nano,
                                    "attributes": _attributes(e.attributes),
                                }
                                for e in span.events
                            ],
                            status_code=span.status.code,
                            status_message=span.status.message,
                            resource=resource,
                            scope=scope_spans.scope.name,
                            flags=span.flags,
                        )
                    )
        with self._cond:
            self.requests.append(request)
            self.headers.append({k.lower(): v for k, v in headers.items()})
            self.spans.extend(received)
            self._cond.notify_all()

    def wait_for_spans(self, count: int, timeout_s: float = 20.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.spans) >= count, timeout_s)

    def wait_for_attempts(self, count: int, timeout_s: float = 20.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.attempts >= count, timeout_s)

    def by_name(self) -> dict[str, ReceivedSpan]:
        with self._cond:
            return {span.name: span for span in self.spans}

    def start(self) -> OTLPReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.gate is not None:
            self.gate.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
