"""
================================================================
FILE: test_services.py
PATH: /services/lkms102-orders/tests/test_services.py
DESCRIPTION: Business logic tests: money rules and state machine (pure), read model and orders
             service against a real PostgreSQL
VERSION: v1.2.0
UPDATED: 2026-12-02 07:15:00
================================================================
"""

# === IMPORTS ===
from decimal import Decimal

import pytest
from pydantic import ValidationError

from app.data.orders import OrderLineView, OrderView
from app.database import Database
from app.schemas.order import OrderCreate, OrderLineIn, OrderUpdate
from app.services import contacts_read_model
from app.services.contacts_read_model import ContactState, apply_contact_snapshot
from app.services.money import (
    MAX_AMOUNT,
    AmountTooLargeError,
    line_total,
    normalize_currency,
    order_total,
    round_money,
)
from app.services.order_status import (
    IllegalTransitionError,
    OrderStatus,
    allowed_next,
    can_transition,
    check_transition,
)
from app.services.orders_service import (
    ContactCheck,
    OrderNotFoundError,
    OrdersReader,
    OrdersService,
    format_order_number,
)

# === MONEY (pure) ===
D = Decimal


@pytest.mark.parametrize(
    ("quantity", "price", "expected"),
    [
        ("2", "19.99", "39.98"),
        ("0.5", "0.25", "0.13"),  # 0.125: half up, not half even (0.12)
        ("0.5", "0.35", "0.18"),  # 0.175 -> 0.18
        ("0.333", "0.05", "0.02"),  # 0.01665
        ("0.001", "0.01", "0.00"),  # 0.00001
        ("3", "0.10", "0.30"),
        ("1.005", "1.00", "1.01"),  # 1.005 exactly: half up
        ("1", "0", "0.00"),
    ],
)
def test_line_total_rounds_half_up_to_cents(quantity: str, price: str, expected: str) -> None:
    result = line_total(D(quantity), D(price))
    assert result == D(expected)
    assert str(result) == expected  # always two places


def test_order_total_is_the_sum_of_rounded_line_totals() -> None:
    # Rounding each line then summing (1.01 + 1.01) differs from rounding the sum (2.01).
    lines = [line_total(D("1.005"), D("1.00")), line_total(D("1.005"), D("1.00"))]
    assert order_total(lines) == D("2.02")
    assert order_total([]) == D("0.00")


def test_amounts_over_the_column_limit_are_refused() -> None:
    with pytest.raises(AmountTooLargeError):
        line_total(D("999999999.999"), D("9999999999.99"))
    with pytest.raises(AmountTooLargeError):
        order_total([MAX_AMOUNT, D("0.01")])
    assert order_total([MAX_AMOUNT]) == MAX_AMOUNT


def test_round_money_is_half_up_for_negative_values_too() -> None:
    assert round_money(D("-0.125")) == D("-0.13")


def test_currency_codes_are_checked_against_iso_4217() -> None:
    assert normalize_currency("eur") == "EUR"
    assert normalize_currency(" CZK ") == "CZK"
    for bad in ("XXX", "XAU", "ABC", "EURO", ""):
        with pytest.raises(ValueError, match="ISO 4217"):
            normalize_currency(bad)


def test_line_schema_accepts_strings_and_numbers_and_keeps_them_exact() -> None:
    line = OrderLineIn.model_validate_json(
        '{"description": " x ", "quantity": 0.1, "unit_price": "0.30"}'
    )
    assert line.description == "x"
    assert line.quantity == D("0.100")
    assert str(line.quantity) == "0.100"
    assert line.unit_price == D("0.30")
    assert line.line_total == D("0.03")
    exponent = OrderLineIn.model_validate({"description": "y", "quantity": "1E+2", "unit_price": 1})
    assert str(exponent.quantity) == "100.000"
    assert str(exponent.unit_price) == "1.00"


@pytest.mark.parametrize("value", ["NaN", "nan", "Infinity", "-Infinity", "sNaN"])
def test_line_schema_refuses_non_finite_values(value: str) -> None:
    with pytest.raises(ValidationError):
        OrderLineIn.model_validate({"description": "x", "quantity": value, "unit_price": "1"})
    with pytest.raises(ValidationError):
        OrderLineIn.model_validate({"description": "x", "quantity": "1", "unit_price": value})


def test_create_schema_refuses_a_total_over_the_limit() -> None:
    line = {"description": "x", "quantity": "999999999", "unit_price": "9999999"}
    with pytest.raises(ValidationError, match=r"order total .* exceeds the maximum amount"):
        OrderCreate.model_validate({"contact_id": 1, "lines": [line] * 2})


# === STATE MACHINE (pure) ===
def test_the_state_machine_allows_exactly_the_documented_transitions() -> None:
    allowed = {
        (current, target)
        for current in OrderStatus
        for target in OrderStatus
        if can_transition(current, target)
    }
    assert allowed == {
        (OrderStatus.DRAFT, OrderStatus.CONFIRMED),
        (OrderStatus.DRAFT, OrderStatus.CANCELLED),
        (OrderStatus.CONFIRMED, OrderStatus.FULFILLED),
        (OrderStatus.CONFIRMED, OrderStatus.CANCELLED),
    }
    assert allowed_next(OrderStatus.DRAFT) == [OrderStatus.CONFIRMED, OrderStatus.CANCELLED]
    assert allowed_next(OrderStatus.FULFILLED) == []


def test_an_illegal_transition_is_a_409_naming_the_current_status() -> None:
    with pytest.raises(IllegalTransitionError) as raised:
        check_transition("ORD-2026-000001", OrderStatus.CONFIRMED, OrderStatus.DRAFT)
    assert raised.value.status_code == 409
    assert raised.value.message == (
        "Order ORD-2026-000001 is confirmed: it cannot change to draft "
        "(allowed from confirmed: fulfilled, cancelled)"
    )
    check_transition("ORD-2026-000001", OrderStatus.DRAFT, OrderStatus.CONFIRMED)  # no error


def test_order_numbers_have_year_and_at_least_six_digits() -> None:
    assert format_order_number(123, 2026) == "ORD-2026-000123"
    assert format_order_number(1234567, 2027) == "ORD-2027-1234567"


# === READ MODEL (database) ===
def snapshot(version: int, **fields: object) -> ContactState:
    values: dict[str, object] = {
        "id": 41,
        "name": f"Name v{version}",
        "email": f"v{version}@example.com",
        "is_active": True,
        "version": version,
    }
    values.update(fields)
    return ContactState(**values)  # type: ignore[arg-type]


async def read(db: Database, contact_id: int = 41) -> tuple[str, bool, bool, int] | None:
    async with db.transaction() as session:
        row = await contacts_read_model.get_contact(session, contact_id)
        if row is None:
            return None
        return row.name, row.is_active, row.deleted, row.version


async def apply(db: Database, contact: ContactState) -> bool:
    async with db.transaction() as session:
        return await apply_contact_snapshot(session, contact)


async def test_read_model_applies_only_newer_versions(db: Database) -> None:
    assert await apply(db, snapshot(2))
    assert await read(db) == ("Name v2", True, False, 2)
    assert not await apply(db, snapshot(1))  # older: overtaken
    assert not await apply(db, snapshot(2, name="Other"))  # same version: duplicate
    assert await read(db) == ("Name v2", True, False, 2)
    assert await apply(db, snapshot(5, is_active=False))
    assert await read(db) == ("Name v5", False, False, 5)


async def test_read_model_deletion_is_final_and_keeps_the_newest_name(db: Database) -> None:
    await apply(db, snapshot(3))
    # A deletion carrying an older snapshot than stored: deleted, but name and version stay.
    assert await apply(db, snapshot(2, deleted=True))
    assert await read(db) == ("Name v3", True, True, 3)
    # Nothing applies after a deletion, however new.
    assert not await apply(db, snapshot(9))
    assert not await apply(db, snapshot(9, deleted=True))
    assert await read(db) == ("Name v3", True, True, 3)


async def test_read_model_deletion_first_then_create_event(db: Database) -> None:
    assert await apply(db, snapshot(2, deleted=True))
    assert not await apply(db, snapshot(1))
    assert await read(db) == ("Name v2", True, True, 2)


# === ORDERS SERVICE (database) ===
async def test_get_unknown_order_raises_not_found(db: Database) -> None:
    with pytest.raises(OrderNotFoundError, match="Order with id 5 not found"):
        await OrdersReader(db).get_order_view(5)


async def test_create_change_and_read_return_the_same_typed_view(db: Database) -> None:
    # One view type whatever made it: the create's INSERT … RETURNING rows, the ORM object of a
    # change and the plain-SQL read give equal OrderViews with the columns' Python types.
    assert await apply(db, snapshot(1))
    line = OrderLineIn(description="Widget", quantity=D("2"), unit_price=D("19.99"))
    async with db.transaction() as session:
        created = await OrdersService(session).create_order(
            OrderCreate(contact_id=41, lines=[line], notes="first"), ContactCheck(41)
        )
    reader = OrdersReader(db)
    assert await reader.get_order_view(created.id) == created
    assert created.status is OrderStatus.DRAFT
    assert created.lines == (OrderLineView("Widget", D("2.000"), D("19.99"), D("39.98")),)
    assert (created.contact_name, created.contact_email) == ("Name v1", "v1@example.com")

    async with db.transaction() as session:
        changed = await OrdersService(session).update_order(created.id, OrderUpdate(notes="second"))
    assert isinstance(changed, OrderView)
    assert (changed.notes, changed.version) == ("second", 2)
    assert await reader.get_order_view(created.id) == changed
    page, total = await reader.list_orders(skip=0, limit=10, contact_id=41)
    assert (page, total) == ([changed], 1)
