"""
================================================================
FILE: events.py
PATH: /libs/lkern-common/src/lkern_common/events.py
DESCRIPTION: Event envelope shared by every service: event id, version, time, source, headers
VERSION: v1.2.0
UPDATED: 2026-12-02 06:00:00
================================================================

Every event a service publishes is a JSON object with the service's own fields (for contacts the
standard's ``event_type``, ``contact_id``, ``contact_name``, ``contact_email``, ``timestamp``,
plus the contact snapshot) and this envelope:

- ``event_id``: a UUID, unique per event; consumers deduplicate on it (inbox);
- ``event_type``: e.g. ``ContactCreated``;
- ``event_version``: version of the payload's schema (1; bumped on an incompatible change);
- ``occurred_at``: when the change happened (ISO 8601, UTC);
- ``source``: the service that published it (e.g. ``lkms101-contacts``);
- ``actor``: who made the change: the access token's subject of the request (or the calling
  service on gRPC), null when the change had no caller (e.g. a maintenance job).

The Kafka headers repeat the envelope CloudEvents-style (``ce_id``, ``ce_type``, ``ce_source``,
``ce_time``, ``ce_specversion``, ``content-type``) and carry the request id
(``x-request-id``) and, when tracing is on, the W3C trace context of the change
(``traceparent``, ``tracestate``), so a consumer can route and trace without parsing the value.
The contract is documented in docs/events.md.
"""

# === IMPORTS ===
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_jsonable_python

from lkern_common.request_context import REQUEST_ID_HEADER, get_request_id, get_subject
from lkern_common.tracing import trace_headers

# === CONSTANTS ===
DEFAULT_EVENT_VERSION = 1
CLOUDEVENTS_SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
ENVELOPE_FIELDS = ("event_id", "event_type", "event_version", "occurred_at", "source", "actor")


# === HELPERS ===
def format_timestamp(moment: datetime) -> str:
    """
    ISO 8601 text of ``moment`` in UTC, as the REST API renders datetimes (pydantic):
    ``2026-11-26T10:30:00.123456Z``. A naive datetime is taken as UTC.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    text: str = to_jsonable_python(moment.astimezone(UTC))
    return text


# === ENVELOPE ===
@dataclass(frozen=True)
class EventEnvelope:
    """One event ready for the outbox: where it goes, its JSON value and its Kafka headers."""

    topic: str
    key: str | None
    payload: dict[str, Any]
    headers: dict[str, str]

    @property
    def event_id(self) -> str:
        """The event's UUID (text)."""
        value: str = self.payload["event_id"]
        return value


def build_event(
    *,
    topic: str,
    key: str | None,
    event_type: str,
    source: str,
    data: Mapping[str, Any],
    occurred_at: datetime | None = None,
    event_version: int = DEFAULT_EVENT_VERSION,
    event_id: uuid.UUID | None = None,
    request_id: str | None = None,
    actor: str | None = None,
) -> EventEnvelope:
    """
    Wrap a service's event ``data`` in the envelope. ``occurred_at`` defaults to now (UTC),
    ``event_id`` to a new UUID4, ``request_id`` to the current request's id (none outside a
    request: then there is no ``x-request-id`` header), ``actor`` to the current request's
    subject (lkern_common.request_context; None outside a request). ``data`` must be JSON-compatible
    (datetimes, UUIDs and the like are rendered as the REST API renders them) and must not
    use an envelope field name.
    """
    clashes = sorted(set(data) & set(ENVELOPE_FIELDS))
    if clashes:
        raise ValueError(f"event data may not set envelope fields: {', '.join(clashes)}")
    event_id_text = str(event_id or uuid.uuid4())
    occurred_text = format_timestamp(occurred_at or datetime.now(UTC))
    payload: dict[str, Any] = {
        "event_type": event_type,
        **to_jsonable_python(dict(data)),
        "event_id": event_id_text,
        "event_version": event_version,
        "occurred_at": occurred_text,
        "source": source,
        "actor": actor or get_subject(),
    }
    headers = {
        "ce_id": event_id_text,
        "ce_type": event_type,
        "ce_source": source,
        "ce_time": occurred_text,
        "ce_specversion": CLOUDEVENTS_SPEC_VERSION,
        "content-type": CONTENT_TYPE,
    }
    request_id = request_id or get_request_id()
    if request_id:
        headers[REQUEST_ID_HEADER] = request_id
    # The W3C trace context of the change (traceparent / tracestate; none while tracing is
    # off): stored with the event in the outbox, the relay's publish continues that trace.
    headers.update(trace_headers())
    return EventEnvelope(topic=topic, key=key, payload=payload, headers=headers)
