"""
================================================================
FILE: contact.py
PATH: /services/lkms101-contacts/app/schemas/contact.py
DESCRIPTION: Pydantic schemas for contact request/response validation
VERSION: v1.1.0
UPDATED: 2026-12-02 03:45:00
================================================================
"""

# === IMPORTS ===
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from lkern_common.web.inputs import Email, Flag, InputModel, omittable

# === TYPES ===
# Surrounding whitespace is dropped (InputModel), so a name of only spaces is an empty name
# (422): the pattern says so (at least one character that is not white space).
Name = Annotated[
    str,
    Field(min_length=1, max_length=255, pattern=r"\S", description="Contact full name"),
]
Phone = Annotated[str, Field(max_length=50, description="Contact phone number")]


# === BASE SCHEMA ===
class ContactBase(InputModel):
    """Base schema with common contact fields (unknown fields are refused: InputModel)."""

    name: Name
    email: Email = Field(..., description="Contact email address")
    phone: Phone | None = None


# === CREATE SCHEMA ===
class ContactCreate(ContactBase):
    """Schema for creating a new contact (no ID needed)."""


# === UPDATE SCHEMA ===
class ContactUpdate(InputModel):
    """
    Schema for updating contact (all fields optional; only the fields sent are changed).
    `null` clears the phone; a contact always has a name, an email and a status, so `null` for
    those is a 422 (and the schema does not call them nullable).
    """

    name: Name = omittable()
    email: Email = omittable(description="Contact email address")
    phone: Phone | None = None
    is_active: Flag = omittable(description="false deactivates the contact")


# === RESPONSE SCHEMA ===
# ContactBase's fields and documentation, but not its validation: a response is read from rows
# the service wrote, and `EmailStr` would run the email validator again for every contact of
# every response (the costliest step of a list page). The schema still says format "email".
class ContactResponse(BaseModel):
    """Schema for contact response (includes DB fields)."""

    model_config = ConfigDict(from_attributes=True)

    name: str = Field(..., min_length=1, max_length=255, description="Contact full name")
    email: str = Field(
        ...,
        max_length=255,
        description="Contact email address",
        json_schema_extra={"format": "email"},
    )
    phone: str | None = Field(None, max_length=50, description="Contact phone number")
    id: int
    is_active: bool
    version: int = Field(..., description="1 when created, +1 on every change")
    created_at: datetime
    updated_at: datetime | None = None
    created_by: str | None = Field(None, description="Who created it (the token's subject)")
    updated_by: str | None = Field(None, description="Who changed it last (null until changed)")


# === LIST RESPONSE ===
class ContactListResponse(BaseModel):
    """
    Schema for paginated contact list (the standard's envelope). `GET /api/v1/contacts/`
    returns the plain list with the total in `X-Total-Count`, as the standard's router does;
    this envelope is kept for clients that want page metadata in the body.
    """

    contacts: list[ContactResponse]
    total: int
    page: int
    page_size: int
