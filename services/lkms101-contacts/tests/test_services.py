"""
================================================================
FILE: test_services.py
PATH: /services/lkms101-contacts/tests/test_services.py
DESCRIPTION: Business logic tests (ContactsReader, ContactsService) against a real PostgreSQL
VERSION: v1.3.0
UPDATED: 2026-12-02 12:50:00
================================================================
"""

# === IMPORTS ===
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.database import Database
from app.schemas.contact import ContactCreate, ContactUpdate
from app.services.contacts_service import (
    ContactNotFoundError,
    ContactsReader,
    ContactsService,
    DuplicateEmailError,
)
from lkern_devstack.testing import recorded_queries


# === TESTS ===
async def test_create_then_update_reports_changed_fields(db: Database) -> None:
    async with db.transaction() as session:
        contact = await ContactsService(session).create_contact(
            ContactCreate(name="Anna", email="anna@example.com")
        )
    async with db.transaction() as session:
        updated, changed = await ContactsService(session).update_contact(
            contact.id, ContactUpdate(name="Anna B.", email="anna@example.com")
        )
    assert changed == ["name"]
    assert updated.version == 2


async def test_update_with_same_values_changes_nothing(db: Database) -> None:
    async with db.transaction() as session:
        contact = await ContactsService(session).create_contact(
            ContactCreate(name="Same", email="same@example.com")
        )
    async with db.transaction() as session:
        updated, changed = await ContactsService(session).update_contact(
            contact.id, ContactUpdate(name="Same")
        )
    assert changed == []
    assert updated.version == 1


async def test_duplicate_email_raises_domain_error(session: AsyncSession) -> None:
    service = ContactsService(session)
    await service.create_contact(ContactCreate(name="A", email="x@example.com"))
    with pytest.raises(DuplicateEmailError) as raised:
        await service.create_contact(ContactCreate(name="B", email="X@EXAMPLE.COM"))
    assert raised.value.status_code == 400
    await session.rollback()


async def test_missing_contact_raises_not_found(db: Database) -> None:
    reader = ContactsReader(db)
    with pytest.raises(ContactNotFoundError, match="Contact with id 5 not found"):
        await reader.get_contact(5)
    assert await reader.find_contact(5) is None


async def test_get_contacts_by_ids_returns_existing_in_one_query(db: Database) -> None:
    async with db.transaction() as session:
        service = ContactsService(session)
        ids = [
            (
                await service.create_contact(ContactCreate(name=f"C{i}", email=f"c{i}@example.com"))
            ).id
            for i in range(3)
        ]
    async with recorded_queries(db) as statements:
        found = await ContactsReader(db).get_contacts_by_ids([*ids, 999, ids[0]])
    assert [c.id for c in found] == ids
    assert [c.email for c in found] == [f"c{i}@example.com" for i in range(3)]
    # (asyncpg's own catalog queries, made once per connection, are not counted)
    assert len([s for s in statements if "FROM contacts" in s]) == 1


async def test_delete_returns_last_state(db: Database) -> None:
    async with db.transaction() as session:
        contact = await ContactsService(session).create_contact(
            ContactCreate(name="Gone", email="gone@example.com")
        )
    async with db.transaction() as session:
        deleted = await ContactsService(session).delete_contact(contact.id)
    assert deleted.email == "gone@example.com"
    assert await ContactsReader(db).find_contact(contact.id) is None


async def test_search_uses_the_trigram_indexes(session: AsyncSession) -> None:
    """`q` must stay fast at a million contacts: the planner can answer it from pg_trgm indexes."""
    from app.data.contacts import filters_sql

    await session.execute(text("SET LOCAL enable_seqscan = off"))
    where = filters_sql(by_status=False, search=True).replace("$3", "'%peter%'")
    statement = f"EXPLAIN SELECT count(*) FROM contacts {where}"
    connection = await session.connection()
    plan = "\n".join((await connection.exec_driver_sql(statement)).scalars())
    assert "ix_contacts_name_trgm" in plan, plan
    assert "ix_contacts_email_trgm" in plan, plan


async def test_a_page_steps_over_skipped_contacts_by_id_alone(session: AsyncSession) -> None:
    """OFFSET walks the primary key's index only; whole rows are read for the page alone."""
    from app.data.contacts import page_query

    await session.execute(text("SET LOCAL enable_seqscan = off"))
    sql, arguments = page_query(skip=5000, limit=100, is_active=None, q=None)
    assert arguments == [100, 5000]
    sql = sql.replace("$1", "100").replace("$2", "5000")
    connection = await session.connection()
    plan = "\n".join((await connection.exec_driver_sql(f"EXPLAIN {sql}")).scalars())
    assert "Index Only Scan using pk_contacts" in plan, plan
