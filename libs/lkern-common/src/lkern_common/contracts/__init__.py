"""
================================================================
FILE: __init__.py
PATH: /libs/lkern-common/src/lkern_common/contracts/__init__.py
DESCRIPTION: Shared, typed event contracts: one module per publishing service
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

``lkern_common.contracts.<service>`` holds the events a service publishes (topic, type, version
and payload model); publisher and consumers import the same models. ``ALL_EVENTS`` lists every
contract: the committed JSON Schemas (``schemas/``) are generated from it
(``make event-schemas``) and checked against it by the library's tests. docs/events.md.
"""

# === IMPORTS ===
from lkern_common.contracts.contacts import CONTACT_EVENTS
from lkern_common.contracts.event import EventContract, event_json_schema
from lkern_common.contracts.orders import ORDER_EVENTS

# === REGISTRY ===
ALL_EVENTS: tuple[type[EventContract], ...] = (*CONTACT_EVENTS, *ORDER_EVENTS)
EVENTS_BY_TYPE: dict[str, type[EventContract]] = {event.EVENT_TYPE: event for event in ALL_EVENTS}

__all__ = ["ALL_EVENTS", "EVENTS_BY_TYPE", "EventContract", "event_json_schema"]
