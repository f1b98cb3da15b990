"""
================================================================
FILE: __init__.py
PATH: /libs/lkern-common/src/lkern_common/grpc_clients/__init__.py
DESCRIPTION: gRPC clients of L-KERN services, for use by the other services
VERSION: v1.1.0
UPDATED: 2026-12-02 06:20:00
================================================================
"""

# === IMPORTS ===
from lkern_common.grpc_clients.contacts import (
    AsyncContactsClient,
    ContactsCircuitOpenError,
    ContactsClient,
    ContactsClientError,
    ContactsClientSettings,
    ContactsUnreachableError,
    ContactValidation,
)

__all__ = [
    "AsyncContactsClient",
    "ContactValidation",
    "ContactsCircuitOpenError",
    "ContactsClient",
    "ContactsClientError",
    "ContactsClientSettings",
    "ContactsUnreachableError",
]
