"""
================================================================
FILE: contacts_read_model.py
PATH: /services/lkms102-orders/app/services/contacts_read_model.py
DESCRIPTION: The local read model of contacts: apply a snapshot only when it is newer, read it
VERSION: v1.2.0
UPDATED: 2026-12-02 13:35:00
================================================================

Contact events arrive on three topics (created, updated, deleted) that keep no order between
them, and may arrive twice. The read model therefore keeps, per contact, the snapshot with the
highest ``version`` seen, in one atomic upsert:

- a snapshot whose version is newer than the stored one replaces name, email and is_active;
- an older or equal snapshot changes nothing (duplicate, or overtaken by a newer one);
- a deletion is final: it marks the row deleted whatever its version (keeping the newest name
  and email known), and nothing applies to a deleted contact afterwards (ids are never reused).

``ContactState`` is the one shape of a contact on the orders side: made from a contact event's
snapshot (the shared contract, lkern_common.contracts.contacts) or from contacts' GetContact
answer, written by both upserts with the same parameters.
"""

# === IMPORTS ===
import logging
from dataclasses import dataclass, fields, replace
from typing import Any, Self, cast

from sqlalchemy import Table, and_, bindparam, case, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from app.models.contact import ContactReadModel
from lkern_common.contracts.contacts import ContactSnapshot
from lkern_common.database import Query, fetch_row_in_transaction
from lkern_common.grpc_contracts.contacts import contacts_pb2

# === LOGGING ===
logger = logging.getLogger(__name__)


# === STATE ===
@dataclass(frozen=True)
class ContactState:
    """A contact's state at one version, as the read model stores it (the columns it keeps)."""

    id: int
    name: str
    email: str
    is_active: bool
    version: int
    deleted: bool = False

    @classmethod
    def from_snapshot(cls, snapshot: ContactSnapshot, *, deleted: bool = False) -> Self:
        """The state a contact event's snapshot tells (``deleted`` for ContactDeleted)."""
        return cls(
            id=snapshot.id,
            name=snapshot.name,
            email=snapshot.email,
            is_active=snapshot.is_active,
            version=snapshot.version,
            deleted=deleted,
        )

    @classmethod
    def from_grpc(cls, contact: contacts_pb2.Contact) -> Self:
        """The state contacts' GetContact answered (a contact it knows is not deleted)."""
        return cls(
            id=contact.id,
            name=contact.name,
            email=contact.email,
            is_active=contact.is_active,
            version=contact.version,
        )

    def parameters(self) -> dict[str, Any]:
        """The upserts' parameters (one per stored column; asdict's deep copy cost 10 µs)."""
        return {field.name: getattr(self, field.name) for field in fields(self)}


# === APPLY ===
def _upsert_statement() -> ReturningInsert[tuple[int]]:
    """The upsert of one snapshot (parameters: the snapshot's fields), built once."""
    table = cast(Table, ContactReadModel.__table__)
    fields = ("id", "name", "email", "is_active", "deleted", "version")
    statement = insert(table).values({name: bindparam(name) for name in fields})
    incoming = statement.excluded
    newer = incoming.version > table.c.version
    return statement.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={
            "name": case((newer, incoming.name), else_=table.c.name),
            "email": case((newer, incoming.email), else_=table.c.email),
            "is_active": case((newer, incoming.is_active), else_=table.c.is_active),
            "deleted": or_(table.c.deleted, incoming.deleted),
            "version": func.greatest(table.c.version, incoming.version),
            "updated_at": func.now(),
        },
        where=and_(table.c.deleted.is_(False), or_(newer, incoming.deleted.is_(True))),
    ).returning(table.c.id)


# Every contact event runs it: compiled once, run on the transaction's asyncpg connection
# (SQLAlchemy's execution layer cost more than the statement; docs/performance.md).
UPSERT_SNAPSHOT = Query(_upsert_statement())


async def apply_contact_snapshot(session: AsyncSession, snapshot: ContactState) -> bool:
    """
    Upsert ``snapshot`` into the read model under the rules above (one statement, safe against
    concurrent writers). Returns True when the row changed, False when the snapshot was stale.
    """
    arguments = UPSERT_SNAPSHOT.arguments(snapshot.parameters())
    applied = await fetch_row_in_transaction(session, UPSERT_SNAPSHOT.sql, *arguments) is not None
    if applied:
        logger.debug(
            "Read model: contact %s at version %s%s",
            snapshot.id,
            snapshot.version,
            " (deleted)" if snapshot.deleted else "",
        )
    else:
        logger.debug("Read model: contact %s version %s is stale", snapshot.id, snapshot.version)
    return applied


# === REPAIR ===
def _repair_statement() -> ReturningInsert[tuple[int]]:
    """The unconditional upsert of contacts' own answer (parameters: the snapshot's fields)."""
    table = cast(Table, ContactReadModel.__table__)
    fields = ("id", "name", "email", "is_active", "deleted", "version")
    statement = insert(table).values({name: bindparam(name) for name in fields})
    incoming = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={name: getattr(incoming, name) for name in fields[1:]} | {"updated_at": func.now()},
    ).returning(table.c.id)


REPAIR_SNAPSHOT = _repair_statement()


async def repair_contact(
    session: AsyncSession, snapshot: ContactState, stored_version: int
) -> None:
    """
    Replace the row with ``snapshot``, contacts' own answer (GetContact), whatever the row
    holds. For a row that claims a version contacts has not reached (a buggy or replayed
    producer): left alone it would skip every real event as "older", for ever.
    """
    await session.execute(REPAIR_SNAPSHOT, replace(snapshot, deleted=False).parameters())
    logger.warning(
        "Read model: contact %s repaired from contacts' answer (version %s; the read model "
        "claimed version %s)",
        snapshot.id,
        snapshot.version,
        stored_version,
    )


# === READ ===
async def get_contact(session: AsyncSession, contact_id: int) -> ContactReadModel | None:
    """The read model's row for ``contact_id`` (fresh from the database), or None."""
    statement = (
        select(ContactReadModel)
        .where(ContactReadModel.id == contact_id)
        .execution_options(populate_existing=True)
    )
    row: ContactReadModel | None = await session.scalar(statement)
    return row
