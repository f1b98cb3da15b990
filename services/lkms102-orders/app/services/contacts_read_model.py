"""
================================================================
FILE: contacts_read_model.py
PATH: /services/lkms102-orders/app/services/contacts_read_model.py
DESCRIPTION: The local read model of contacts: apply a snapshot only when it is newer, read it
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================

Contact events arrive on three topics (created, updated, deleted) that keep no order between
them, and may arrive twice. The read model therefore keeps, per contact, the snapshot with the
highest ``version`` seen, in one atomic upsert:

- a snapshot whose version is newer than the stored one replaces name, email and is_active;
- an older or equal snapshot changes nothing (duplicate, or overtaken by a newer one);
- a deletion is final: it marks the row deleted whatever its version (keeping the newest name
  and email known), and nothing applies to a deleted contact afterwards (ids are never reused).
"""

# === IMPORTS ===
import logging
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, and_, bindparam, case, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from app.models.contact import ContactReadModel

# === LOGGING ===
logger = logging.getLogger(__name__)


# === SNAPSHOT ===
@dataclass(frozen=True)
class ContactSnapshot:
    """A contact's state at one version, as an event or GetContact tells it."""

    id: int
    name: str
    email: str
    is_active: bool
    version: int
    deleted: bool = False


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


# Every contact event runs it: built once (building it per event cost more than running it).
UPSERT_SNAPSHOT = _upsert_statement()


async def apply_contact_snapshot(session: AsyncSession, snapshot: ContactSnapshot) -> bool:
    """
    Upsert ``snapshot`` into the read model under the rules above (one statement, safe against
    concurrent writers). Returns True when the row changed, False when the snapshot was stale.
    """
    parameters = {
        "id": snapshot.id,
        "name": snapshot.name,
        "email": snapshot.email,
        "is_active": snapshot.is_active,
        "deleted": snapshot.deleted,
        "version": snapshot.version,
    }
    applied = (await session.execute(UPSERT_SNAPSHOT, parameters)).first() is not None
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
    session: AsyncSession, snapshot: ContactSnapshot, stored_version: int
) -> None:
    """
    Replace the row with ``snapshot``, contacts' own answer (GetContact), whatever the row
    holds. For a row that claims a version contacts has not reached (a buggy or replayed
    producer): left alone it would skip every real event as "older", for ever.
    """
    await session.execute(
        REPAIR_SNAPSHOT,
        {
            "id": snapshot.id,
            "name": snapshot.name,
            "email": snapshot.email,
            "is_active": snapshot.is_active,
            "deleted": False,
            "version": snapshot.version,
        },
    )
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
