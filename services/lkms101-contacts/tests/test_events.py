"""
================================================================
FILE: test_events.py
PATH: /services/lkms101-contacts/tests/test_events.py
DESCRIPTION: Contact events through the outbox against a real PostgreSQL and a real Tansu broker
VERSION: v1.2.0
UPDATED: 2026-12-02 06:25:00
================================================================

Every test tags its contacts with a unique email domain and reads the topics from the earliest
offset with a consumer group of its own, counting events by ``event_id`` (never end offsets).
The app's relay never polls within a run (conftest): only LISTEN/NOTIFY wakes it.
"""

# === IMPORTS ===
import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

import httpx
import jsonschema_rs
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import select

from app.config import Settings
from app.database import Database
from app.main import create_app
from app.schemas.contact import ContactCreate, ContactUpdate
from app.services.contacts_service import ContactsService
from lkern_common.contracts import EVENTS_BY_TYPE
from lkern_common.contracts.contacts import CONTACT_TOPICS
from lkern_common.contracts.json_schemas import committed_schema
from lkern_common.event_signing import SIGNATURE_HEADER, EventVerifier
from lkern_common.kafka.topics import ensure_topics
from lkern_common.outbox import OutboxEvent, OutboxRelay, RelayRole
from lkern_devstack.broker import LocalBroker
from lkern_devstack.dev_pki import DevPki
from lkern_devstack.testing import TEST_SUBJECT, CollectedEvent, EventCollector, eventually
from tests.conftest import SERVICE, TOKENS

# === CONSTANTS ===
API = "/api/v1/contacts/"
TOPIC = {
    "ContactCreated": "lkern.contacts.created",
    "ContactUpdated": "lkern.contacts.updated",
    "ContactDeleted": "lkern.contacts.deleted",
}
WAIT_S = 60.0

pytestmark = pytest.mark.timeout(180)

CollectorFactory = Callable[[], AbstractAsyncContextManager[EventCollector]]


# === FIXTURES ===
@pytest.fixture
def tag() -> str:
    """A unique email domain for this test's contacts."""
    return f"t{uuid.uuid4().hex[:10]}.example.com"


@pytest.fixture
async def new_collector(settings: Settings, app: FastAPI) -> CollectorFactory:
    """Makes collectors over the contact topics (created first, as the relay would)."""
    await ensure_topics(settings, CONTACT_TOPICS)

    def factory() -> AbstractAsyncContextManager[EventCollector]:
        return EventCollector(settings.kafka_bootstrap_servers, CONTACT_TOPICS)

    return factory


@pytest.fixture
async def collector(new_collector: CollectorFactory) -> AsyncIterator[EventCollector]:
    async with new_collector() as events:
        yield events


# === HELPERS ===
def mine(events: list[CollectedEvent], tag: str) -> list[CollectedEvent]:
    """This test's events (by the contact's email domain), first delivery of each event id."""
    seen: set[str] = set()
    result = []
    for event in events:
        email = event.value.get("contact", {}).get("email", "")
        if email.endswith("@" + tag) and event.event_id not in seen:
            seen.add(event.event_id)
            result.append(event)
    return result


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def expected_value(
    event_type: str,
    snapshot: dict[str, Any],
    event: CollectedEvent,
    occurred_at: str,
    changed_fields: list[str] | None = None,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "event_type": event_type,
        "contact_id": snapshot["id"],
        "contact_name": snapshot["name"],
        "contact_email": snapshot["email"],
        "timestamp": occurred_at,
        "contact": snapshot,
        "event_id": event.event_id,
        "event_version": 1,
        "occurred_at": occurred_at,
        "source": "lkms101-contacts",
        "actor": TEST_SUBJECT,  # the subject of the `client` fixture's token
    }
    if changed_fields is not None:
        value["changed_fields"] = changed_fields
    # What was published fits the shared contract's committed schema (lkern_common.contracts).
    schema = committed_schema(EVENTS_BY_TYPE[event_type])
    jsonschema_rs.validator_for(schema, validate_formats=True).validate(event.value)
    return value


def signature_of(event: CollectedEvent, pki: DevPki) -> str:
    """The event's signature header, after checking it with contacts' public key (JWKS)."""
    signature = event.headers[SIGNATURE_HEADER]
    verifier = EventVerifier({SERVICE: pki.event_jwks_file(SERVICE)})
    verifier.verify(SERVICE, event.raw, signature.encode())
    return signature


def expected_headers(
    event_type: str, event: CollectedEvent, request_id: str, pki: DevPki
) -> dict[str, str]:
    return {
        SIGNATURE_HEADER: signature_of(event, pki),
        "ce_id": event.event_id,
        "ce_type": event_type,
        "ce_source": "lkms101-contacts",
        "ce_time": event.value["occurred_at"],
        "ce_specversion": "1.0",
        "content-type": "application/json",
        "x-request-id": request_id,
    }


async def outbox_rows(db: Database, tag: str) -> list[OutboxEvent]:
    async with db.transaction() as session:
        rows = await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
        return [row for row in rows if row.payload["contact"]["email"].endswith("@" + tag)]


# === ONE EVENT PER CHANGE ===
async def test_each_change_publishes_one_event_with_the_exact_payload_and_headers(
    client: httpx.AsyncClient, collector: EventCollector, db: Database, tag: str, dev_pki: DevPki
) -> None:
    email = f"jana@{tag}"
    created_response = await client.post(
        API,
        json={"name": "Jana Nováková", "email": email, "phone": "+421 900 000 000"},
        headers={"X-Request-ID": "req-create"},
    )
    assert created_response.status_code == 201
    created = created_response.json()
    url = f"{API}{created['id']}"

    update_response = await client.put(
        url,
        json={"name": "Jana N.", "phone": "+421 911 111 111"},
        headers={"X-Request-ID": "req-update"},
    )
    assert update_response.status_code == 200
    updated = update_response.json()
    # Sending the current values changes nothing: no event.
    noop = await client.put(url, json={"name": "Jana N.", "email": email})
    assert noop.status_code == 200
    assert noop.json()["version"] == updated["version"] == 2
    delete_response = await client.delete(url, headers={"X-Request-ID": "req-delete"})
    assert delete_response.status_code == 204

    got = await collector.wait_for(lambda events: len(mine(events, tag)) >= 3, within=WAIT_S)
    events = {event.value["event_type"]: event for event in mine(got, tag)}
    assert sorted(events) == ["ContactCreated", "ContactDeleted", "ContactUpdated"]

    create_event = events["ContactCreated"]
    assert create_event.topic == "lkern.contacts.created"
    assert create_event.key == str(created["id"])
    assert create_event.value == expected_value(
        "ContactCreated", created, create_event, created["created_at"]
    )
    assert create_event.headers == expected_headers(
        "ContactCreated", create_event, "req-create", dev_pki
    )
    assert uuid.UUID(create_event.event_id).version == 4

    update_event = events["ContactUpdated"]
    assert update_event.topic == "lkern.contacts.updated"
    assert update_event.key == str(created["id"])
    assert update_event.value == expected_value(
        "ContactUpdated", updated, update_event, updated["updated_at"], ["name", "phone"]
    )
    assert update_event.headers == expected_headers(
        "ContactUpdated", update_event, "req-update", dev_pki
    )

    delete_event = events["ContactDeleted"]
    assert delete_event.topic == "lkern.contacts.deleted"
    assert delete_event.key == str(created["id"])
    deleted_at = delete_event.value["occurred_at"]
    assert parse_time(deleted_at) >= parse_time(updated["updated_at"])
    last_state = {**updated, "version": updated["version"] + 1}
    assert delete_event.value == expected_value(
        "ContactDeleted", last_state, delete_event, deleted_at
    )
    assert delete_event.headers == expected_headers(
        "ContactDeleted", delete_event, "req-delete", dev_pki
    )

    # The outbox holds exactly these three events (the no-op update wrote none), all sent.
    rows = await outbox_rows(db, tag)
    assert [str(row.event_id) for row in rows] == [
        create_event.event_id,
        update_event.event_id,
        delete_event.event_id,
    ]
    assert all(row.sent_at is not None for row in rows)


# === ROLLBACK ===
async def test_a_rolled_back_change_publishes_nothing(
    client: httpx.AsyncClient, collector: EventCollector, db: Database, tag: str
) -> None:
    created = (await client.post(API, json={"name": "Keep", "email": f"keep@{tag}"})).json()

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with db.transaction() as session:
            service = ContactsService(session)
            await service.update_contact(created["id"], ContactUpdate(name="Rolled back"))
            await service.create_contact(ContactCreate(name="Ghost", email=f"ghost@{tag}"))
            raise Abort
    # A committed change of the same contact after it: same key, same partition, so had the
    # rolled-back update been published, it would arrive before this one.
    committed = await client.put(f"{API}{created['id']}", json={"name": "Committed"})
    assert committed.status_code == 200

    def committed_update_arrived(events: list[CollectedEvent]) -> bool:
        return any(
            event.value["event_type"] == "ContactUpdated"
            and event.value["contact_name"] == "Committed"
            for event in mine(events, tag)
        )

    got = mine(await collector.wait_for(committed_update_arrived, within=WAIT_S), tag)
    names = [(event.value["event_type"], event.value["contact_name"]) for event in got]
    assert ("ContactUpdated", "Rolled back") not in names
    assert all(event.value["contact_email"] != f"ghost@{tag}" for event in got)
    rows = await outbox_rows(db, tag)
    assert [(row.payload["event_type"], row.payload["contact_name"]) for row in rows] == [
        ("ContactCreated", "Keep"),
        ("ContactUpdated", "Committed"),
    ]


# === LISTEN/NOTIFY ===
async def test_notify_wakes_the_relay_long_before_its_poll_interval(
    app: FastAPI,
    settings: Settings,
    client: httpx.AsyncClient,
    collector: EventCollector,
    tag: str,
) -> None:
    relay: OutboxRelay = app.state.outbox_relay
    # The relay polls once an hour here: an event within 5 s can only come from NOTIFY.
    assert settings.outbox_poll_interval_seconds >= 3600
    await eventually(
        lambda: _relay_idle(relay), "the relay has published everything", timeout_s=WAIT_S
    )
    notifications = relay.status.notifications

    response = await client.post(API, json={"name": "Fast", "email": f"fast@{tag}"})
    assert response.status_code == 201
    got = await collector.wait_for(lambda events: len(mine(events, tag)) == 1, within=5.0)
    assert mine(got, tag)[0].value["contact_id"] == response.json()["id"]
    assert relay.status.notifications > notifications


async def _relay_idle(relay: OutboxRelay) -> bool:
    return relay.status.role == RelayRole.LEADER and (await relay.backlog()).pending == 0


# === BROKER OUTAGE ===
async def test_broker_outage_loses_nothing_and_keeps_per_contact_order(
    app: FastAPI,
    client: httpx.AsyncClient,
    kafka_broker: LocalBroker,
    new_collector: CollectorFactory,
    tag: str,
) -> None:
    relay: OutboxRelay = app.state.outbox_relay
    await eventually(
        lambda: _relay_idle(relay), "the relay has published everything", timeout_s=WAIT_S
    )
    failures = relay.status.failures
    contacts = 50
    expected: dict[str, list[tuple[str, int]]] = {}  # key -> [(event_type, version)]

    paused_at = datetime.now(UTC)
    kafka_broker.pause()
    try:
        # 200 changes while the broker does not answer: 50 creates, 100 updates, 50 deletes.
        for number in range(contacts):
            response = await client.post(
                API, json={"name": f"Outage {number}", "email": f"c{number}@{tag}"}
            )
            assert response.status_code == 201
            key = str(response.json()["id"])
            expected[key] = [("ContactCreated", 1)]
            for version in (2, 3):
                response = await client.put(f"{API}{key}", json={"name": f"v{version}"})
                assert response.status_code == 200
                assert response.json()["version"] == version
                expected[key].append(("ContactUpdated", version))
            response = await client.delete(f"{API}{key}")
            assert response.status_code == 204
            expected[key].append(("ContactDeleted", 4))

        # The relay tries, fails (request timeout) and keeps the events; the service stays ready.
        await eventually(
            lambda: relay.status.failures > failures, "a publish round failed", timeout_s=WAIT_S
        )
        ready = await client.get("/ready")
        assert ready.status_code == 200
        outbox = ready.json()["checks"]["outbox"]
        assert outbox["ok"] is True
        assert outbox["pending"] > 0
        assert outbox["oldest_pending_age_seconds"] > 0
        # The broker is reported by its last verification, which the pause stopped.
        assert datetime.fromisoformat(outbox["broker_verified_at"]) <= paused_at
    finally:
        kafka_broker.resume()

    total = sum(len(changes) for changes in expected.values())
    assert total == 200
    async with new_collector() as collector:
        got = mine(
            await collector.wait_for(lambda events: len(mine(events, tag)) >= total, WAIT_S),
            tag,
        )
    # Exactly those 200 events (a redelivery would repeat an event_id, never add another).
    assert len({event.event_id for event in got}) == total
    by_key: dict[str, list[CollectedEvent]] = {}
    for event in got:
        by_key.setdefault(event.key or "", []).append(event)
    assert {
        key: sorted(
            ((event.value["event_type"], event.value["contact"]["version"]) for event in events),
            key=lambda change: change[1],
        )
        for key, events in by_key.items()
    } == expected
    # In order per contact: within a topic (one partition per key) the log holds a contact's
    # events in version order. Across the three topics Kafka orders nothing; consumers
    # compare `contact.version` (docs/events.md).
    for key, events in by_key.items():
        for topic in TOPIC.values():
            in_log_order = sorted((e for e in events if e.topic == topic), key=lambda e: e.offset)
            versions = [event.value["contact"]["version"] for event in in_log_order]
            assert versions == sorted(versions), f"contact {key} on {topic}: {versions}"
            assert len({event.partition for event in in_log_order}) <= 1
    await eventually(lambda: _relay_idle(relay), "the outbox is empty again", timeout_s=WAIT_S)
    ready = (await client.get("/ready")).json()["checks"]["outbox"]
    assert ready["pending"] == 0
    assert ready["broker"] == "verified"
    assert datetime.fromisoformat(ready["broker_verified_at"]) > paused_at


# === TWO REPLICAS ===
async def test_two_replicas_publish_each_event_exactly_once(
    app: FastAPI,
    settings: Settings,
    client: httpx.AsyncClient,
    collector: EventCollector,
    tag: str,
) -> None:
    second_app = create_app(settings)
    async with LifespanManager(second_app, startup_timeout=30, shutdown_timeout=30):
        relays: list[OutboxRelay] = [app.state.outbox_relay, second_app.state.outbox_relay]
        transport = httpx.ASGITransport(app=second_app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://second", headers=TOKENS.bearer()
        ) as second:
            await eventually(
                lambda: (
                    sorted(relay.status.role for relay in relays)
                    == [RelayRole.LEADER, RelayRole.STANDBY]
                ),
                "one relay leads and the other stands by",
                timeout_s=WAIT_S,
            )
            published_before = [relay.status.published for relay in relays]

            async def changes(http: httpx.AsyncClient, prefix: str) -> None:
                for number in range(20):
                    response = await http.post(
                        API, json={"name": prefix, "email": f"{prefix}{number}@{tag}"}
                    )
                    assert response.status_code == 201
                    update = await http.put(
                        f"{API}{response.json()['id']}", json={"phone": str(number)}
                    )
                    assert update.status_code == 200

            await asyncio.gather(changes(client, "a"), changes(second, "b"))
            await collector.wait_for(lambda events: len(mine(events, tag)) >= 80, WAIT_S)
            # Give a second publisher (if there were one) time to publish its duplicates.
            await eventually(
                lambda: _outbox_empty(relays[0]), "the outbox is empty", timeout_s=WAIT_S
            )
            await asyncio.sleep(1.0)

            counts: dict[str, int] = {}
            for event in collector.events:
                email = event.value.get("contact", {}).get("email", "")
                if email.endswith("@" + tag):
                    counts[event.event_id] = counts.get(event.event_id, 0) + 1
            assert len(counts) == 80
            assert set(counts.values()) == {1}
            standby = next(relay for relay in relays if relay.status.role == RelayRole.STANDBY)
            assert standby.status.published == published_before[relays.index(standby)]


async def _outbox_empty(relay: OutboxRelay) -> bool:
    return (await relay.backlog()).pending == 0
