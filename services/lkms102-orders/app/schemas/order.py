"""
================================================================
FILE: order.py
PATH: /services/lkms102-orders/app/schemas/order.py
DESCRIPTION: Pydantic schemas for order request/response validation (money as strings in JSON)
VERSION: v1.1.0
UPDATED: 2026-12-02 03:45:00
================================================================
"""

# === IMPORTS ===
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from app.services.money import (
    DEFAULT_CURRENCY,
    ISO_4217_CURRENCIES,
    PRICE_DIGITS,
    PRICE_PLACES,
    QUANTITY_DIGITS,
    QUANTITY_PLACES,
    AmountTooLargeError,
    format_decimal,
    line_total,
    normalize_currency,
    normalize_price,
    normalize_quantity,
    order_total,
)
from app.services.order_status import OrderStatus
from lkern_common.web.inputs import Id, InputModel, omittable

# === CONSTANTS ===
MAX_LINES = 500
MAX_NOTES_LENGTH = 4000
MAX_DESCRIPTION_LENGTH = 500
# The currency codes the document lists (what is accepted; lower case is normalised too).
CURRENCY_CODES: list[Any] = sorted(ISO_4217_CURRENCIES)


# === TYPES ===
def _decimal_schema(places: int, whole_digits: int, positive: bool) -> Any:
    """
    The JSON schema of a decimal input says what a string must look like (plain notation, at
    most ``whole_digits`` digits before the point and ``places`` after it, > 0 when
    ``positive``) and bounds the number form; pydantic's default only says "string".
    """
    nonzero = "(?=[0-9.]*[1-9])" if positive else ""
    pattern = f"^{nonzero}0*[0-9]{{1,{whole_digits}}}(\\.[0-9]{{1,{places}}}0*)?$"
    largest = float("9" * whole_digits + "." + "9" * places)

    def update(schema: dict[str, Any]) -> None:
        for branch in schema.get("anyOf", []):
            if branch.get("type") == "string":
                branch["pattern"] = pattern
            elif branch.get("type") == "number":
                branch["maximum"] = largest

    return update


# Input: a JSON string ("19.99") or number (19.99); NaN, Infinity and extra decimals → 422.
# A number is read as its shortest decimal form; send strings when every digit matters.
QuantityIn = Annotated[
    Decimal,
    Field(
        gt=0,
        max_digits=QUANTITY_DIGITS,
        decimal_places=QUANTITY_PLACES,
        allow_inf_nan=False,
        description="Quantity > 0, at most 3 decimal places (string or number)",
        examples=["2"],
        json_schema_extra=_decimal_schema(QUANTITY_PLACES, QUANTITY_DIGITS - QUANTITY_PLACES, True),
    ),
]
PriceIn = Annotated[
    Decimal,
    Field(
        ge=0,
        max_digits=PRICE_DIGITS,
        decimal_places=PRICE_PLACES,
        allow_inf_nan=False,
        description="Unit price >= 0, at most 2 decimal places (string or number)",
        examples=["19.99"],
        json_schema_extra=_decimal_schema(PRICE_PLACES, PRICE_DIGITS - PRICE_PLACES, False),
    ),
]
# Output: always a JSON string in plain notation at the stored scale ("39.98", "2.000").
DecimalString = Annotated[
    Decimal,
    PlainSerializer(format_decimal, return_type=str, when_used="json"),
]
ContactId = Annotated[Id, Field(description="Contact ID (lkms101)", examples=[1])]
Notes = Annotated[str | None, Field(max_length=MAX_NOTES_LENGTH, description="Free-text notes")]


# === LINE SCHEMAS ===
class OrderLineIn(InputModel):
    """One order line as a client sends it; line_total is computed by the service."""

    description: str = Field(
        ..., min_length=1, max_length=MAX_DESCRIPTION_LENGTH, description="What is ordered"
    )
    quantity: QuantityIn
    unit_price: PriceIn

    @field_validator("quantity")
    @classmethod
    def _quantity_scale(cls, value: Decimal) -> Decimal:
        return normalize_quantity(value)

    @field_validator("unit_price")
    @classmethod
    def _price_scale(cls, value: Decimal) -> Decimal:
        return normalize_price(value)

    @property
    def line_total(self) -> Decimal:
        """quantity × unit_price, rounded half up to 2 places."""
        return line_total(self.quantity, self.unit_price)


def _check_amounts(lines: list[OrderLineIn] | None) -> None:
    """Every line total and the order total must fit the amount columns (else 422)."""
    if not lines:
        return
    try:
        order_total(line.line_total for line in lines)
    except AmountTooLargeError as error:
        raise ValueError(str(error)) from None


# === CREATE SCHEMA ===
class OrderCreate(InputModel):
    """Schema for creating an order: the service assigns number, status, totals and timestamps."""

    contact_id: ContactId
    currency: str = Field(
        DEFAULT_CURRENCY,
        description="ISO 4217 currency code (default EUR; lower case is accepted too)",
        examples=["EUR"],
        json_schema_extra={"enum": CURRENCY_CODES},
    )
    lines: list[OrderLineIn] = Field(..., min_length=1, max_length=MAX_LINES)
    notes: Notes = None

    @field_validator("currency")
    @classmethod
    def _iso_4217(cls, value: str) -> str:
        return normalize_currency(value)

    @model_validator(mode="after")
    def _amounts_fit(self) -> "OrderCreate":
        _check_amounts(self.lines)
        return self


# === UPDATE SCHEMA ===
class OrderUpdate(InputModel):
    """
    Schema for editing a draft: `lines` (replaces all lines) and/or `notes` (`null` clears them).
    Other fields are refused (422): status changes go through POST /{id}/status. An order
    always has lines: `"lines": null` is refused, leaving it out keeps them.
    """

    lines: list[OrderLineIn] = omittable(min_length=1, max_length=MAX_LINES)
    notes: Notes = None

    @model_validator(mode="after")
    def _amounts_fit(self) -> "OrderUpdate":
        _check_amounts(self.lines)
        return self


# === STATUS SCHEMA ===
class OrderStatusChange(InputModel):
    """Schema for POST /{id}/status."""

    status: OrderStatus = Field(..., description="The new status")


# === RESPONSE SCHEMAS ===
class OrderLineResponse(BaseModel):
    """One order line with its computed total."""

    model_config = ConfigDict(from_attributes=True)

    description: str
    quantity: DecimalString
    unit_price: DecimalString
    line_total: DecimalString


class ContactSummary(BaseModel):
    """The contact of an order: current name and email from the read model when known."""

    id: int
    name: str
    email: str


class OrderResponse(BaseModel):
    """Schema for order response."""

    id: int
    number: str = Field(..., examples=["ORD-2026-000123"])
    status: OrderStatus
    currency: str
    lines: list[OrderLineResponse]
    total: DecimalString
    notes: str | None
    contact: ContactSummary
    created_at: datetime
    updated_at: datetime | None = None
    version: int = Field(..., description="1 when created, +1 on every change")
    created_by: str | None = Field(None, description="Who created it (the token's subject)")
    updated_by: str | None = Field(None, description="Who changed it last (null until changed)")
    status_changed_by: str | None = Field(None, description="Who changed its status last")
    status_changed_at: datetime | None = Field(None, description="When its status changed last")
