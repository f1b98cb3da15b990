"""
================================================================
FILE: events.py
PATH: /bench/events.py
DESCRIPTION: Event figures: contact change → orders read model latency, and a 10,000-change burst
VERSION: v1.1.0
UPDATED: 2026-12-02 05:55:00
================================================================

Latency at a steady rate: the bench renames distinct seeded contacts through the REST API
(``PUT /api/v1/contacts/{id}``) at a fixed rate (open loop: a request is sent on schedule
whether or not the previous one has answered). Each change travels: commit with its outbox
row → NOTIFY wakes the relay → Kafka → orders' consumer → read model upsert. The latency of a
change is measured with the database server's clock on both ends (both databases live on the
same server): from the contact's ``updated_at`` (``now()`` of the changing transaction) to the
read model row's ``updated_at`` (``now()`` of the transaction that applied the event). Both are
transaction start times, so the figure is off by the difference of two short transactions
(≈1 ms), and no polling interval enters it.

Burst: 10,000 contacts are renamed in one transaction that writes their ContactUpdated events
with the contacts service's own code (``app.outbox_events``), i.e. 10,000 events enter the
outbox at one commit. The clock starts at that commit; the bench polls (every 20 ms) until the
outbox has no unsent row (published) and the read model holds every new version (applied).
"""

# === IMPORTS ===
import asyncio
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from bench.stack import SERVICE_DIRS, StackTargets

# === CONSTANTS ===
APPLY_TIMEOUT_S = 120.0
POLL_INTERVAL_S = 0.02


# === RESULTS ===
@dataclass
class LatencyResult:
    """End-to-end latency of contact changes made at a steady rate."""

    rate: float
    changes: int
    http_errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    achieved_rate: float


@dataclass
class BurstResult:
    """A burst of changes committed at once."""

    changes: int
    write_s: float  # time to write them (one transaction; not part of the figure)
    published_s: float
    applied_s: float

    @property
    def applied_per_s(self) -> float:
        return self.changes / self.applied_s if self.applied_s else 0.0


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` percentile (nearest rank) of ``values``."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


# === WAITING ===
async def wait_until_applied(
    orders_db: asyncpg.Connection, versions: dict[int, int], limit_s: float = APPLY_TIMEOUT_S
) -> float:
    """Poll the read model until it holds at least ``versions``; returns when (monotonic)."""
    ids = list(versions)
    deadline = time.monotonic() + limit_s
    while True:
        rows = await orders_db.fetch(
            "SELECT id, version FROM contacts_read_model WHERE id = ANY($1::int[])", ids
        )
        if sum(1 for row in rows if row["version"] >= versions[row["id"]]) == len(ids):
            return time.monotonic()
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the orders read model did not apply {len(ids)} contact changes within "
                f"{limit_s:.0f} s"
            )
        await asyncio.sleep(POLL_INTERVAL_S)


async def wait_until_quiet(targets: StackTargets, limit_s: float = APPLY_TIMEOUT_S) -> float:
    """
    Wait until every event written so far is published and applied (so that one scenario's
    events do not load the next one): both outboxes empty, and orders' inbox holds as many
    events as contacts' outbox. Returns the seconds waited.
    """
    started = time.monotonic()
    contacts_db = await asyncpg.connect(targets.contacts_db)
    orders_db = await asyncpg.connect(targets.orders_db)
    try:
        while True:
            unsent_contacts, written = await contacts_db.fetchrow(
                "SELECT count(*) FILTER (WHERE sent_at IS NULL), count(*) FROM outbox_events"
            )
            unsent_orders = await orders_db.fetchval(
                "SELECT count(*) FROM outbox_events WHERE sent_at IS NULL"
            )
            applied = await orders_db.fetchval("SELECT count(*) FROM inbox_events")
            if unsent_contacts == 0 and unsent_orders == 0 and applied >= written:
                return time.monotonic() - started
            if time.monotonic() - started > limit_s:
                raise RuntimeError(
                    f"events still pending after {limit_s:.0f} s: contacts outbox "
                    f"{unsent_contacts} unsent, orders outbox {unsent_orders} unsent, "
                    f"{applied} of {written} contact events applied"
                )
            await asyncio.sleep(0.1)
    finally:
        await contacts_db.close()
        await orders_db.close()


# === LATENCY AT A STEADY RATE ===
async def _rename_at_rate(client: httpx.AsyncClient, ids: list[int], rate: float) -> int:
    """PUT a new name to each contact of ``ids`` on schedule (open loop); returns the errors."""
    nonce = uuid.uuid4().hex[:8]
    errors = 0
    started = time.monotonic()

    async def change(index: int, contact_id: int) -> None:
        nonlocal errors
        await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
        try:
            response = await client.put(
                f"/api/v1/contacts/{contact_id}", json={"name": f"Renamed {nonce} {index}"}
            )
            if response.status_code != 200:
                errors += 1
        except httpx.HTTPError:
            errors += 1

    await asyncio.gather(*(change(i, contact_id) for i, contact_id in enumerate(ids)))
    return errors


async def measure_latency(
    targets: StackTargets, *, rate: float, seconds: float, first_id: int, warm_up_s: float = 2.0
) -> LatencyResult:
    """
    Rename contacts first_id… at ``rate`` per second for ``seconds`` through the REST API.
    A warm-up at the same rate on the next contacts comes first and is not measured: the first
    changes after a start pay one-off costs (statement compilation, prepared statements).
    """
    count = max(1, round(rate * seconds))
    ids = list(range(first_id, first_id + count))
    warm_up = list(range(first_id + count, first_id + count + round(rate * warm_up_s)))
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=targets.contacts_url, limits=limits, timeout=10, headers=targets.auth_headers
    ) as client:
        await _rename_at_rate(client, warm_up, rate)
        started = time.monotonic()
        errors = await _rename_at_rate(client, ids, rate)
        sent_in = time.monotonic() - started

    contacts_db = await asyncpg.connect(targets.contacts_db)
    orders_db = await asyncpg.connect(targets.orders_db)
    try:
        changed = await contacts_db.fetch(
            "SELECT id, version, updated_at FROM contacts WHERE id = ANY($1::int[])", ids
        )
        versions = {row["id"]: row["version"] for row in changed}
        await wait_until_applied(orders_db, versions)
        applied = await orders_db.fetch(
            "SELECT id, updated_at FROM contacts_read_model WHERE id = ANY($1::int[])", ids
        )
    finally:
        await contacts_db.close()
        await orders_db.close()
    changed_at = {row["id"]: row["updated_at"] for row in changed}
    latencies = [
        (row["updated_at"] - changed_at[row["id"]]).total_seconds() * 1000
        for row in applied
        if changed_at.get(row["id"]) is not None
    ]
    return LatencyResult(
        rate=rate,
        changes=len(latencies),
        http_errors=errors,
        p50_ms=statistics.median(latencies) if latencies else 0.0,
        p99_ms=percentile(latencies, 0.99),
        max_ms=max(latencies, default=0.0),
        achieved_rate=count / sent_in if sent_in else 0.0,
    )


# === BURST ===
def _contacts_code() -> tuple[Any, Any]:
    """The contacts service's model and outbox writer (its ``app`` package)."""
    folder = str(SERVICE_DIRS["contacts"])
    if folder not in sys.path:
        sys.path.insert(0, folder)
    from app.models.contact import Contact
    from app.outbox_events import write_contact_event

    return Contact, write_contact_event


async def measure_burst(targets: StackTargets, *, count: int, first_id: int) -> BurstResult:
    """Commit ``count`` contact changes (and their events) at once; time publish and apply."""
    from sqlalchemy import func, update
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from lkern_common.contracts.contacts import ContactUpdated

    contact_model, write_event = _contacts_code()
    engine = create_async_engine(
        targets.contacts_db.replace("postgresql://", "postgresql+asyncpg://")
    )
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    contacts_db = await asyncpg.connect(targets.contacts_db)
    orders_db = await asyncpg.connect(targets.orders_db)
    try:
        last_event = await contacts_db.fetchval("SELECT coalesce(max(id), 0) FROM outbox_events")
        write_started = time.monotonic()
        async with sessions() as session, session.begin():
            statement = (
                update(contact_model)
                .where(contact_model.id.between(first_id, first_id + count - 1))
                .values(
                    name=contact_model.name + " (burst)",
                    version=contact_model.version + 1,
                    updated_at=func.now(),
                )
                .returning(contact_model)
            )
            contacts = (await session.scalars(statement)).all()
            for contact in contacts:
                await write_event(session, ContactUpdated.from_contact(contact, ["name"]))
            versions = {contact.id: contact.version for contact in contacts}
        committed = time.monotonic()
        published_at: float | None = None
        while published_at is None:
            unsent = await contacts_db.fetchval(
                "SELECT count(*) FROM outbox_events WHERE id > $1 AND sent_at IS NULL", last_event
            )
            if unsent == 0:
                published_at = time.monotonic()
            elif published_at is None and time.monotonic() - committed > APPLY_TIMEOUT_S:
                raise RuntimeError(f"{unsent} burst events still unpublished")
            else:
                await asyncio.sleep(POLL_INTERVAL_S)
        applied_at = await wait_until_applied(orders_db, versions)
    finally:
        await contacts_db.close()
        await orders_db.close()
        await engine.dispose()
    return BurstResult(
        changes=len(versions),
        write_s=committed - write_started,
        published_s=published_at - committed,
        applied_s=applied_at - committed,
    )
