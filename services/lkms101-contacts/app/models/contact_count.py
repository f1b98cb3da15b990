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

# The triggers themselves are in the migration that made the table
# (alembic/versions/2026_12_02_0006_contact_counts.py): a migration is frozen, the SQL it ran
# must not change with the application code.


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
