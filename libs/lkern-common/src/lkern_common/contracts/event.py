"""
================================================================
FILE: event.py
PATH: /libs/lkern-common/src/lkern_common/contracts/event.py
DESCRIPTION: Base of every event contract: topic, type, version, payload model, JSON Schema
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

An event contract is a pydantic model of the event's own fields (the ``data`` that
:func:`lkern_common.events.build_event` wraps in the envelope) with class constants saying
where and how it is published: ``TOPIC``, ``EVENT_TYPE``, ``EVENT_VERSION``, ``SOURCE``.

- The publisher builds the model from its domain object (a pure function, e.g.
  ``ContactCreated.from_contact(contact)``) and writes ``event.envelope()`` to the
  outbox. The REST response schema is never involved, so a REST change cannot change an event.
- A consumer parses the whole event value with ``Contract.parse(value)``: envelope fields are
  ignored (the consumer library checked them), fields it does not know are ignored (a newer
  producer may have added some within the same version).
- :func:`event_json_schema` is the JSON Schema of the serialised value (envelope included); the
  committed copies in ``contracts/schemas/`` make every contract change a visible diff
  (docs/events.md, "Changing a contract").
"""

# === IMPORTS ===
from datetime import datetime
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema

from lkern_common.events import (
    DEFAULT_EVENT_VERSION,
    ENVELOPE_FIELDS,
    EventEnvelope,
    build_event,
    format_timestamp,
)

# === TYPES ===
# An instant as events write it: ISO 8601 in UTC with a "Z" (lkern_common.events.format_timestamp),
# whatever the time zone of the datetime it was built from.
UtcTimestamp = Annotated[
    datetime,
    PlainSerializer(format_timestamp, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]

# The envelope's JSON Schema (build_event adds these fields to every event's value).
ENVELOPE_PROPERTIES: dict[str, dict[str, Any]] = {
    "event_id": {"type": "string", "format": "uuid", "description": "Unique per event"},
    "event_version": {"type": "integer", "description": "Version of this payload's schema"},
    "occurred_at": {"type": "string", "format": "date-time", "description": "When, UTC"},
    "source": {"type": "string", "description": "The publishing service"},
    "actor": {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "description": "Who made the change (token subject), null without a caller",
    },
}


# === CONTRACT ===
class EventContract(BaseModel):
    """
    The service's own fields of one event type. Subclasses set the four constants; their
    fields are the payload next to the envelope.
    """

    # Fields with a default are still always written: the schema says they are required.
    model_config = ConfigDict(
        extra="ignore", frozen=True, json_schema_serialization_defaults_required=True
    )

    TOPIC: ClassVar[str]
    EVENT_TYPE: ClassVar[str]
    EVENT_VERSION: ClassVar[int] = DEFAULT_EVENT_VERSION
    SOURCE: ClassVar[str]

    def event_key(self) -> str:
        """The Kafka key (the aggregate's id): all events of one aggregate share a partition."""
        raise NotImplementedError

    def occurred_at(self) -> datetime:
        """When the change happened (the envelope's ``occurred_at``)."""
        raise NotImplementedError

    def event_data(self) -> dict[str, Any]:
        """The payload as JSON-compatible values (what the event value carries)."""
        return self.model_dump(mode="json")

    def envelope(self) -> EventEnvelope:
        """The event, wrapped in the shared envelope, ready for the outbox."""
        return build_event(
            topic=self.TOPIC,
            key=self.event_key(),
            event_type=self.EVENT_TYPE,
            source=self.SOURCE,
            data=self.event_data(),
            occurred_at=self.occurred_at(),
            event_version=self.EVENT_VERSION,
        )

    @classmethod
    def parse(cls, value: dict[str, Any]) -> Self:
        """A consumer's view of an event value (envelope and unknown fields ignored)."""
        return cls.model_validate(value)


# === JSON SCHEMA ===
def event_json_schema(contract: type[EventContract]) -> dict[str, Any]:
    """
    The JSON Schema of the event's serialised value: the contract's fields (as serialised) plus
    the envelope, with ``event_type``, ``event_version`` and ``source`` fixed to the contract's.
    """
    schema = contract.model_json_schema(mode="serialization")
    properties = {
        "event_type": {"const": contract.EVENT_TYPE},
        **schema.pop("properties"),
        **ENVELOPE_PROPERTIES,
        "event_version": {**ENVELOPE_PROPERTIES["event_version"], "const": contract.EVENT_VERSION},
        "source": {**ENVELOPE_PROPERTIES["source"], "const": contract.SOURCE},
    }
    envelope_required = [name for name in ENVELOPE_FIELDS if name != "event_type"]
    required = ["event_type", *schema.pop("required", []), *envelope_required]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"lkern:{contract.TOPIC}:v{contract.EVENT_VERSION}",
        "title": contract.EVENT_TYPE,
        "description": (contract.__doc__ or "").strip(),
        "x-kafka-topic": contract.TOPIC,
        "type": "object",
        "properties": properties,
        "required": required,
        **{key: value for key, value in schema.items() if key not in ("title", "description")},
    }
