"""
================================================================
FILE: contacts.py
PATH: /services/lkms101-contacts/app/data/contacts.py
DESCRIPTION: Contacts on asyncpg: ContactView, the hot reads, the page with its count, the create
VERSION: v1.2.0
UPDATED: 2026-12-02 12:45:00
================================================================

Every read of a contact returns one type, :class:`ContactView` (a frozen dataclass with the
columns' Python types), for REST, gRPC and events alike. The statements are plain SQL written
once, prepared once per connection by asyncpg, and run through ``Database``'s FIFO gate and
pool without SQLAlchemy's execution layer (docs/performance.md: the read path through the
session cost several times PostgreSQL's own work for a key lookup). REST answers serialise a
view once with orjson (:func:`contact_json`), the same text pydantic would write for
``ContactResponse``. Changes of existing contacts stay on the ORM (lock, compare, flush).
"""

# === IMPORTS ===
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from app.models.contact_count import COUNTS_TABLE
from lkern_common.events import format_timestamp

# === VIEW ===
# The columns in the order of ContactView's fields (and of ContactResponse's JSON).
COLUMNS = (
    "name, email, phone, id, is_active, version, created_at, updated_at, created_by, updated_by"
)


@dataclass(frozen=True, slots=True)
class ContactView:
    """A contact as stored: what every read returns (REST, gRPC, the events' snapshot)."""

    name: str
    email: str
    phone: str | None
    id: int
    is_active: bool
    version: int
    created_at: datetime
    updated_at: datetime | None
    created_by: str | None
    updated_by: str | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> "ContactView":
        """A view of a row whose first columns are COLUMNS, in that order."""
        return cls(*row[:10])


def contact_json(view: ContactView | Sequence[ContactView]) -> bytes:
    """ContactResponse's JSON of one view or a list of them (datetimes in UTC with "Z")."""
    return orjson.dumps(view, option=orjson.OPT_UTC_Z)


# === READS ===
CONTACT_BY_ID = f"SELECT {COLUMNS} FROM contacts WHERE id = $1"
CONTACTS_BY_IDS = f"SELECT {COLUMNS} FROM contacts WHERE id = ANY($1::int[]) ORDER BY id"
# Every contact a page at a time (gRPC ListContacts): keyset on the primary key, so a page
# costs the same wherever it starts and contacts created meanwhile are not skipped.
CONTACTS_AFTER_ID = f"SELECT {COLUMNS} FROM contacts WHERE id > $1 ORDER BY id LIMIT $2"


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filters_sql(by_status: bool, search: bool) -> str:
    """The WHERE clause of a list: $3 the status (when filtered), then the search pattern."""
    filters = []
    if by_status:
        filters.append("is_active = $3")
    if search:
        pattern = f"${4 if by_status else 3}"
        filters.append(f"(name ILIKE {pattern} ESCAPE '\\' OR email ILIKE {pattern} ESCAPE '\\')")
    return f"WHERE {' AND '.join(filters)}" if filters else ""


def _page_sql(by_status: bool, search: bool) -> str:
    """
    A page and the total of its filter in one statement (one round trip, one snapshot).
    Parameters: $1 limit, $2 skip, then the filters' (filters_sql). Without a search the
    total is the kept count (contact_counts); with one it is counted.

    The page is found by id first and its rows read after (a "deferred join"): OFFSET must
    step over every skipped row, and stepping over ids alone is an index-only scan of the
    primary key, where reading whole rows visits the table for each one (2.3x faster at
    100,000 contacts; docs/performance.md).
    """
    where = filters_sql(by_status, search)
    if search:
        total = f"SELECT count(*) AS n FROM contacts {where}"
    else:
        status = "WHERE is_active = $3" if by_status else ""
        total = f"SELECT coalesce(sum(n), 0)::bigint AS n FROM {COUNTS_TABLE} {status}"
    return (
        f"SELECT page.*, total.n AS total FROM ({total}) AS total "
        f"LEFT JOIN LATERAL (SELECT {COLUMNS} FROM contacts WHERE id IN "
        f"(SELECT id FROM contacts {where} ORDER BY id LIMIT $1 OFFSET $2) "
        "ORDER BY id) AS page ON true"
    )


PAGES = {
    (by_status, search): _page_sql(by_status, search)
    for by_status in (False, True)
    for search in (False, True)
}


def page_query(
    skip: int, limit: int, is_active: bool | None, q: str | None
) -> tuple[str, list[Any]]:
    """The page statement for these filters and its arguments."""
    arguments: list[Any] = [limit, skip]
    if is_active is not None:
        arguments.append(is_active)
    if q:
        arguments.append(f"%{_escape_like(q)}%")
    return PAGES[(is_active is not None, bool(q))], arguments


def page_from_rows(rows: Sequence[Any]) -> tuple[list[ContactView], int]:
    """The views and the total of a page statement's rows (one row with no contact: empty)."""
    total = int(rows[0]["total"]) if rows else 0
    return [ContactView.from_row(row) for row in rows if row["id"] is not None], total


# === CREATE ===
# The contact and its ContactCreated outbox row in one statement (one round trip; the outbox's
# NOTIFY trigger fires with it). The event is built in Python by the contract's own function
# (ContactCreated.from_contact) from a view whose id and created_at are not known yet: they are
# random marks, replaced in the compact JSON text by the database's values (the id as a number,
# created_at as lkern_common.events.format_timestamp writes it). Only structural occurrences
# are replaced: `"id":<mark>`, `"contact_id":<mark>` and the quoted `"<time mark>"` cannot
# occur inside a JSON string value (its quotes are escaped), whatever a client sends.
CREATED_AT_TEXT_SQL = (
    "to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
    "CASE WHEN date_part('microseconds', c.created_at)::int % 1000000 = 0 THEN '' "
    "ELSE to_char(c.created_at AT TIME ZONE 'UTC', '.US') END || 'Z'"
)
CREATE_CONTACT = f"""
WITH c AS (
    INSERT INTO contacts (name, email, phone, is_active, version, created_by)
    VALUES ($1, $2, $3, true, 1, $4)
    RETURNING {COLUMNS}
), event AS (
    INSERT INTO outbox_events (event_id, topic, key, payload, headers)
    SELECT $5::uuid, $6, c.id::text,
           replace(
               replace(replace($7::text, '"id":' || $9, '"id":' || c.id),
                       '"contact_id":' || $9, '"contact_id":' || c.id),
               $10, '"' || {CREATED_AT_TEXT_SQL} || '"')::json,
           replace($8::text, $10, '"' || {CREATED_AT_TEXT_SQL} || '"')::json
      FROM c
)
SELECT {COLUMNS} FROM c
"""


@dataclass(frozen=True)
class Marks:
    """Placeholders of the values only the database knows, unique per create."""

    id: int
    created_at: datetime

    @classmethod
    def new(cls) -> "Marks":
        # A valid contact id (the contract checks it: 1…2^31-1) and a valid instant, random.
        moment = datetime.fromtimestamp(31_536_000 + secrets.randbelow(10**9), UTC)
        return cls(
            id=2**30 + secrets.randbelow(2**30 - 1),
            created_at=moment.replace(microsecond=1 + secrets.randbelow(999_998)),
        )

    @property
    def id_text(self) -> str:
        return str(self.id)

    @property
    def created_at_text(self) -> str:
        """The quoted JSON text of the time mark, as the event carries it."""
        return f'"{format_timestamp(self.created_at)}"'


def new_contact_view(
    marks: Marks, name: str, email: str, phone: str | None, created_by: str | None
) -> ContactView:
    """The view of a contact about to be created, with ``marks`` for id and created_at."""
    return ContactView(
        name=name,
        email=email,
        phone=phone,
        id=marks.id,
        is_active=True,
        version=1,
        created_at=marks.created_at,
        updated_at=None,
        created_by=created_by,
        updated_by=None,
    )
