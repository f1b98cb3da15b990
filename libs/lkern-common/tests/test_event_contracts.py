"""
================================================================
FILE: test_event_contracts.py
PATH: /libs/lkern-common/tests/test_event_contracts.py
DESCRIPTION: Event contracts: committed JSON Schemas equal the models, serialised events match them
VERSION: v1.0.0
UPDATED: 2026-12-02 06:05:00
================================================================

Pure logic (no broker, no database): the services' tests prove the same contracts on the wire
(contacts' test_events: the exact value of each published event; orders' test_consumer: events
parsed and applied).
"""

# === IMPORTS ===
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema_rs
import orjson
import pytest

from lkern_common.contracts import ALL_EVENTS, EventContract
from lkern_common.contracts.contacts import (
    ContactCreated,
    ContactDeleted,
    ContactSnapshot,
    ContactUpdated,
)
from lkern_common.contracts.json_schemas import (
    SCHEMAS_DIR,
    committed_schema,
    schema_file_name,
    stale_schema_files,
    write_schemas,
)
from lkern_common.contracts.orders import (
    OrderContact,
    OrderCreated,
    OrderDeleted,
    OrderLineSnapshot,
    OrderSnapshot,
    OrderStatusChanged,
    OrderUpdated,
)

# === CONSTANTS ===
CREATED_AT = datetime(2026, 11, 26, 10, 30, 0, 552310, tzinfo=UTC)
UPDATED_AT = datetime(2026, 11, 26, 10, 31, 5, 118204, tzinfo=UTC)
CONTACT = SimpleNamespace(  # a contact as the contacts table's row has it
    id=42,
    name="Jana N.",
    email="jana@example.com",
    phone="+421 911 111 111",
    is_active=True,
    version=2,
    created_at=CREATED_AT,
    updated_at=UPDATED_AT,
    created_by="alice",
    updated_by="bob",
    internal_note="not part of any event",
)
ORDER = OrderSnapshot(
    id=7,
    number="ORD-2026-000007",
    status="confirmed",
    currency="EUR",
    lines=[
        OrderLineSnapshot(
            description="Widget", quantity="2.000", unit_price="19.99", line_total="39.98"
        )
    ],
    total="39.98",
    notes=None,
    contact=OrderContact(id=42, name="Jana N.", email="jana@example.com"),
    created_at=CREATED_AT,
    updated_at=UPDATED_AT,
    version=3,
    created_by="alice",
    updated_by="bob",
    status_changed_by="bob",
)


# === HELPERS ===
def sample_events() -> list[EventContract]:
    """One event of every contract, built as the publishers build them."""
    return [
        ContactCreated.from_contact(CONTACT),
        ContactUpdated.from_contact(CONTACT, ["name", "phone"]),
        ContactDeleted.from_contact(CONTACT, UPDATED_AT + timedelta(seconds=3)),
        OrderCreated.of(ORDER, CREATED_AT),
        OrderUpdated.of(ORDER, UPDATED_AT),
        OrderStatusChanged.of(ORDER, UPDATED_AT, previous_status="draft"),
        OrderDeleted.of(ORDER, UPDATED_AT),
    ]


def wire_value(event: EventContract) -> dict[str, Any]:
    """The event's value as the relay publishes it (JSON bytes) and a consumer reads it."""
    value: dict[str, Any] = orjson.loads(orjson.dumps(event.envelope().payload))
    return value


# === COMMITTED SCHEMAS ===
def test_the_committed_schemas_are_the_models_schemas() -> None:
    assert stale_schema_files() == [], "run `make event-schemas` and commit the diff"
    assert sorted(path.name for path in SCHEMAS_DIR.glob("*.json")) == sorted(
        schema_file_name(contract) for contract in ALL_EVENTS
    )


def test_a_schema_that_differs_from_its_model_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR, folder)
    changed = folder / schema_file_name(ContactUpdated)
    schema = json.loads(changed.read_text())
    del schema["properties"]["changed_fields"]  # a model edited, not regenerated
    changed.write_text(json.dumps(schema, indent=2) + "\n")
    (folder / "lkern.contacts.merged.v1.json").write_text("{}\n")  # a contract that is gone

    expected = sorted([changed.name, "lkern.contacts.merged.v1.json"])
    assert stale_schema_files(folder) == expected
    assert write_schemas(folder) == expected
    assert stale_schema_files(folder) == []


# === SERIALISED EVENTS ===
@pytest.mark.parametrize("event", sample_events(), ids=lambda event: event.EVENT_TYPE)
def test_each_serialised_event_matches_its_committed_schema(event: EventContract) -> None:
    contract = type(event)
    validator = jsonschema_rs.validator_for(committed_schema(contract), validate_formats=True)
    value = wire_value(event)

    errors = [error.message for error in validator.iter_errors(value)]
    assert errors == []
    # A consumer parses the value into the same model and gets the same event back.
    assert contract.parse(value) == event


@pytest.mark.parametrize("contract", ALL_EVENTS, ids=lambda contract: contract.EVENT_TYPE)
def test_a_value_of_another_event_type_or_version_does_not_match(
    contract: type[EventContract],
) -> None:
    validator = jsonschema_rs.validator_for(committed_schema(contract))
    value = wire_value(next(event for event in sample_events() if type(event) is contract))

    assert not validator.is_valid({**value, "event_type": "SomethingElse"})
    assert not validator.is_valid({**value, "event_version": contract.EVENT_VERSION + 1})
    assert not validator.is_valid({key: v for key, v in value.items() if key != "timestamp"})


# === WIRE FORM ===
def test_contact_updated_has_the_published_wire_form() -> None:
    """The fields, names and formats contact events had before the contract was shared."""
    value = wire_value(ContactUpdated.from_contact(CONTACT, ["name", "phone"]))

    envelope = {key: value.pop(key) for key in ("event_id", "occurred_at", "actor")}
    assert envelope["occurred_at"] == "2026-11-26T10:31:05.118204Z"
    assert value == {
        "event_type": "ContactUpdated",
        "contact_id": 42,
        "contact_name": "Jana N.",
        "contact_email": "jana@example.com",
        "timestamp": "2026-11-26T10:31:05.118204Z",
        "contact": {
            "id": 42,
            "name": "Jana N.",
            "email": "jana@example.com",
            "phone": "+421 911 111 111",
            "is_active": True,
            "version": 2,
            "created_at": "2026-11-26T10:30:00.552310Z",
            "updated_at": "2026-11-26T10:31:05.118204Z",
            "created_by": "alice",
            "updated_by": "bob",
        },
        "changed_fields": ["name", "phone"],
        "event_version": 1,
        "source": "lkms101-contacts",
    }


def test_contact_deleted_carries_the_last_state_one_version_on() -> None:
    deleted_at = UPDATED_AT + timedelta(seconds=3)
    event = ContactDeleted.from_contact(CONTACT, deleted_at)

    assert event.contact.version == CONTACT.version + 1
    assert event.occurred_at() == deleted_at
    assert event.envelope().key == "42"
    assert event.envelope().topic == "lkern.contacts.deleted"


def test_order_status_changed_has_the_published_wire_form() -> None:
    value = wire_value(OrderStatusChanged.of(ORDER, UPDATED_AT, previous_status="draft"))

    assert list(value)[:10] == [
        "event_type",
        "order_id",
        "order_number",
        "contact_id",
        "status",
        "total",
        "currency",
        "order",
        "previous_status",
        "timestamp",
    ]  # the order the fields were always written in
    assert {key: value[key] for key in list(value)[:10]} == {
        "event_type": "OrderStatusChanged",
        "order_id": 7,
        "order_number": "ORD-2026-000007",
        "contact_id": 42,
        "status": "confirmed",
        "total": "39.98",
        "currency": "EUR",
        "order": ORDER.model_dump(mode="json"),
        "previous_status": "draft",
        "timestamp": "2026-11-26T10:31:05.118204Z",
    }
    # The snapshot's times as orders always wrote them (isoformat), the event's with "Z".
    assert value["order"]["created_at"] == "2026-11-26T10:30:00.552310+00:00"
    assert value["order"]["lines"] == [
        {"description": "Widget", "quantity": "2.000", "unit_price": "19.99", "line_total": "39.98"}
    ]


# === CONSUMERS ===
def test_an_event_from_before_created_by_was_added_still_parses() -> None:
    """Fields added within version 1 have defaults: older events in the topics still apply."""
    value = wire_value(ContactCreated.from_contact(CONTACT))
    for field in ("created_by", "updated_by", "phone", "updated_at"):
        del value["contact"][field]
    value["contact"]["added_by_a_newer_producer"] = "ignored"

    parsed = ContactCreated.parse(value)

    assert parsed.contact.created_by is None
    assert parsed.contact.version == 2


def test_a_snapshot_of_another_contact_is_refused() -> None:
    value = wire_value(ContactUpdated.from_contact(CONTACT, ["name"]))
    value["contact_id"] = 43

    with pytest.raises(ValueError, match="contact_id 43 differs"):
        ContactUpdated.parse(value)


def test_a_snapshot_is_taken_from_any_object_with_the_contacts_columns() -> None:
    snapshot = ContactSnapshot.from_contact(CONTACT)

    assert ContactSnapshot.from_contact(snapshot) == snapshot
    assert "internal_note" not in snapshot.model_dump()
