"""
================================================================
FILE: test_fast_paths.py
PATH: /services/lkms101-contacts/tests/test_fast_paths.py
DESCRIPTION: The kept count behind X-Total-Count and the one-statement create, on real PostgreSQL
VERSION: v1.0.0
UPDATED: 2026-12-02 06:45:00
================================================================

docs/performance.md (issue 18): the list's total comes from contact_counts (kept by triggers in
the writing transactions), and a create writes the contact and its event in one statement
whose created_at text is rendered by PostgreSQL exactly as the event contract renders it.
"""

# === IMPORTS ===
import asyncio
from datetime import UTC, datetime

import httpx
from sqlalchemy import text

from app.data.contacts import CREATED_AT_TEXT_SQL
from app.database import Database
from lkern_common.events import format_timestamp

# === CONSTANTS ===
API = "/api/v1/contacts/"


# === HELPERS ===
async def counted(db: Database) -> dict[str, int]:
    """count(*) of contacts, per status, and what contact_counts says."""
    async with db.read_session() as session:
        row = (
            await session.execute(
                text(
                    "SELECT count(*) AS all_, count(*) FILTER (WHERE is_active) AS active, "
                    "(SELECT coalesce(sum(n), 0) FROM contact_counts) AS kept, "
                    "(SELECT coalesce(sum(n), 0) FROM contact_counts WHERE is_active) "
                    "AS kept_active FROM contacts"
                )
            )
        ).one()
    return {"all": row.all_, "active": row.active, "kept": row.kept, "kept_active": row.kept_active}


async def totals(client: httpx.AsyncClient) -> dict[str, int]:
    """X-Total-Count of the list: unfiltered, active and inactive."""
    found = {}
    for name, params in (
        ("all", {}),
        ("active", {"is_active": "true"}),
        ("inactive", {"is_active": "false"}),
    ):
        response = await client.get(API, params={**params, "limit": 1})
        assert response.status_code == 200
        found[name] = int(response.headers["x-total-count"])
    return found


# === COUNT ===
async def test_the_kept_count_stays_exact_under_concurrent_creates_changes_and_deletes(
    client: httpx.AsyncClient, db: Database
) -> None:
    async def create(number: int) -> int:
        response = await client.post(API, json={"name": f"N {number}", "email": f"c{number}@x.io"})
        assert response.status_code == 201
        identifier: int = response.json()["id"]
        return identifier

    ids = await asyncio.gather(*(create(number) for number in range(30)))

    async def deactivate(contact_id: int) -> None:
        response = await client.put(f"{API}{contact_id}", json={"is_active": False})
        assert response.status_code == 200

    async def delete(contact_id: int) -> None:
        assert (await client.delete(f"{API}{contact_id}")).status_code == 204

    # Creates, status changes and deletes at once, on the pool's several connections.
    await asyncio.gather(
        *(create(number) for number in range(30, 60)),
        *(deactivate(contact_id) for contact_id in ids[:10]),
        *(delete(contact_id) for contact_id in ids[10:18]),
    )

    kept = await counted(db)
    assert kept["all"] == 52 and kept["active"] == 42
    assert (kept["kept"], kept["kept_active"]) == (kept["all"], kept["active"])
    assert await totals(client) == {"all": 52, "active": 42, "inactive": 10}
    # A page past the end still tells the total; a search counts its matches.
    beyond = await client.get(API, params={"skip": 500})
    assert beyond.json() == [] and beyond.headers["x-total-count"] == "52"
    searched = await client.get(API, params={"q": "N 3", "limit": 2})
    assert searched.headers["x-total-count"] == "11"  # N 3, N 30 … N 39


async def test_bulk_writes_and_truncate_keep_the_count_exact(
    client: httpx.AsyncClient, db: Database
) -> None:
    async with db.transaction() as session:
        await session.execute(
            text(
                "INSERT INTO contacts (name, email, is_active) "
                "SELECT 'B ' || n, 'b' || n || '@x.io', n % 3 = 0 FROM generate_series(1, 300) n"
            )
        )
        await session.execute(text("UPDATE contacts SET is_active = NOT is_active WHERE id <= 30"))
        await session.execute(text("DELETE FROM contacts WHERE id > 250"))
    kept = await counted(db)
    assert (
        (kept["kept"], kept["kept_active"])
        == (kept["all"], kept["active"])
        == (250, kept["active"])
    )
    assert (await totals(client))["all"] == 250

    async with db.transaction() as session:
        await session.execute(text("TRUNCATE contacts CASCADE"))
    assert await totals(client) == {"all": 0, "active": 0, "inactive": 0}
    assert (await counted(db))["kept"] == 0


# === CREATE IN ONE STATEMENT ===
async def test_the_database_renders_created_at_as_the_event_contract_does(db: Database) -> None:
    moments = [
        datetime(2026, 12, 2, 6, 45, 1, 120000, tzinfo=UTC),
        datetime(2026, 12, 2, 6, 45, 1, tzinfo=UTC),  # no fraction: none written
        datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    async with db.transaction() as session:
        # The session's time zone must not matter (the text is always UTC with "Z").
        await session.execute(text("SET LOCAL TIME ZONE 'America/St_Johns'"))
        connection = await session.connection()
        for moment in moments:
            rendered = (
                await connection.exec_driver_sql(
                    f"SELECT {CREATED_AT_TEXT_SQL} FROM (SELECT $1::timestamptz AS created_at) c",
                    (moment,),
                )
            ).scalar_one()
            assert rendered == format_timestamp(moment)


async def test_a_create_writes_its_event_in_the_same_statement(
    client: httpx.AsyncClient, db: Database
) -> None:
    created = (await client.post(API, json={"name": "One", "email": "one@x.io"})).json()
    duplicate = await client.post(API, json={"name": "Two", "email": "ONE@x.io"})
    assert duplicate.status_code == 400
    async with db.read_session() as session:
        rows = (
            await session.execute(
                text("SELECT key, payload::text AS payload FROM outbox_events ORDER BY id")
            )
        ).all()
    mine = [row for row in rows if '"one@x.io"' in row.payload or '"ONE@x.io"' in row.payload]
    assert [row.key for row in mine] == [str(created["id"])]  # the refused one left no event
