"""
================================================================
FILE: contact.py
PATH: /services/lkms101-contacts/app/schemas/contact.py
DESCRIPTION: Pydantic schemas for contact request/response validation
VERSION: v1.1.0
UPDATED: 2026-12-02 03:10:00
================================================================
"""

# === IMPORTS ===
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, model_validator


# === BASE SCHEMA ===
class ContactBase(BaseModel):
    """Base schema with common contact fields."""

    # Surrounding whitespace is dropped, so a name of only spaces is an empty name (422).
    model_config = ConfigDict(str_strip_whitespace=True)

    name: str = Field(..., min_length=1, max_length=255, description="Contact full name")
    email: EmailStr = Field(..., max_length=255, description="Contact email address")
    phone: str | None = Field(None, max_length=50, description="Contact phone number")


# === CREATE SCHEMA ===
class ContactCreate(ContactBase):
    """Schema for creating a new contact (no ID needed)."""


# === UPDATE SCHEMA ===
class ContactUpdate(BaseModel):
    """Schema for updating contact (all fields optional; only the fields sent are changed)."""

    model_config = ConfigDict(str_strip_whitespace=True)

    name: str | None = Field(None, min_length=1, max_length=255)
    email: EmailStr | None = Field(None, max_length=255)
    phone: str | None = Field(None, max_length=50)
    is_active: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _required_fields_not_null(cls, data: Any) -> Any:
        """`null` may clear the phone, but a contact always has a name, an email and a status."""
        if isinstance(data, dict):
            nulled = [
                field
                for field in ("name", "email", "is_active")
                if field in data and data[field] is None
            ]
            if nulled:
                raise ValueError(f"{', '.join(nulled)} cannot be null")
        return data


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
