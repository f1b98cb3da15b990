"""
================================================================
FILE: test_observability.py
PATH: /tests/e2e/test_observability.py
DESCRIPTION: End-to-end: traces over REST → outbox → Kafka → consumer and REST → gRPC, JSON
             log lines with the ids, the runtime log level in every worker
VERSION: v1.1.0
UPDATED: 2026-12-02 13:30:00
================================================================

One `lkern up` with tracing on (an in-process OTLP/HTTP receiver, tests/e2e/otlp_receiver.py),
LOG_FORMAT=json and HTTP_WORKERS=2. Each traced request sends its own W3C ``traceparent``, so the
test knows the trace id to look for (the services continue a caller's trace, as behind a
gateway or the web UI's own instrumentation).
"""

# === IMPORTS ===
import dataclasses
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lkern_devstack.testing import eventually_blocking as eventually
from tests.e2e.conftest import RunningStack, ready_stack
from tests.e2e.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.e2e.test_orders_contacts import read_model_row

# === CONSTANTS ===
CONTACTS = "lkms101-contacts"
ORDERS = "lkms102-orders"
WORKERS = 2
WAIT_S = 60.0


# === FIXTURES ===
@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def traced_stack(receiver: OtlpReceiver) -> Iterator[RunningStack]:
    with ready_stack(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_BSP_SCHEDULE_DELAY="200",
        LOG_FORMAT="json",
        LOG_REQUESTS_SAMPLE="1",  # every access line (by default successful ones are sampled)
        HTTP_WORKERS=str(WORKERS),
        LOG_LEVEL_POLL_SECONDS="1",
    ) as running:
        yield running


# === HELPERS ===
def dump_trace(receiver: OtlpReceiver, trace_id: str, name: str) -> None:
    """With LKERN_TRACE_DUMP=<folder>: the trace's spans as JSON, for the picture in
    docs/observability.md (scripts/trace_waterfall.py renders it)."""
    folder = os.environ.get("LKERN_TRACE_DUMP")
    if folder:
        time.sleep(2)  # the trace's last spans (e.g. the consumer's commit) may be on the way
        spans = in_trace(receiver.snapshot(), trace_id)
        Path(folder, f"{name}.json").write_text(
            json.dumps([dataclasses.asdict(span) for span in spans], indent=1, default=str)
        )


def new_traceparent() -> tuple[str, str]:
    """A sampled W3C traceparent of a new trace, and its trace id."""
    trace_id = secrets.token_hex(16)
    return f"00-{trace_id}-{secrets.token_hex(8)}-01", trace_id


def in_trace(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.trace_id == trace_id]


def find(spans: list[ReceivedSpan], service: str, kind: str, name_part: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.service == service and s.kind == kind and name_part in s.name]


def json_lines(stack: RunningStack, service: str) -> list[dict[str, Any]]:
    """The JSON log lines a service printed (lkern up prefixes them with the service name)."""
    found = []
    for line in stack.output:
        name, _, rest = line.partition("|")
        if name.strip() == service and rest.strip().startswith("{"):
            found.append(json.loads(rest))
    return found


# === TRACES ===
def test_a_contact_change_is_one_trace_from_rest_to_orders_consumer(
    traced_stack: RunningStack, receiver: OtlpReceiver
) -> None:
    contacts = traced_stack.url("contacts")
    with traced_stack.client() as client:
        created = client.post(
            f"{contacts}/api/v1/contacts/", json={"name": "Traced", "email": "t@example.com"}
        )
        assert created.status_code == 201, created.text
        contact_id = created.json()["id"]
        eventually(lambda: read_model_row(traced_stack, contact_id) is not None, "read model", 30)

        traceparent, trace_id = new_traceparent()
        changed = client.put(
            f"{contacts}/api/v1/contacts/{contact_id}",
            json={"name": "Traced Two"},
            headers={"traceparent": traceparent},
        )
        assert changed.status_code == 200, changed.text

    def processed(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        return [
            s
            for s in find(spans, ORDERS, "consumer", "lkern.contacts.updated process")
            if s.trace_id == trace_id or trace_id in s.link_trace_ids
        ]

    def upserts(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        """The read model's upsert (on the transaction's asyncpg connection) below the apply."""
        applies = {s.span_id for s in processed(spans)}
        return [
            s
            for s in spans
            if s.kind == "client"
            and s.parent_span_id in applies
            and "contacts_read_model" in str(s.attributes.get("db.statement", ""))
        ]

    def complete(spans: list[ReceivedSpan]) -> bool:
        trace = in_trace(spans, trace_id)
        return bool(
            find(trace, CONTACTS, "server", "PUT /api/v1/contacts/{contact_id}")
            and find(trace, CONTACTS, "internal", "outbox publish lkern.contacts.updated")
            and find(trace, CONTACTS, "producer", "lkern.contacts.updated")
            and find(trace, ORDERS, "consumer", "lkern.contacts.updated")
            and processed(spans)
            and upserts(spans)
        )

    spans = receiver.wait_for(complete, "the contact change's trace reaches orders", WAIT_S)
    dump_trace(receiver, trace_id, "contact-change")
    trace = in_trace(spans, trace_id)
    [rest] = find(trace, CONTACTS, "server", "PUT /api/v1/contacts/{contact_id}")
    # Its database statements are in it, below the request.
    statements = [s for s in trace if s.service == CONTACTS and s.kind == "client"]
    assert any("UPDATE" in s.name or "contacts" in s.name for s in statements), statements
    # The relay's publish continues the trace stored with the outbox row.
    [publish] = find(trace, CONTACTS, "internal", "outbox publish lkern.contacts.updated")
    contact_span_ids = {s.span_id for s in trace if s.service == CONTACTS}
    assert publish.parent_span_id in contact_span_ids
    # Orders received it in the same trace (the aiokafka instrumentation's receive span).
    received = find(trace, ORDERS, "consumer", "receive")
    assert received and all(s.parent_span_id for s in received)
    assert rest.parent_span_id  # the caller's traceparent was continued
    # The apply's statements are in it: the inbox claim (SQLAlchemy) and the upsert (asyncpg).
    [upsert, *_] = upserts(spans)
    assert upsert.name == "INSERT lkms102_orders", upsert
    # Background statements (probes, cleanups, polls) are not exported as one-span traces.
    orphans = [s for s in receiver.snapshot() if s.kind == "client" and not s.parent_span_id]
    assert not orphans, orphans


def test_an_order_creation_is_one_trace_over_grpc(
    traced_stack: RunningStack, receiver: OtlpReceiver
) -> None:
    contacts, orders = traced_stack.url("contacts"), traced_stack.url("orders")
    with traced_stack.client() as client:
        contact_id = client.post(
            f"{contacts}/api/v1/contacts/", json={"name": "Buyer", "email": "buyer@example.com"}
        ).json()["id"]
        traceparent, trace_id = new_traceparent()
        order = client.post(
            f"{orders}/api/v1/orders/",
            json={
                "contact_id": contact_id,
                "lines": [{"description": "x", "quantity": 1, "unit_price": 5}],
            },
            headers={"traceparent": traceparent},
        )
        assert order.status_code == 201, order.text

    def complete(spans: list[ReceivedSpan]) -> bool:
        trace = in_trace(spans, trace_id)
        return bool(
            find(trace, ORDERS, "server", "POST /api/v1/orders/")
            and find(trace, ORDERS, "client", "contacts.ContactsService")
            and find(trace, CONTACTS, "server", "contacts.ContactsService")
        )

    spans = receiver.wait_for(complete, "the order's trace reaches contacts over gRPC", WAIT_S)
    dump_trace(receiver, trace_id, "order-creation")
    trace = in_trace(spans, trace_id)
    calls = find(trace, ORDERS, "client", "contacts.ContactsService")
    served = find(trace, CONTACTS, "server", "contacts.ContactsService")
    assert {s.parent_span_id for s in served} <= {c.span_id for c in calls}


# === LOGS ===
def test_json_log_lines_carry_the_request_and_trace_ids(
    traced_stack: RunningStack, receiver: OtlpReceiver
) -> None:
    traceparent, trace_id = new_traceparent()
    request_id = f"e2e-json-{secrets.token_hex(4)}"
    with traced_stack.client() as client:
        answered = client.get(
            f"{traced_stack.url('contacts')}/api/v1/contacts/",
            headers={"traceparent": traceparent, "X-Request-ID": request_id},
        )
        assert answered.status_code == 200

    def access_line() -> dict[str, Any] | None:
        lines = [x for x in json_lines(traced_stack, CONTACTS) if x.get("request_id") == request_id]
        return lines[-1] if lines else None

    eventually(lambda: access_line() is not None, "the request's log line", 10)
    line = access_line()
    assert line is not None
    assert line["trace_id"] == trace_id
    assert len(line["span_id"]) == 16
    assert line["subject"] == "e2e"
    assert line["service"] == CONTACTS
    assert line["level"] == "INFO"
    assert line["logger"] == "lkern.access"
    assert "GET /api/v1/contacts/" in line["message"]
    assert line["timestamp"].startswith(time.strftime("%Y-", time.gmtime()))
    # Every line of the service is JSON (apart from what other programs print).
    assert len(json_lines(traced_stack, CONTACTS)) > 5


# === RUNTIME LOG LEVEL ===
def test_the_log_level_changes_in_every_worker_without_a_restart(
    traced_stack: RunningStack,
) -> None:
    url = f"{traced_stack.url('contacts')}/config/log-level"
    headers = {"Authorization": f"Bearer {traced_stack.token()}"}
    changed = httpx.put(url, json={"level": "debug"}, headers=headers, timeout=10)
    assert changed.status_code == 200, changed.text
    try:
        seen: dict[int, str] = {}
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            # A new connection each time: the kernel hands it to either worker.
            shown = httpx.get(url, headers=headers, timeout=10).json()
            seen[shown["worker"]] = shown["level"]
            if len(seen) == WORKERS and set(seen.values()) == {"debug"}:
                break
            time.sleep(0.1)
        assert len(seen) == WORKERS and set(seen.values()) == {"debug"}, seen
        eventually(
            lambda: any(x["level"] == "DEBUG" for x in json_lines(traced_stack, CONTACTS)),
            "a DEBUG line",
            10,
        )
    finally:
        httpx.put(url, json={"level": "info"}, headers=headers, timeout=10)
