"""contact_counts: an exact count of contacts per status, kept by triggers (X-Total-Count)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 06:10:00
"""

# === IMPORTS ===
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# === TRIGGERS ===
# Frozen here (not imported from app: a migration runs the SQL of its day; other services'
# test suites run these migrations without this service's package).
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

# === REVISION IDENTIFIERS ===
revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# === UPGRADE ===
def upgrade() -> None:
    """The counts table, filled from the contacts there are, and the triggers that keep it."""
    op.create_table(
        "contact_counts",
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("slot", sa.SmallInteger(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("is_active", "slot", name=op.f("pk_contact_counts")),
        comment="Contacts per status, in slots summed on read (kept by triggers on contacts)",
    )
    # Counted and the triggers created in one transaction, with contacts locked meanwhile: no
    # write can fall between the count and the first trigger.
    op.execute("LOCK TABLE contacts IN SHARE ROW EXCLUSIVE MODE")
    op.execute(
        "INSERT INTO contact_counts (is_active, slot, n) "
        "SELECT is_active, 0, count(*) FROM contacts GROUP BY is_active"
    )
    for statement in COUNT_TRIGGERS_SQL:
        op.execute(statement)


# === DOWNGRADE ===
def downgrade() -> None:
    """Drop the triggers and the counts table."""
    for statement in DROP_COUNT_TRIGGERS_SQL:
        op.execute(statement)
    op.drop_table("contact_counts")
