"""
================================================================
FILE: envelope.py
PATH: /libs/lkern-common/src/lkern_common/kafka/envelope.py
DESCRIPTION: What the consumer reads from a message: envelope, refusal reasons, request id
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

The pure pieces of :mod:`lkern_common.kafka.consumer` (no broker, no database): the envelope a
message value must carry, the reasons a message is refused (the dead-letter ``x-dlq-reason``),
the request id a message's handling runs under, and the handler type.
"""

# === IMPORTS ===
import enum
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from lkern_common.request_context import REQUEST_ID_HEADER, accept_request_id

# === CONSTANTS ===
MAX_ERROR_CHARS = 2000

# === TYPES ===
EventHandler = Callable[[AsyncSession, dict[str, Any]], Awaitable[None]]


class DeadLetterReason(enum.StrEnum):
    """Why a message went to the dead-letter topic (header ``x-dlq-reason``)."""

    BAD_SIGNATURE = "bad-signature"
    INVALID_JSON = "invalid-json"
    INVALID_ENVELOPE = "invalid-envelope"
    NO_HANDLER = "no-handler"
    HANDLER_FAILED = "handler-failed"


class Outcome(enum.StrEnum):
    """What became of one message."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    DEAD_LETTERED = "dead-lettered"


class InvalidEventError(ValueError):
    """A message that can never be processed (bad JSON or envelope): dead-lettered at once."""

    def __init__(self, reason: DeadLetterReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Envelope:
    """The envelope fields the consumer needs, parsed from a message value."""

    event_id: uuid.UUID
    event_type: str
    event: dict[str, Any]


# === PARSING ===
def parse_envelope(value: bytes | None) -> Envelope:
    """Decode a message value and check the envelope; raises :class:`InvalidEventError`."""
    if value is None:
        raise InvalidEventError(DeadLetterReason.INVALID_JSON, "message has no value")
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidEventError(DeadLetterReason.INVALID_JSON, f"not valid JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise InvalidEventError(
            DeadLetterReason.INVALID_ENVELOPE,
            f"value is a JSON {type(event).__name__}, not an object",
        )
    raw_id = event.get("event_id")
    if not isinstance(raw_id, str):
        raise InvalidEventError(DeadLetterReason.INVALID_ENVELOPE, "event_id is missing")
    try:
        event_id = uuid.UUID(raw_id)
    except ValueError as exc:
        raise InvalidEventError(
            DeadLetterReason.INVALID_ENVELOPE, f"event_id is not a UUID: {raw_id[:100]!r}"
        ) from exc
    event_type = event.get("event_type")
    if not isinstance(event_type, str) or not event_type.strip():
        raise InvalidEventError(DeadLetterReason.INVALID_ENVELOPE, "event_type is missing")
    return Envelope(event_id=event_id, event_type=event_type, event=event)


# === HELPERS ===
def error_text(exc: BaseException) -> str:
    """``Type: message`` of an exception, cut to ``MAX_ERROR_CHARS``."""
    text = f"{type(exc).__name__}: {exc}"
    return text[:MAX_ERROR_CHARS]


def header_value(record: Any, name: str) -> str | None:
    """A message header as text (case-insensitive name), None when absent."""
    for key, value in record.headers or ():
        if key.lower() == name and value is not None:
            text: str = value.decode("utf-8", errors="replace")
            return text
    return None


def request_id_of(record: Any, envelope: Envelope | None) -> str:
    """The request id of a message: its x-request-id header, else the event id, else a new one."""
    header_id = header_value(record, REQUEST_ID_HEADER)
    if header_id:
        return accept_request_id(header_id)
    if envelope is not None:
        return str(envelope.event_id)
    return accept_request_id(None)
