"""
================================================================
FILE: seed.py
PATH: /bench/seed.py
DESCRIPTION: Seeds 100,000 contacts and 100,000 orders with COPY, straight into both databases
VERSION: v1.0.0
UPDATED: 2026-11-26 18:00:00
================================================================

Going through the REST API would take minutes; COPY takes seconds. The rows are written as the
services would have written them, and both services stay consistent:

- contacts: ``contacts`` rows (version 1, active), the id sequence moved past them;
- orders: ``contacts_read_model`` rows for the same contacts (as their ContactCreated events
  would have left them), ``orders`` with 1–3 ``order_lines`` each (totals computed as the
  service computes them), the id sequences and ``order_number_seq`` moved past them.

No outbox rows are written: these contacts' events count as delivered long ago. Both services
read the rows from the database on every request (no cache), so they see them at once.
"""

# === IMPORTS ===
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import asyncpg

# === CONSTANTS ===
FIRST_NAMES = [
    "Anna",
    "Peter",
    "Jana",
    "Martin",
    "Eva",
    "Tomas",
    "Lucia",
    "Marek",
    "Zuzana",
    "Michal",
    "Katarina",
    "Juraj",
    "Maria",
    "Pavol",
    "Simona",
    "Andrej",
    "Petra",
    "Lukas",
    "Monika",
    "Filip",
]
LAST_NAMES = [
    "Novak",
    "Horvath",
    "Kovac",
    "Varga",
    "Toth",
    "Nagy",
    "Balaz",
    "Molnar",
    "Szabo",
    "Baran",
    "Kral",
    "Urban",
    "Hudec",
    "Vlcek",
    "Mazur",
    "Kollar",
    "Sedlak",
    "Polak",
    "Klein",
    "Bartos",
]
COMPANIES = ("s.r.o.", "a.s.", "GmbH", "Ltd", "")
ITEMS = ("Consulting hour", "Licence", "Support plan", "Hardware unit", "Training day", "Shipping")
CENT = Decimal("0.01")
STATUSES = ("draft", "draft", "confirmed", "fulfilled", "cancelled")


# === RESULT ===
@dataclass
class SeedResult:
    """What is in the databases after seeding."""

    contacts: int
    orders: int
    seconds: float
    seeded: bool  # False when the data was there already


# === ROWS ===
def contact_rows(count: int, now: datetime) -> Iterator[tuple[object, ...]]:
    """(id, name, email, phone, is_active, version, created_at, updated_at) of contacts 1…count."""
    rng = random.Random(101)
    for contact_id in range(1, count + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        company = rng.choice(COMPANIES)
        name = f"{first} {last}" + (f" {company}" if company else "")
        email = f"{first}.{last}.{contact_id}@example.com".lower()
        phone = f"+421 9{rng.randrange(10**8):08d}" if rng.random() < 0.7 else None
        created = now - timedelta(seconds=(count - contact_id) * 60)
        yield (contact_id, name, email, phone, True, 1, created, None)


def order_rows(
    count: int, contacts: list[tuple[object, ...]], now: datetime
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Orders 1…count (random contacts) and their lines, totals rounded half up as the service."""
    rng = random.Random(102)
    orders: list[tuple[object, ...]] = []
    lines: list[tuple[object, ...]] = []
    line_id = 0
    for order_id in range(1, count + 1):
        contact = contacts[rng.randrange(len(contacts))]
        created = now - timedelta(seconds=(count - order_id) * 30)
        total = Decimal("0.00")
        for position in range(1, rng.randint(1, 3) + 1):
            quantity = Decimal(rng.randint(1, 20)).quantize(Decimal("0.001"))
            unit_price = (Decimal(rng.randint(100, 50000)) / 100).quantize(CENT)
            line_total = (quantity * unit_price).quantize(CENT, rounding=ROUND_HALF_UP)
            total += line_total
            line_id += 1
            lines.append(
                (line_id, order_id, position, rng.choice(ITEMS), quantity, unit_price, line_total)
            )
        orders.append(
            (
                order_id,
                f"ORD-{created.year:04d}-{order_id:06d}",
                contact[0],
                contact[1],
                contact[2],
                rng.choice(STATUSES),
                "EUR",
                total,
                None,
                1,
                created,
                None,
            )
        )
    return orders, lines


# === SEED ===
async def _count(connection: asyncpg.Connection, table: str) -> int:
    value = await connection.fetchval(f"SELECT count(*) FROM {table}")
    return int(value)


async def seed(contacts_dsn: str, orders_dsn: str, contacts: int, orders: int) -> SeedResult:
    """Seed both databases unless they already hold at least that many rows."""
    started = time.monotonic()
    now = datetime.now(UTC)
    contacts_db = await asyncpg.connect(contacts_dsn)
    orders_db = await asyncpg.connect(orders_dsn)
    try:
        have_contacts = await _count(contacts_db, "contacts")
        have_orders = await _count(orders_db, "orders")
        if have_contacts >= contacts and have_orders >= orders:
            return SeedResult(have_contacts, have_orders, time.monotonic() - started, False)
        if have_contacts or have_orders:
            raise RuntimeError(
                f"The databases hold {have_contacts} contacts and {have_orders} orders: seed "
                "only empty databases (or ones that already hold the full data set)"
            )
        rows = list(contact_rows(contacts, now))
        await contacts_db.copy_records_to_table(
            "contacts",
            records=rows,
            columns=[
                "id",
                "name",
                "email",
                "phone",
                "is_active",
                "version",
                "created_at",
                "updated_at",
            ],
        )
        await contacts_db.execute("SELECT setval('contacts_id_seq', $1)", contacts)

        await orders_db.copy_records_to_table(
            "contacts_read_model",
            records=[(row[0], row[1], row[2], True, False, 1, now) for row in rows],
            columns=["id", "name", "email", "is_active", "deleted", "version", "updated_at"],
        )
        order_records, line_records = order_rows(orders, rows, now)
        await orders_db.copy_records_to_table(
            "orders",
            records=order_records,
            columns=[
                "id",
                "number",
                "contact_id",
                "contact_name",
                "contact_email",
                "status",
                "currency",
                "total",
                "notes",
                "version",
                "created_at",
                "updated_at",
            ],
        )
        await orders_db.copy_records_to_table(
            "order_lines",
            records=line_records,
            columns=[
                "id",
                "order_id",
                "position",
                "description",
                "quantity",
                "unit_price",
                "line_total",
            ],
        )
        await orders_db.execute("SELECT setval('orders_id_seq', $1)", orders)
        await orders_db.execute("SELECT setval('order_lines_id_seq', $1)", len(line_records))
        await orders_db.execute("SELECT setval('order_number_seq', $1)", orders)
        # Statistics and the visibility map, as a database that has lived a while has them.
        await contacts_db.execute("VACUUM ANALYZE")
        await orders_db.execute("VACUUM ANALYZE")
        return SeedResult(contacts, orders, time.monotonic() - started, True)
    finally:
        await contacts_db.close()
        await orders_db.close()
