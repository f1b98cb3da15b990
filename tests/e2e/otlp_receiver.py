"""
================================================================
FILE: otlp_receiver.py
PATH: /tests/e2e/otlp_receiver.py
DESCRIPTION: A small in-process OTLP/HTTP trace receiver for the tests (opentelemetry-proto)
VERSION: v1.0.0
UPDATED: 2026-12-02 06:20:00
================================================================

Listens on 127.0.0.1 (a free port), accepts ``POST /v1/traces`` with an
``ExportTraceServiceRequest`` (protobuf, optionally gzip), and keeps every span as a
:class:`ReceivedSpan`. The services export to it with ``OTEL_EXPORTER_OTLP_ENDPOINT=<url>``
(the SDK's default protocol, ``http/protobuf``). It is the real wire format that a collector,
Jaeger or Tempo receives.
"""

# === IMPORTS ===
import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

# === CONSTANTS ===
KIND_NAMES = {
    Span.SPAN_KIND_INTERNAL: "internal",
    Span.SPAN_KIND_SERVER: "server",
    Span.SPAN_KIND_CLIENT: "client",
    Span.SPAN_KIND_PRODUCER: "producer",
    Span.SPAN_KIND_CONSUMER: "consumer",
}


# === TYPES ===
@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, ids in hex as W3C traceparent writes them."""

    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    link_trace_ids: tuple[str, ...]
    attributes: dict[str, Any]
    start_ns: int = 0
    end_ns: int = 0


def _attribute_value(value: Any) -> Any:
    field = value.WhichOneof("value")
    return getattr(value, field) if field else None


def decode(body: bytes) -> list[ReceivedSpan]:
    """The spans of one ExportTraceServiceRequest."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _attribute_value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=str(resource.get("service.name")),
                        name=span.name,
                        kind=KIND_NAMES.get(span.kind, "unspecified"),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        link_trace_ids=tuple(link.trace_id.hex() for link in span.links),
                        attributes={a.key: _attribute_value(a.value) for a in span.attributes},
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                    )
                )
    return spans


# === RECEIVER ===
class OtlpReceiver:
    """``with OtlpReceiver() as receiver:`` … ``receiver.url`` … ``receiver.wait_for(...)``."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                received = decode(body)
                with receiver._lock:
                    receiver.spans.extend(received)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def snapshot(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)

    def wait_for(
        self, check: Callable[[list[ReceivedSpan]], bool], what: str, seconds: float = 60.0
    ) -> list[ReceivedSpan]:
        """Poll until ``check(spans)`` holds; the spans then. Fails with what was received."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            spans = self.snapshot()
            if check(spans):
                return spans
            time.sleep(0.2)
        received = "\n".join(
            f"  {s.service} {s.kind} {s.name!r} trace={s.trace_id} parent={s.parent_span_id}"
            for s in self.snapshot()
        )
        raise AssertionError(f"not within {seconds} s: {what}; received:\n{received}")

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
