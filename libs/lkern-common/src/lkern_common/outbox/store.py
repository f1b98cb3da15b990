"""
================================================================
FILE: store.py
PATH: /libs/lkern-common/src/lkern_common/outbox/store.py
DESCRIPTION: Write events to the outbox inside the caller's transaction; backlog and cleanup
VERSION: v1.2.0
UPDATED: 2026-12-02 06:00:00
================================================================

Requirement for every writer of ``outbox_events`` (this module, or a service's own SQL such as
one statement that writes the change and its event together): the row's ``headers`` column must
hold the event's headers as :func:`lkern_common.events.build_event` made them, *including the
trace context* ``traceparent`` / ``tracestate`` when present. That is how a trace continues from
the request that made the change to the relay's publish and to the consumers
(lkern_common.tracing, docs/observability.md); an SQL writer passes ``event.headers`` as the
JSON of that column, never a hand-picked subset.
"""

# === IMPORTS ===
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from pydantic_core import to_jsonable_python
from sqlalchemy import Table, insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from lkern_common.database import Database
from lkern_common.events import EventEnvelope
from lkern_common.outbox.model import OUTBOX_TABLE, OutboxEvent

# === CONSTANTS ===
# The backlog count stops here, so that /ready stays fast however big the backlog grows.
BACKLOG_COUNT_LIMIT = 100_000
BACKLOG_SQL = f"""
SELECT
    (SELECT count(*) FROM (
        SELECT 1 FROM {OUTBOX_TABLE} WHERE sent_at IS NULL LIMIT {BACKLOG_COUNT_LIMIT}
    ) AS pending) AS pending,
    (SELECT EXTRACT(EPOCH FROM clock_timestamp() - created_at)::float8
       FROM {OUTBOX_TABLE} WHERE sent_at IS NULL ORDER BY id LIMIT 1) AS oldest_age
"""


# One statement for every event: a Core INSERT, not an ORM object. With an ORM object the commit
# ran a second unit-of-work flush for it, ~0.4 ms of CPU per change (docs/performance.md).
INSERT_EVENT = insert(cast(Table, OutboxEvent.__table__))


# === WRITE ===
async def add_event(
    session: AsyncSession,
    topic: str,
    key: str | None,
    payload: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    *,
    event_id: uuid.UUID | str | None = None,
) -> uuid.UUID:
    """
    Add one event to the outbox in ``session``'s transaction: it is published after (and only
    if) that transaction commits. ``payload`` becomes the Kafka value (JSON), ``key`` the
    message key, ``headers`` the Kafka headers (text). ``event_id`` defaults to
    ``payload["event_id"]``, else a new UUID; it is returned. The row is inserted at once
    (pending ORM changes of the session are flushed first), so call it after the change it
    announces, while the changed row is locked.
    """
    raw_id = event_id or payload.get("event_id") or uuid.uuid4()
    event_uuid = raw_id if isinstance(raw_id, uuid.UUID) else uuid.UUID(str(raw_id))
    await session.flush()  # the change first (a no-op when it is flushed already)
    connection = await session.connection()  # Core's path: no ORM statement handling
    await connection.execute(
        INSERT_EVENT,
        {
            "event_id": event_uuid,
            "topic": topic,
            "key": key,
            "payload": to_jsonable_python(dict(payload)),
            "headers": {name: str(value) for name, value in (headers or {}).items()},
        },
    )
    return event_uuid


async def add_envelope(session: AsyncSession, event: EventEnvelope) -> uuid.UUID:
    """Add an event built by :func:`lkern_common.events.build_event` to the outbox."""
    return await add_event(
        session, event.topic, event.key, event.payload, event.headers, event_id=event.event_id
    )


# === BACKLOG ===
@dataclass(frozen=True)
class OutboxBacklog:
    """Unsent events: how many (at most ``BACKLOG_COUNT_LIMIT``) and the oldest one's age."""

    pending: int
    oldest_age_seconds: float | None

    @property
    def truncated(self) -> bool:
        """True when there are at least ``BACKLOG_COUNT_LIMIT`` unsent events."""
        return self.pending >= BACKLOG_COUNT_LIMIT

    def as_details(self) -> dict[str, Any]:
        """The backlog as /ready shows it."""
        age = None if self.oldest_age_seconds is None else round(self.oldest_age_seconds, 3)
        details: dict[str, Any] = {"pending": self.pending, "oldest_pending_age_seconds": age}
        if self.truncated:
            details["pending_is_lower_bound"] = True
        return details


async def outbox_backlog(db: Database) -> OutboxBacklog:
    """The outbox's backlog, read with one short query from the pool (no transaction kept)."""
    async with db.engine.connect() as connection:
        row = (await connection.execute(text(BACKLOG_SQL))).one()
    return OutboxBacklog(pending=int(row.pending), oldest_age_seconds=row.oldest_age)
