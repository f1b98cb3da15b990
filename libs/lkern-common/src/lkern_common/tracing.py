"""
================================================================
FILE: tracing.py
PATH: /libs/lkern-common/src/lkern_common/tracing.py
DESCRIPTION: OpenTelemetry tracing: set up from OTEL_* variables, off without an endpoint;
             trace context through the outbox, Kafka and the consumer (docs/observability.md)
VERSION: v1.1.0
UPDATED: 2026-12-02 13:35:00
================================================================

Tracing is on in a process when an OTLP endpoint is configured (``OTEL_EXPORTER_OTLP_ENDPOINT``
or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), ``OTEL_TRACES_EXPORTER`` is not ``none`` and
``OTEL_SDK_DISABLED`` is not ``true``. Everything else is OpenTelemetry's own environment
variables, read by the SDK: ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/protobuf``, the default,
or ``grpc``), ``OTEL_SERVICE_NAME`` (default: the service's SERVICE_NAME),
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``
(default ``parentbased_always_on``), ``OTEL_BSP_*`` (batching of the exporter).

When it is off nothing is instrumented at all: no middleware, no interceptor, no engine
listener, no span objects; the hot path pays one boolean test (:func:`tracing_enabled`).

The maintained instrumentations do the protocol work: FastAPI (a SERVER span per request),
gRPC aio client and server (CLIENT / SERVER spans, ``traceparent`` in the metadata),
SQLAlchemy (a CLIENT span per statement of the service's pool) and aiokafka (a PRODUCER
``send`` span that writes ``traceparent`` into the Kafka headers; CONSUMER ``receive`` spans
continuing the producer's trace). Three manual spans fill the gaps:

- ``outbox publish <topic>`` (:func:`outbox_publish_span`): the relay publishing one outbox
  row, a child of the context stored with the event (:func:`trace_headers`, called by
  :func:`lkern_common.events.build_event`, so the context is in the row's ``headers`` column);
- ``<topic> process`` (:func:`consume_span`): the consumer applying a batch of messages in one
  transaction, with a link to each message's producer context and, for a batch of one, that
  context as its parent (OpenTelemetry's messaging conventions);
- ``SELECT <database>`` etc. (:func:`statement_span`): a statement run on asyncpg itself (the
  hot reads and creates, the consumer's upsert), named like SQLAlchemy's statement spans.
"""

# === IMPORTS ===
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
# W3C trace context (https://www.w3.org/TR/trace-context/): what travels with a request.
TRACE_HEADERS = ("traceparent", "tracestate")
INSTRUMENTATION_NAME = "lkern_common"
# Paths whose requests are not traced: probes would fill the backend with noise.
UNTRACED_URLS = "/health,/ready"

# === STATE ===
# Set once per process by configure_tracing(); read on the hot path.
_enabled = False


# === CONFIGURATION ===
def tracing_requested(environ: Mapping[str, str] | None = None) -> bool:
    """True when the OTEL_* variables ask for OTLP trace export (see the module docstring)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {
        item.strip().lower() for item in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",")
    }
    if "otlp" not in exporters:
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    )


def tracing_enabled() -> bool:
    """True once :func:`configure_tracing` turned tracing on in this process."""
    return _enabled


def _otlp_exporter() -> Any:
    """The OTLP span exporter of OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL (endpoint etc. from env)."""
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol != "http/protobuf":
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported: use grpc or http/protobuf"
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter()


def _without_orphan_client_spans(delegate: Any) -> Any:
    """
    ``delegate`` (the sampler of OTEL_TRACES_SAMPLER), except that a CLIENT span without a
    parent is dropped: those are the statements of background housekeeping (readiness probes,
    cleanups, the log-level poll), each of which would be a trace of one span. A client call
    inside a request, a relay publish or a consumer's apply has a parent and is kept.
    """
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

    class NoOrphanClientSpans(Sampler):
        def should_sample(
            self,
            parent_context: Any,
            trace_id: int,
            name: str,
            kind: trace.SpanKind | None = None,
            attributes: Any = None,
            links: Any = None,
            trace_state: Any = None,
        ) -> SamplingResult:
            parent = trace.get_current_span(parent_context).get_span_context()
            if kind is trace.SpanKind.CLIENT and not parent.is_valid:
                return SamplingResult(Decision.DROP)
            result: SamplingResult = delegate.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )
            return result

        def get_description(self) -> str:
            return f"NoOrphanClientSpans{{{delegate.get_description()}}}"

    return NoOrphanClientSpans()


def configure_tracing(service_name: str, service_version: str) -> bool:
    """
    Turn tracing on for this process when the OTEL_* variables ask for it (idempotent):
    a tracer provider exporting in batches over OTLP, W3C trace context, aiokafka
    instrumented. Returns whether tracing is on. The SDK is imported only then.
    """
    global _enabled
    if _enabled or not tracing_requested():
        return _enabled
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create(
        {
            SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or service_name,
            SERVICE_VERSION: service_version,
        }
    )
    provider = TracerProvider(resource=resource)  # sampler: OTEL_TRACES_SAMPLER
    provider.sampler = _without_orphan_client_spans(provider.sampler)
    provider.add_span_processor(BatchSpanProcessor(_otlp_exporter()))
    trace.set_tracer_provider(provider)
    AIOKafkaInstrumentor().instrument(tracer_provider=provider)
    _enabled = True
    logger.info(
        "Tracing on: OTLP export to %s",
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
    )
    return True


# === INSTRUMENTATION HOOKS (no-ops while tracing is off) ===
def instrument_fastapi(app: Any) -> None:
    """A SERVER span per HTTP request (probes excepted), outermost around the app."""
    if not _enabled:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls=UNTRACED_URLS)


def instrument_engine(engine: Any) -> None:
    """A CLIENT span per SQL statement of ``engine`` (an AsyncEngine or Engine)."""
    if not _enabled:
        return
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.instrumentation.sqlalchemy.version import __version__
    from opentelemetry.metrics import get_meter

    # One EngineTracer per engine (SQLAlchemyInstrumentor.instrument() works once per
    # process, and a test process makes several engines). Its connection-usage counter is a
    # no-op here: metrics are Prometheus' job (docs/observability.md).
    meter = get_meter(INSTRUMENTATION_NAME)
    usage = meter.create_up_down_counter("db.client.connections.usage", unit="connections")
    tracer = trace.get_tracer("opentelemetry.instrumentation.sqlalchemy", __version__)
    EngineTracer(tracer, getattr(engine, "sync_engine", engine), usage)  # type: ignore[no-untyped-call]


def grpc_server_interceptors() -> list[Any]:
    """The gRPC aio server interceptor that opens a SERVER span per RPC (empty when off)."""
    if not _enabled:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor()]  # type: ignore[no-untyped-call]


def grpc_client_interceptors() -> list[Any]:
    """The gRPC aio client interceptors: a CLIENT span per call, traceparent in the metadata."""
    if not _enabled:
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors())  # type: ignore[no-untyped-call]


_NO_SPAN: AbstractContextManager[Any] = nullcontext()


def statement_span(sql: str, database: str | None) -> AbstractContextManager[Any]:
    """
    A CLIENT span around one statement run on asyncpg itself (``Database``'s driver pool, a
    transaction's driver connection), which SQLAlchemy's instrumentation does not see; named
    and described as that instrumentation's spans are ("SELECT lkms101_contacts"). A shared
    no-op while tracing is off (hot reads pay one check).
    """
    if not _enabled:
        return _NO_SPAN
    words = sql.split(maxsplit=1)
    name = " ".join(part for part in (words[0] if words else "", database or "") if part)
    attributes = {"db.system": "postgresql", "db.statement": sql}
    if database:
        attributes["db.name"] = database
    return trace.get_tracer(INSTRUMENTATION_NAME).start_as_current_span(
        name or "postgresql", kind=trace.SpanKind.CLIENT, attributes=attributes
    )


# === CONTEXT CARRIERS ===
def trace_headers() -> dict[str, str]:
    """
    The current span's W3C context (``traceparent``, ``tracestate`` when set) as text headers,
    to be stored with an outbox event; ``{}`` when tracing is off or no span is current.
    """
    if not _enabled:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {name: value for name, value in carrier.items() if name in TRACE_HEADERS}


def current_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` in hex of the current span, None without one (log lines)."""
    if not _enabled:
        return None
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


def _kafka_header_text(headers: Sequence[tuple[str, bytes | None]] | None) -> dict[str, str]:
    return {
        name: value.decode("latin-1")
        for name, value in headers or ()
        if name in TRACE_HEADERS and value is not None
    }


# === MANUAL SPANS ===
@contextmanager
def outbox_publish_span(topic: str, headers: dict[str, str]) -> Iterator[None]:
    """
    Around the relay's hand-over of one outbox row to the producer: a span that continues the
    trace stored with the event. The stored ``traceparent`` / ``tracestate`` are taken out of
    ``headers`` (the aiokafka instrumentation writes the context of its ``send`` span instead,
    so that the consumer continues from the publish). Does nothing while tracing is off
    (the stored headers then travel to Kafka as they are).
    """
    if not _enabled:
        yield
        return
    stored = {name: headers.pop(name) for name in TRACE_HEADERS if name in headers}
    parent = propagate.extract(stored)
    tracer = trace.get_tracer(INSTRUMENTATION_NAME)
    with tracer.start_as_current_span(
        f"outbox publish {topic}",
        context=parent,
        kind=trace.SpanKind.INTERNAL,
        attributes={"messaging.system": "kafka", "messaging.destination.name": topic},
    ):
        yield


@contextmanager
def consume_span(group_id: str, records: Sequence[Any]) -> Iterator[None]:
    """
    Around the consumer applying ``records`` (one partition's run, one transaction): a
    ``<topic> process`` CONSUMER span linked to every message's producer context; with a single
    message that context is also its parent, so the apply is inside the producer's trace.
    Does nothing while tracing is off.
    """
    if not _enabled or not records:
        yield
        return
    contexts = [
        trace.get_current_span(
            propagate.extract(_kafka_header_text(record.headers))
        ).get_span_context()
        for record in records
    ]
    links = [trace.Link(span_context) for span_context in contexts if span_context.is_valid]
    if len(records) == 1 and contexts[0].is_valid:
        parent = trace.set_span_in_context(trace.NonRecordingSpan(contexts[0]))
    else:
        parent = otel_context.Context()  # a batch starts its own trace, linked to each message
    first = records[0]
    tracer = trace.get_tracer(INSTRUMENTATION_NAME)
    with tracer.start_as_current_span(
        f"{first.topic} process",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        links=links,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": first.topic,
            "messaging.destination.partition.id": str(first.partition),
            "messaging.consumer.group.name": group_id,
            "messaging.batch.message_count": len(records),
            "messaging.kafka.offset": first.offset,
        },
    ):
        yield
