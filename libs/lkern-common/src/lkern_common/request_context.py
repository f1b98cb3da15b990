"""
================================================================
FILE: request_context.py
PATH: /libs/lkern-common/src/lkern_common/request_context.py
DESCRIPTION: Request id (logs, gRPC metadata, Kafka headers) and the caller's subject
VERSION: v1.2.0
UPDATED: 2026-12-02 10:05:00
================================================================
"""

# === IMPORTS ===
import os
import re
from contextvars import ContextVar

# === CONSTANTS ===
# Header / metadata key used everywhere (HTTP header, gRPC metadata, Kafka header).
REQUEST_ID_HEADER = "x-request-id"
# An incoming id is accepted only when it is short and plain, so that it cannot inject into logs.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# === CONTEXT ===
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
# Who the current request / call acts for: the access token's `sub` (REST, gRPC with a token)
# or the calling service (gRPC over mutual TLS). Stored as created_by / updated_by, carried
# in events as `actor`, shown in log lines next to the request id.
subject_var: ContextVar[str | None] = ContextVar("subject", default=None)


# === HELPERS ===
def get_request_id() -> str | None:
    """Return the request id of the current request / task, if any."""
    return request_id_var.get()


def get_subject() -> str | None:
    """Return who the current request / call acts for, if known."""
    return subject_var.get()


def new_request_id() -> str:
    """A fresh request id: 128 random bits as 32 hex digits (uuid4's form, a fifth of the cost)."""
    return os.urandom(16).hex()


def accept_request_id(candidate: str | None) -> str:
    """Return the caller's request id when it is well-formed, else a new one."""
    if candidate and _VALID_REQUEST_ID.match(candidate):
        return candidate
    return new_request_id()
