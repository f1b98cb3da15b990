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

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

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
async def apply_contact_snapshot(session: AsyncSession, snapshot: ContactSnapshot) -> bool:
    """
    Upsert ``snapshot`` into the read model under the rules above (one statement, safe against
    concurrent writers). Returns True when the row changed, False when the snapshot was stale.
    """
    table = ContactReadModel.__table__
    statement = insert(ContactReadModel).values(
        id=snapshot.id,
        name=snapshot.name,
        email=snapshot.email,
        is_active=snapshot.is_active,
        deleted=snapshot.deleted,
        version=snapshot.version,
    )
    incoming = statement.excluded
    newer = incoming.version > table.c.version
    upsert = statement.on_conflict_do_update(
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
    applied = (await session.execute(upsert)).first() is not None
    if applied:
        logger.info(
            "Read model: contact %s at version %s%s",
            snapshot.id,
            snapshot.version,
            " (deleted)" if snapshot.deleted else "",
        )
    else:
        logger.debug("Read model: contact %s version %s is stale", snapshot.id, snapshot.version)
    return applied


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
