"""
================================================================
FILE: test_poison_messages.py
PATH: /tests/faults/test_poison_messages.py
DESCRIPTION: Fault: poison messages (one just under 1 MiB) on contacts' topic; replay after a fix
VERSION: v1.0.0
UPDATED: 2026-12-02 09:20:00
================================================================

Proves: every kind of poison message produced to ``lkern.contacts.created`` is dead-lettered
(visible with ``lkern dlq list``, with its reason and original topic/partition/offset), one
just under the producer's 1 MiB limit in its cut form; orders keeps applying the good events
written after them (its read model equals contacts), ``/ready`` stays 200 throughout. An event
orders could not apply (a "bug": a trigger refuses it) is replayed with ``lkern dlq replay``
after the fix and applied once; replaying again changes nothing (the inbox skips it, the
poison messages are refused again and a second replay skips those it already replayed).
"""

# === IMPORTS ===
import asyncio
import json
import os
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from lkern_common.event_signing import SIGNATURE_HEADER, EventSigner
from lkern_common.kafka.dead_letter import message_size
from lkern_devstack.dev_pki import DevPki
from lkern_devstack.testing import eventually
from tests.e2e.conftest import LKERN, RunningStack
from tests.faults.conftest import (
    contact_versions,
    database_url,
    every_event_applied,
    record_figures,
)

# === CONSTANTS ===
TOPIC = "lkern.contacts.created"
CONTACTS = "lkms101-contacts"
ORDERS = "lkms102-orders"
GOOD_CONTACTS = 30  # created, then each renamed once: 60 good events after the poison
POISON_ID_BASE = 1_900_000_000  # contact ids contacts never hands out in this test
ONE_MIB = 1024 * 1024
REFUSE_CURSED_SQL = """
CREATE FUNCTION fault_refuse_cursed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.name LIKE 'Cursed%' THEN
        RAISE EXCEPTION 'cursed contact refused (fault test)';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER fault_refuse_cursed BEFORE INSERT OR UPDATE ON contacts_read_model
    FOR EACH ROW EXECUTE FUNCTION fault_refuse_cursed();
"""
FIX_SQL = """
DROP TRIGGER fault_refuse_cursed ON contacts_read_model;
DROP FUNCTION fault_refuse_cursed();
"""


# === POISON ===
@dataclass
class Poison:
    """One poison message and the reason it must be dead-lettered with."""

    kind: str
    reason: str
    contact_id: int
    value: bytes
    headers: list[tuple[str, bytes]]


def contact_event(contact_id: int, /, **changes: Any) -> dict[str, Any]:
    """A contact event as contacts publishes it (``changes`` replace envelope fields)."""
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "ContactCreated",
        "event_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": CONTACTS,
        "contact_id": contact_id,
        "contact": {
            "id": contact_id,
            "name": f"Poison {contact_id}",
            "email": f"poison-{contact_id}@example.com",
            "is_active": True,
            "version": 1,
        },
    }
    event.update(changes)
    return event


def poison_messages(pki: DevPki) -> list[Poison]:
    contacts_key = EventSigner.from_file(pki.event_key_file(CONTACTS))
    orders_key = EventSigner.from_file(pki.event_key_file(ORDERS))

    def signed(value: bytes, signer: EventSigner = contacts_key) -> list[tuple[str, bytes]]:
        return [(SIGNATURE_HEADER, signer.sign(value))]

    def make(kind: str, reason: str, n: int, value: bytes, **options: Any) -> Poison:
        headers = options.get("headers", signed(value))
        return Poison(kind, reason, POISON_ID_BASE + n, value, headers)

    def event(n: int, /, **changes: Any) -> bytes:
        return orjson.dumps(contact_event(POISON_ID_BASE + n, **changes))

    no_id = contact_event(POISON_ID_BASE + 3)
    del no_id["event_id"]
    genuine = event(6)
    tampered = genuine.replace(b'"is_active":true', b'"is_active":false')
    broken_snapshot = {"id": POISON_ID_BASE + 4, "name": 42, "is_active": "maybe"}
    return [
        make("bad JSON", "invalid-json", 1, b'{"event_id": "broken'),
        make("not an object", "invalid-envelope", 2, b'["ContactCreated"]'),
        make("no event id", "invalid-envelope", 3, orjson.dumps(no_id)),
        make("wrong schema", "invalid-envelope", 4, event(4, contact=broken_snapshot)),
        make("unknown type", "no-handler", 5, event(5, event_type="ContactMerged")),
        make("unsigned", "bad-signature", 6, genuine, headers=[]),
        make("tampered", "bad-signature", 7, tampered, headers=signed(genuine)),
        make(
            "another service's key",
            "bad-signature",
            8,
            event(8),
            headers=signed(event(8), orders_key),
        ),
        make("contact id ≠ snapshot id", "invalid-envelope", 9, event(9, contact_id=1)),
        oversized(contacts_key),
    ]


def oversized(signer: EventSigner) -> Poison:
    """A signed event just under the producer's 1 MiB limit (its name is far too long)."""
    contact_id = POISON_ID_BASE + 10
    base = contact_event(contact_id)

    def with_name(length: int) -> bytes:
        return orjson.dumps({**base, "contact": {**base["contact"], "name": "N" * length}})

    probe = with_name(0)
    overhead = message_size(
        str(contact_id).encode(), probe, [(SIGNATURE_HEADER, signer.sign(probe))]
    )
    value = with_name(ONE_MIB - 64 - overhead)
    return Poison(
        "oversized (just under 1 MiB)",
        "invalid-envelope",
        contact_id,
        value,
        [(SIGNATURE_HEADER, signer.sign(value))],
    )


# === HELPERS ===
def kafka_env(stack: RunningStack) -> dict[str, str]:
    return {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{stack.ports['kafka_port']}"}


async def lkern_dlq(stack: RunningStack, *args: str) -> str:
    """Run ``lkern dlq …`` against the stack's broker (in a thread); its output."""
    done = await asyncio.to_thread(
        subprocess.run,
        [str(LKERN), "dlq", *args],
        env=kafka_env(stack),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def dead_letters(stack: RunningStack, since: str, *args: str) -> list[dict[str, Any]]:
    output = await lkern_dlq(stack, "list", "--json", "--since", since, *args)
    return [json.loads(line) for line in output.splitlines() if line.strip()]


async def execute(stack: RunningStack, service: str, sql: str) -> None:
    connection = await asyncpg.connect(database_url(stack, service))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def orders_ready(client: httpx.AsyncClient, stack: RunningStack) -> dict[str, Any]:
    """Orders' /ready body; fails unless it is 200."""
    response = await client.get(f"{stack.url('orders')}/ready")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def polled_while(
    client: httpx.AsyncClient, stack: RunningStack, work: Callable[[], Awaitable[Any]]
) -> tuple[Any, int]:
    """Run ``work`` while polling orders' /ready (each must be 200); result and polls."""
    polls = 0
    done = asyncio.Event()

    async def poll() -> None:
        nonlocal polls
        while not done.is_set():
            await orders_ready(client, stack)
            polls += 1
            await asyncio.sleep(0.5)

    poller = asyncio.create_task(poll())
    try:
        result = await work()
    finally:
        done.set()
        await poller
    return result, polls


# === TESTS ===
@pytest.mark.asyncio
async def test_poison_messages_are_dead_lettered_and_orders_keeps_applying(
    stack: RunningStack,
) -> None:
    started = datetime.now(UTC).isoformat()
    poisons = poison_messages(DevPki(stack.data_dir / "pki"))
    producer = AIOKafkaProducer(
        bootstrap_servers=f"127.0.0.1:{stack.ports['kafka_port']}", acks="all"
    )
    await producer.start()
    try:
        where: dict[tuple[str, int, int], Poison] = {}
        for poison in poisons:
            sent = await producer.send_and_wait(
                TOPIC, poison.value, key=str(poison.contact_id).encode(), headers=poison.headers
            )
            where[(sent.topic, sent.partition, sent.offset)] = poison
    finally:
        await producer.stop()
    poisoned_at = time.monotonic()

    contacts = f"{stack.url('contacts')}/api/v1/contacts/"
    headers = {"Authorization": f"Bearer {stack.token()}"}
    async with httpx.AsyncClient(timeout=60.0, headers=headers) as client:

        async def good_writes() -> list[int]:
            ids = []
            for n in range(GOOD_CONTACTS):
                body = {"name": f"After poison {n}", "email": f"after-{n}@example.com"}
                response = await client.post(contacts, json=body)
                assert response.status_code == 201, response.text
                ids.append(int(response.json()["id"]))
            for contact_id in ids:
                response = await client.put(f"{contacts}{contact_id}", json={"name": "Renamed"})
                assert response.status_code == 200, response.text
            source = await contact_versions(stack, "contacts", ids)

            async def caught_up() -> bool:
                return await contact_versions(stack, "orders", ids) == source

            await eventually(caught_up, "orders' read model equals contacts", timeout_s=120)
            return ids

        ids, polls = await polled_while(client, stack, good_writes)
        await every_event_applied(stack, ids)
        caught_up_s = time.monotonic() - poisoned_at

        async def all_dead_lettered() -> bool:
            listed = await dead_letters(stack, started)
            return len(_poison_entries(listed, where)) == len(poisons)

        await eventually(all_dead_lettered, "every poison message is in `lkern dlq list`")
        entries = _poison_entries(await dead_letters(stack, started), where)
        for coordinates, entry in entries.items():
            poison = where[coordinates]
            assert entry["reason"] == poison.reason, (poison.kind, entry)
        forms = {where[c].kind: e["form"] for c, e in entries.items()}
        assert forms.pop("oversized (just under 1 MiB)") == "cut"
        assert set(forms.values()) == {"whole"}
        poison_ids = [poison.contact_id for poison in poisons]
        assert await contact_versions(stack, "orders", poison_ids) == {}
        status = (await orders_ready(client, stack))["checks"]["contact_events"]
        assert status["stalled"] is None and status["lag"] == 0

        replay = await _replay_after_a_fix(client, stack, started, contacts)

    record_figures(
        "poison messages",
        poison=len(poisons),
        dead_lettered=len(entries),
        good_events=2 * GOOD_CONTACTS,
        caught_up_s=round(caught_up_s, 2),
        ready_polls_all_200=polls,
        **replay,
    )


def _poison_entries(
    listed: list[dict[str, Any]], where: dict[tuple[str, int, int], Poison]
) -> dict[tuple[str, int, int], dict[str, Any]]:
    """The listed dead letters of the poison messages (first one per original message)."""
    found: dict[tuple[str, int, int], dict[str, Any]] = {}
    for entry in listed:
        coordinates = (
            entry["original_topic"],
            entry["original_partition"],
            entry["original_offset"],
        )
        if coordinates in where and coordinates not in found:
            found[coordinates] = entry
    return found


async def _replay_after_a_fix(
    client: httpx.AsyncClient, stack: RunningStack, started: str, contacts: str
) -> dict[str, Any]:
    """A good event orders refuses (a "bug"), fixed, replayed: applied once, replays idempotent."""
    await execute(stack, "orders", REFUSE_CURSED_SQL)
    try:
        response = await client.post(contacts, json={"name": "Cursed", "email": "c@example.com"})
        assert response.status_code == 201, response.text
        cursed = int(response.json()["id"])

        async def refused() -> bool:
            return len(await dead_letters(stack, started, "--reason", "handler-failed")) == 1

        await eventually(refused, "the cursed contact's event is dead-lettered", timeout_s=120)
        assert await contact_versions(stack, "orders", [cursed]) == {}
    finally:
        await execute(stack, "orders", FIX_SQL)  # the fix

    source = await contact_versions(stack, "contacts", [cursed])
    output = await lkern_dlq(stack, "replay", "--reason", "handler-failed", "--since", started)
    assert "Replayed 1 dead letters" in output, output

    async def applied() -> bool:
        return await contact_versions(stack, "orders", [cursed]) == source

    await eventually(applied, "the replayed event is applied", timeout_s=60)
    await every_event_applied(stack, [cursed], timeout_s=60)

    # Everything again: the cursed event is a duplicate now, the poison is refused again.
    first = await lkern_dlq(stack, "replay", "--since", started)
    listed = await dead_letters(stack, started)
    originals = [entry for entry in listed if not entry["replay_of"]]
    assert f"Replayed {len(originals)} dead letters" in first, first

    async def all_handled_again() -> bool:
        # Every poison is dead-lettered again; the cursed event is not (the inbox skips it).
        # (Not /ready's duplicate count: with several workers it comes from any one of them.)
        again = [entry for entry in await dead_letters(stack, started) if entry["replay_of"]]
        return len(again) == len(originals) - 1

    await eventually(all_handled_again, "the replayed poison is refused again", timeout_s=120)
    second = await lkern_dlq(stack, "replay", "--since", started, "--dry-run")
    assert f"Skipped {len(originals) - 1} replayed before" in second, second
    assert await contact_versions(stack, "orders", [cursed]) == source
    return {"replayed_then_applied": 1, "replayed_again": len(originals)}
