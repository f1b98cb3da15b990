"""
================================================================
FILE: test_event_envelope.py
PATH: /libs/lkern-common/tests/test_event_envelope.py
DESCRIPTION: Event envelope (pure logic): fields, CloudEvents-style headers, request id
VERSION: v1.0.0
UPDATED: 2026-11-26 15:00:00
================================================================
"""

# === IMPORTS ===
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from lkern_common.events import build_event, format_timestamp
from lkern_common.request_context import request_id_var, subject_var


# === TESTS ===
def test_envelope_fields_and_headers() -> None:
    event_id = uuid.uuid4()
    moment = datetime(2026, 11, 26, 10, 30, 0, 123456, tzinfo=UTC)
    event = build_event(
        topic="lkern.things.created",
        key="7",
        event_type="ThingCreated",
        source="lkms999-things",
        data={"thing_id": 7, "at": moment},
        occurred_at=moment,
        event_id=event_id,
        request_id="req-1",
    )
    assert event.topic == "lkern.things.created"
    assert event.key == "7"
    assert event.event_id == str(event_id)
    assert event.payload == {
        "event_type": "ThingCreated",
        "thing_id": 7,
        "at": "2026-11-26T10:30:00.123456Z",
        "event_id": str(event_id),
        "event_version": 1,
        "occurred_at": "2026-11-26T10:30:00.123456Z",
        "source": "lkms999-things",
        "actor": None,
    }
    assert event.headers == {
        "ce_id": str(event_id),
        "ce_type": "ThingCreated",
        "ce_source": "lkms999-things",
        "ce_time": "2026-11-26T10:30:00.123456Z",
        "ce_specversion": "1.0",
        "content-type": "application/json",
        "x-request-id": "req-1",
    }


def test_actor_is_the_subject_of_the_request_or_given() -> None:
    def actor(**given: str) -> object:
        data = build_event(topic="t", key=None, event_type="E", source="s", data={}, **given)
        return data.payload["actor"]

    assert actor() is None
    token = subject_var.set("alice")
    try:
        assert actor() == "alice"
        assert actor(actor="lkms102-orders") == "lkms102-orders"
    finally:
        subject_var.reset(token)
    with pytest.raises(ValueError, match="actor"):
        build_event(topic="t", key=None, event_type="E", source="s", data={"actor": "x"})


def test_request_id_comes_from_the_context_and_is_absent_outside_a_request() -> None:
    def build() -> dict[str, str]:
        return build_event(topic="t", key=None, event_type="E", source="s", data={}).headers

    assert "x-request-id" not in build()
    token = request_id_var.set("req-from-context")
    try:
        assert build()["x-request-id"] == "req-from-context"
    finally:
        request_id_var.reset(token)


def test_each_event_gets_a_new_uuid4_and_the_time_now() -> None:
    before = datetime.now(UTC)
    first = build_event(topic="t", key="k", event_type="E", source="s", data={})
    second = build_event(topic="t", key="k", event_type="E", source="s", data={})
    assert first.event_id != second.event_id
    assert uuid.UUID(first.event_id).version == 4
    occurred = datetime.fromisoformat(first.payload["occurred_at"].replace("Z", "+00:00"))
    assert before <= occurred <= datetime.now(UTC)


def test_data_may_not_overwrite_the_envelope() -> None:
    with pytest.raises(ValueError, match="event_id, source"):
        build_event(
            topic="t", key="k", event_type="E", source="s", data={"source": "x", "event_id": "y"}
        )


def test_timestamps_are_rendered_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert format_timestamp(datetime(2026, 1, 1, 12, 0, tzinfo=plus_two)) == "2026-01-01T10:00:00Z"
    assert format_timestamp(datetime(2026, 1, 1, 12, 0)) == "2026-01-01T12:00:00Z"
