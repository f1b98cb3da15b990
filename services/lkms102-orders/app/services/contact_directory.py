"""
================================================================
FILE: contact_directory.py
PATH: /services/lkms102-orders/app/services/contact_directory.py
DESCRIPTION: The contacts service (lkms101) as orders sees it: validate and fetch over gRPC
VERSION: v1.2.0
UPDATED: 2026-12-02 06:30:00
================================================================

Wraps the shared ``AsyncContactsClient`` (deadline, retries on UNAVAILABLE and a circuit
breaker from its settings) and turns its outcomes into the orders service's errors:

- contact unknown or inactive → ``ContactRejectedError`` (400) with the reason contacts gave;
- contacts unreachable, too slow or failing → ``ContactCheckUnavailableError`` (503, with
  ``Retry-After``: the seconds until the breaker's next probe while it is open, else 1).

(The client's own ``ContactsUnreachableError`` is the transport failure; this module's
``ContactCheckUnavailableError`` is the answer orders gives its caller.)
"""

# === IMPORTS ===
import logging
from typing import Protocol

from app.services.contacts_read_model import ContactState
from lkern_common.errors import BadRequestError, ServiceUnavailableError
from lkern_common.grpc_clients.contacts import (
    ContactsClientError,
    ContactsUnreachableError,
    ContactValidation,
)
from lkern_common.grpc_contracts.contacts import contacts_pb2

# === LOGGING ===
logger = logging.getLogger(__name__)


# === ERRORS ===
class ContactRejectedError(BadRequestError):
    """The contact cannot take orders (unknown, inactive or deleted): 400 with the reason."""


class ContactCheckUnavailableError(ServiceUnavailableError):
    """lkms101-contacts could not be asked about the contact: 503, nothing was changed."""

    def __init__(self, contact_id: int, error: ContactsClientError) -> None:
        retry_after = (
            error.retry_after_seconds if isinstance(error, ContactsUnreachableError) else 1
        )
        super().__init__(
            f"The contacts service is unavailable, so contact {contact_id} cannot be validated; "
            "no order was changed. Try again later.",
            retry_after_seconds=retry_after,
        )


# === CLIENT PROTOCOL ===
class ContactsClientLike(Protocol):
    """What the directory needs of ``AsyncContactsClient``."""

    async def validate_contact_detailed(self, contact_id: int) -> ContactValidation: ...

    async def get_contact(self, contact_id: int) -> contacts_pb2.Contact | None: ...


# === DIRECTORY ===
class ContactDirectory:
    """Validation and lookup of contacts in lkms101-contacts."""

    def __init__(self, client: ContactsClientLike) -> None:
        self.client = client

    async def validate(self, contact_id: int) -> None:
        """ValidateContact: return when the contact may take orders, else raise (400 / 503)."""
        try:
            validation = await self.client.validate_contact_detailed(contact_id)
        except ContactsClientError as error:
            logger.warning("Cannot validate contact %s: %s", contact_id, error)
            raise ContactCheckUnavailableError(contact_id, error) from error
        if not validation.is_valid:
            reason = validation.error_message or f"Contact {contact_id} is not valid"
            raise ContactRejectedError(reason)

    async def fetch(self, contact_id: int) -> ContactState | None:
        """GetContact as the read model's state; None when contacts does not know the id (503)."""
        try:
            contact = await self.client.get_contact(contact_id)
        except ContactsClientError as error:
            logger.warning("Cannot fetch contact %s: %s", contact_id, error)
            raise ContactCheckUnavailableError(contact_id, error) from error
        if contact is None:
            return None
        return ContactState.from_grpc(contact)
