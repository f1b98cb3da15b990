"""
================================================================
FILE: contact.py
PATH: /services/lkms102-orders/app/models/contact.py
DESCRIPTION: SQLAlchemy model of the local read model of contacts (fed by contact events)
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.database import Base


# === MODEL ===
class ContactReadModel(Base):
    """
    What the orders service knows about a contact of lkms101-contacts: kept up to date by the
    contact events (and, for a contact no event has brought yet, by a GetContact call when an
    order is created). A snapshot is applied only when its version is newer; a deletion is
    final and keeps the last known name and email.

    Attributes:
        id: The contact's id in lkms101-contacts (not generated here)
        name, email: Last known name and email
        is_active: Last known active flag
        deleted: The contact was deleted in lkms101-contacts
        version: The contact's version the row reflects
        updated_at: When this row last changed here
    """

    __tablename__ = "contacts_read_model"

    # === PRIMARY KEY ===
    id: Mapped[int] = mapped_column(
        Integer, primary_key=True, autoincrement=False, comment="Contact id in lkms101-contacts"
    )

    # === FIELDS ===
    name: Mapped[str] = mapped_column(String(255), nullable=False, comment="Contact name")
    email: Mapped[str] = mapped_column(String(255), nullable=False, comment="Contact email")
    is_active: Mapped[bool] = mapped_column(
        Boolean, nullable=False, comment="Whether the contact is active"
    )
    deleted: Mapped[bool] = mapped_column(
        Boolean,
        nullable=False,
        server_default=text("false"),
        comment="The contact was deleted in lkms101-contacts",
    )
    version: Mapped[int] = mapped_column(
        Integer, nullable=False, comment="Contact version this row reflects"
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True),
        server_default=func.now(),
        nullable=False,
        comment="When this row last changed",
    )

    __table_args__ = ({"comment": "Read model of lkms101 contacts, fed by contact events"},)

    def __repr__(self) -> str:
        return f"<ContactReadModel(id={self.id}, version={self.version}, deleted={self.deleted})>"
