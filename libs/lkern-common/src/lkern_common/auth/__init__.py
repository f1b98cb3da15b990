"""
================================================================
FILE: __init__.py
PATH: /libs/lkern-common/src/lkern_common/auth/__init__.py
DESCRIPTION: Who may call: OAuth 2.0 bearer tokens (JWT) checked against a JWKS, and scopes
VERSION: v1.1.0
UPDATED: 2026-12-02 06:30:00
================================================================

The whole API::

    verifier = TokenVerifier.from_settings(settings)   # AUTH_ISSUER, AUTH_AUDIENCE, AUTH_JWKS_*
    principal = await verifier.verify(token)           # or InvalidTokenError("invalid token")
    principal.subject, principal.scopes, principal.has_scopes(CONTACTS_WRITE)
    await verifier.close()

It knows nothing about HTTP or gRPC: REST uses it through ``lkern_common.web.security``, gRPC
through its interceptor, both from the one verifier a service makes at start.
"""

# === IMPORTS ===
from lkern_common.auth.jwks import ALLOWED_ALGORITHMS, JwksKeys
from lkern_common.auth.verifier import AuthSettings, InvalidTokenError, Principal, TokenVerifier

# === SCOPES ===
# RFC 9068 scopes of the L-KERN API: reads need :read, every change :write.
CONTACTS_READ = "contacts:read"
CONTACTS_WRITE = "contacts:write"
ORDERS_READ = "orders:read"
ORDERS_WRITE = "orders:write"
# Operating a service (GET/PUT /config/log-level on every service): operators only.
LKERN_ADMIN = "lkern:admin"
# Every scope: what `lkern token` puts in a development token unless told otherwise.
ALL_SCOPES = (CONTACTS_READ, CONTACTS_WRITE, ORDERS_READ, ORDERS_WRITE, LKERN_ADMIN)

# === EXPORTS ===
__all__ = [
    "ALLOWED_ALGORITHMS",
    "ALL_SCOPES",
    "CONTACTS_READ",
    "CONTACTS_WRITE",
    "LKERN_ADMIN",
    "ORDERS_READ",
    "ORDERS_WRITE",
    "AuthSettings",
    "InvalidTokenError",
    "JwksKeys",
    "Principal",
    "TokenVerifier",
]
