"""
================================================================
FILE: __init__.py
PATH: /libs/lkern-common/src/lkern_common/outbox/__init__.py
DESCRIPTION: Transactional outbox: events written with the change, published by one relay
VERSION: v1.0.0
UPDATED: 2026-11-26 15:00:00
================================================================

A service writes each event into ``outbox_events`` in the same database transaction as the
change (:func:`add_event` / :func:`add_envelope`); the :class:`OutboxRelay` running in the service
process publishes it to Kafka after the commit. Importing this package adds ``OutboxEvent`` to
the shared metadata, so a service that imports it must create the table in a migration
(:func:`create_outbox_table_v1`). The contract and guarantees are in docs/events.md.
"""

# === IMPORTS ===
from lkern_common.outbox.model import (
    NOTIFY_CHANNEL,
    OUTBOX_TABLE,
    OutboxEvent,
    create_outbox_table_v1,
    drop_outbox_table_v1,
)
from lkern_common.outbox.relay import OutboxRelay, RelayRole, RelayStatus
from lkern_common.outbox.store import OutboxBacklog, add_envelope, add_event, outbox_backlog

# === EXPORTS ===
__all__ = [
    "NOTIFY_CHANNEL",
    "OUTBOX_TABLE",
    "OutboxBacklog",
    "OutboxEvent",
    "OutboxRelay",
    "RelayRole",
    "RelayStatus",
    "add_envelope",
    "add_event",
    "create_outbox_table_v1",
    "drop_outbox_table_v1",
    "outbox_backlog",
]
