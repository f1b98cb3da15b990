"""
================================================================
FILE: test_resync.py
PATH: /services/lkms102-orders/tests/test_resync.py
DESCRIPTION: Rebuilding the contacts read model from contacts: on demand, on a new broker
VERSION: v1.0.0
UPDATED: 2026-12-02 06:30:00
================================================================

Real parts: the contacts service as a process (its gRPC ListContacts), orders' app with its
lifespan, real brokers (the session's, and a new empty one for "a broker without history").
"""

# === IMPORTS ===
import asyncio
from collections.abc import Iterator

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import text

from app.database import Database
from app.services.contacts_resync import history_missing
from lkern_common.auth import ALL_SCOPES, LKERN_ADMIN
from lkern_common.contracts.contacts import CONTACT_TOPICS
from lkern_devstack.broker import LocalBroker, free_port
from lkern_devstack.dev_pki import DevPki
from lkern_devstack.testing import TestDatabase, TestTokens, eventually
from tests.conftest import (
    ContactsService,
    make_settings,
    running_app,
)

# === CONSTANTS ===
RESYNC = "/api/v1/read-models/contacts/resync"


# === HELPERS ===
async def read_model(db: Database, ids: list[int]) -> dict[int, tuple[int, bool]]:
    """Contact id → (version, deleted) in the read model."""
    async with db.read_session() as session:
        rows = await session.execute(
            text("SELECT id, version, deleted FROM contacts_read_model WHERE id = ANY(:ids)"),
            {"ids": ids},
        )
        return {row.id: (row.version, row.deleted) for row in rows}


async def put_row(db: Database, contact_id: int, version: int) -> None:
    async with db.transaction() as session:
        await session.execute(
            text(
                "INSERT INTO contacts_read_model (id, name, email, is_active, deleted, version) "
                "VALUES (:id, 'Stale', 'stale@example.com', true, false, :version)"
            ),
            {"id": contact_id, "version": version},
        )


@pytest.fixture
def empty_broker() -> Iterator[LocalBroker]:
    """A broker that has never seen an event: the local stack's broker after `lkern up`."""
    with LocalBroker(free_port()) as broker:
        yield broker


# === ON DEMAND ===
async def test_resync_rebuilds_the_read_model_and_keeps_newer_rows(
    client: httpx.AsyncClient, contacts: ContactsService, db: Database
) -> None:
    renamed = (await contacts.create_contact())["id"]
    await contacts.update_contact(renamed, name="Renamed")
    kept = (await contacts.create_contact())["id"]
    ahead = (await contacts.create_contact())["id"]
    deleted = (await contacts.create_contact())["id"]
    await contacts.delete_contact(deleted)
    ids = [renamed, kept, ahead, deleted]

    async def events_applied() -> bool:
        rows = await read_model(db, ids)
        return rows.get(renamed) == (2, False) and rows.get(deleted, (0, False))[1]

    await eventually(events_applied, "the contact events reached the read model", 60)
    # The read model loses its history: rows gone, one left alive that contacts deleted, one
    # ahead of contacts (the version guard must keep it: resync never goes backwards).
    async with db.transaction() as session:
        forget = text("DELETE FROM contacts_read_model WHERE id = ANY(:ids)")
        await session.execute(forget, {"ids": ids})
    await put_row(db, deleted, 1)
    await put_row(db, ahead, 7)

    response = await client.post(RESYNC)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["contacts"] >= 3 and body["changed"] >= 2 and body["deleted"] >= 1
    assert await read_model(db, ids) == {
        renamed: (2, False),
        kept: (1, False),
        ahead: (7, False),
        deleted: (1, True),
    }
    # A second resync finds nothing to change for these contacts.
    again = await client.post(RESYNC)
    assert again.status_code == 200
    assert await read_model(db, ids) == {
        renamed: (2, False),
        kept: (1, False),
        ahead: (7, False),
        deleted: (1, True),
    }


async def test_resync_needs_lkern_admin(
    anonymous_client: httpx.AsyncClient, tokens: TestTokens
) -> None:
    assert (await anonymous_client.post(RESYNC)).status_code == 401
    every_other_scope = tokens.bearer(*(scope for scope in ALL_SCOPES if scope != LKERN_ADMIN))
    response = await anonymous_client.post(RESYNC, headers=every_other_scope)
    assert response.status_code == 403, response.text
    assert (
        await anonymous_client.post(RESYNC, headers=tokens.bearer(LKERN_ADMIN))
    ).status_code == 200


# === AUTOMATIC ===
async def test_a_broker_without_the_groups_offsets_resyncs_at_start(
    contacts: ContactsService,
    test_database: TestDatabase,
    empty_broker: LocalBroker,
    dev_pki: DevPki,
    db: Database,
) -> None:
    contact_id = (await contacts.create_contact())["id"]
    await contacts.update_contact(contact_id, name="Before the new broker")
    settings = make_settings(test_database, empty_broker, contacts.grpc_target, dev_pki)
    # Nothing on this broker: no event will ever bring the contact; only a resync can.
    async with running_app(settings):

        async def resynced() -> bool:
            return (await read_model(db, [contact_id])).get(contact_id) == (2, False)

        await eventually(resynced, "the new broker's orders resynced from contacts", 60)


async def test_history_is_missing_only_for_a_group_without_committed_offsets(
    contacts: ContactsService,
    test_database: TestDatabase,
    empty_broker: LocalBroker,
    dev_pki: DevPki,
) -> None:
    settings = make_settings(test_database, empty_broker, contacts.grpc_target, dev_pki)
    group = settings.kafka_consumer_group_id
    assert await history_missing(settings, group, CONTACT_TOPICS, 10) is True
    # The group reads and commits on this broker: its history is here.
    producer = AIOKafkaProducer(bootstrap_servers=empty_broker.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(CONTACT_TOPICS[0], b"{}", partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=empty_broker.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partition = TopicPartition(CONTACT_TOPICS[0], 0)
        consumer.assign([partition])
        await consumer.commit({partition: 1})
    finally:
        await consumer.stop()
    assert await history_missing(settings, group, CONTACT_TOPICS, 10) is False
    # A broker that does not answer: unknown, so a resync (harmless) rather than a stale model.
    unreachable = make_settings(
        test_database,
        empty_broker,
        contacts.grpc_target,
        dev_pki,
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
    )
    assert await asyncio.wait_for(history_missing(unreachable, group, CONTACT_TOPICS, 3), 30)
