"""
================================================================
FILE: contact.py
PATH: /services/lkms101-contacts/app/models/contact.py
DESCRIPTION: SQLAlchemy model for contacts table
VERSION: v1.1.0
UPDATED: 2026-12-02 03:10:00
================================================================
"""

# === IMPORTS ===
from datetime import datetime

from sqlalchemy import Boolean, DateTime, FetchedValue, Index, Integer, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.database import Base


# === MODEL ===
class Contact(Base):
    """
    Contact model representing a person or organization.

    Attributes:
        id: Primary key
        name: Contact full name
        email: Contact email address (unique, compared case-insensitively)
        phone: Contact phone number (optional)
        is_active: Whether contact is active
        version: Grows by one with every change (event ordering, optimistic concurrency)
        created_at: Timestamp when created
        updated_at: Timestamp when last updated
        created_by, updated_by: Who created / last changed it (the access token's subject)
    """

    __tablename__ = "contacts"

    # === PRIMARY KEY ===
    id: Mapped[int] = mapped_column(Integer, primary_key=True, comment="Contact id")

    # === FIELDS ===
    name: Mapped[str] = mapped_column(
        String(255), nullable=False, index=True, comment="Contact full name"
    )
    email: Mapped[str] = mapped_column(String(255), nullable=False, comment="Contact email address")
    phone: Mapped[str | None] = mapped_column(
        String(50), nullable=True, comment="Contact phone number"
    )
    is_active: Mapped[bool] = mapped_column(
        Boolean,
        nullable=False,
        default=True,
        server_default=text("true"),
        comment="Whether contact is active",
    )
    version: Mapped[int] = mapped_column(
        Integer,
        nullable=False,
        server_default=text("1"),
        comment="Version of the contact: 1 when created, +1 on every change",
    )

    # === WHO ===
    # The subject (access token `sub`) of the request that made the change; NULL for rows
    # made before authentication and until the first change (updated_by).
    created_by: Mapped[str | None] = mapped_column(
        String(255), nullable=True, comment="Subject (token sub) that created the contact"
    )
    updated_by: Mapped[str | None] = mapped_column(
        String(255), nullable=True, comment="Subject (token sub) of the last change"
    )

    # === TIMESTAMPS ===
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True),
        server_default=func.now(),
        nullable=False,
        comment="Timestamp when created",
    )
    updated_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True),
        # NULL until the first change (no database default). FetchedValue makes the INSERT
        # return it with RETURNING; without it the ORM reads it back with an extra SELECT.
        server_default=FetchedValue(),
        onupdate=func.now(),
        nullable=True,
        comment="Timestamp when last updated",
    )

    # === INDEXES ===
    __table_args__ = (
        # Unique email, case-insensitive: the database decides duplicates, so racing requests
        # cannot both insert the same address.
        Index("ix_contacts_email", func.lower(email), unique=True),
        # Trigram indexes for the `q` search (ILIKE '%…%' on name or email).
        Index(
            "ix_contacts_name_trgm",
            name,
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
        Index(
            "ix_contacts_email_trgm",
            email,
            postgresql_using="gin",
            postgresql_ops={"email": "gin_trgm_ops"},
        ),
        {"comment": "Contacts: people and organizations the company deals with"},
    )

    # SQLAlchemy bumps `version` on every UPDATE (and checks it: optimistic concurrency) and
    # reads server-generated columns back with RETURNING instead of a second query.
    __mapper_args__ = {"version_id_col": version, "eager_defaults": True}

    def __repr__(self) -> str:
        return f"<Contact(id={self.id}, name='{self.name}', email='{self.email}')>"
