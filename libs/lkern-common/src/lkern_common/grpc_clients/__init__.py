"""
================================================================
FILE: __init__.py
PATH: /libs/lkern-common/src/lkern_common/grpc_clients/__init__.py
DESCRIPTION: gRPC clients of L-KERN services, for use by the other services
VERSION: v1.0.0
UPDATED: 2026-11-26 11:30:00
================================================================
"""

# === IMPORTS ===
from lkern_common.grpc_clients.contacts import (
    AsyncContactsClient,
    ContactsClient,
    ContactsClientError,
    ContactsClientSettings,
    ContactsUnavailableError,
    ContactValidation,
)

__all__ = [
    "AsyncContactsClient",
    "ContactValidation",
    "ContactsClient",
    "ContactsClientError",
    "ContactsClientSettings",
    "ContactsUnavailableError",
]
