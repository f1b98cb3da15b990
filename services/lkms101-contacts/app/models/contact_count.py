"""
================================================================
FILE: contact_count.py
PATH: /services/lkms101-contacts/app/models/contact_count.py
DESCRIPTION: contact_counts: the exact number of contacts per status, kept by triggers
VERSION: v1.0.0
UPDATED: 2026-12-02 06:10:00
================================================================

`X-Total-Count` of the contacts list without a search term comes from here instead of counting
the rows of every page (~7 ms of PostgreSQL per page at 100,000 contacts; docs/performance.md).

- Exact: statement triggers on `contacts` add what an INSERT / DELETE / UPDATE changed to the
  counts in the writing transaction itself, so a count read sees exactly the committed
  contacts (READ COMMITTED: the statement's snapshot), including COPY and bulk writes.
- No single hot row: each status has SLOTS rows; a transaction adds to the slot of its server
  process (`pg_backend_pid() % SLOTS`), so concurrent creates on the pool's connections lock
  different rows; a read sums the slots (at most 2 × SLOTS rows).
- Rows are locked in status order (ORDER BY), so two transactions never wait on each other in
  opposite order.
"""

# === IMPORTS ===
from sqlalchemy import BigInteger, Boolean, SmallInteger
from sqlalchemy.orm import Mapped, mapped_column

from app.database import Base

# === CONSTANTS ===
SLOTS = 16
COUNTS_TABLE = "contact_counts"

# Adds the per-status deltas of the statement's transition tables to this process's slot.
_ADD_DELTAS = f"""
    INSERT INTO {COUNTS_TABLE} AS counts (is_active, slot, n)
    SELECT is_active, pg_backend_pid() % {SLOTS}, sum(delta)
      FROM deltas GROUP BY is_active HAVING sum(delta) <> 0 ORDER BY is_active
    ON CONFLICT (is_active, slot) DO UPDATE SET n = counts.n + EXCLUDED.n;
"""


def _function(name: str, deltas: str) -> str:
    return f"""
    CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        WITH deltas (is_active, delta) AS ({deltas})
        {_ADD_DELTAS.strip()}
        RETURN NULL;
    END
    $$
    """


_GAINED = "SELECT is_active, count(*) FROM new_rows GROUP BY is_active"
_LOST = "SELECT is_active, -count(*) FROM old_rows GROUP BY is_active"
# (trigger, function, event, transition tables, deltas)
_TRIGGERS = (
    (
        "trg_contacts_count_insert",
        "contacts_count_insert",
        "INSERT",
        "NEW TABLE AS new_rows",
        _GAINED,
    ),
    (
        "trg_contacts_count_delete",
        "contacts_count_delete",
        "DELETE",
        "OLD TABLE AS old_rows",
        _LOST,
    ),
    (
        "trg_contacts_count_update",
        "contacts_count_update",
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        f"{_GAINED} UNION ALL {_LOST}",
    ),
)
COUNT_TRIGGERS_SQL: tuple[str, ...] = tuple(
    statement
    for trigger, function, event, tables, deltas in _TRIGGERS
    for statement in (
        _function(function, deltas),
        f"CREATE TRIGGER {trigger} AFTER {event} ON contacts REFERENCING {tables} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
    )
)
# TRUNCATE fires no DELETE trigger: it empties the counts too.
_TRUNCATE_TRIGGER = "trg_contacts_count_truncate"
_TRUNCATE_FUNCTION = "contacts_count_truncate"
COUNT_TRIGGERS_SQL += (
    f"""
    CREATE FUNCTION {_TRUNCATE_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM {COUNTS_TABLE};
        RETURN NULL;
    END
    $$
    """,
    f"CREATE TRIGGER {_TRUNCATE_TRIGGER} AFTER TRUNCATE ON contacts "
    f"FOR EACH STATEMENT EXECUTE FUNCTION {_TRUNCATE_FUNCTION}()",
)
DROP_COUNT_TRIGGERS_SQL: tuple[str, ...] = (
    f"DROP TRIGGER IF EXISTS {_TRUNCATE_TRIGGER} ON contacts",
    f"DROP FUNCTION IF EXISTS {_TRUNCATE_FUNCTION}()",
    *(
        statement
        for trigger, function, *_ in _TRIGGERS
        for statement in (
            f"DROP TRIGGER IF EXISTS {trigger} ON contacts",
            f"DROP FUNCTION IF EXISTS {function}()",
        )
    ),
)


# === MODEL ===
class ContactCount(Base):
    """One slot of the count of contacts with one status (never written by the application)."""

    __tablename__ = COUNTS_TABLE
    __table_args__ = {
        "comment": "Contacts per status, in slots summed on read (kept by triggers on contacts)"
    }

    is_active: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    slot: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
